"""LDAP-backed JMAP directory bridge: mirrors a directory into a JMAP Principals store."""

__version__ = "0.1.0"
