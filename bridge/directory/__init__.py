"""The directory boundary: the only package that imports ldap3.

``open_directory(settings)`` binds (with failover) and reads the rootDSE; the returned
Directory streams complete snapshots of a source with ``read(query)``. Readers that fetch
only changes (RFC 4533 syncrepl, AD DirSync) are meant to join as further methods that
yield changes plus a cursor, so that sync and store need not know how entries were read.
Everything ldap3 raises leaves this package as a bridge.errors.DirectoryError.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from ldap3.utils.conv import escape_filter_chars

from bridge.config import Values
from bridge.directory import dirsync, syncrepl
from bridge.directory.connection import bind_as, connect, disconnect
from bridge.directory.rootdse import ROOT_DSE_ATTRIBUTES, ServerInfo, server_info
from bridge.directory.search import paged_search, read_entry
from bridge.dn import InvalidDN, dn_key
from bridge.model import RawEntry, SearchQuery

__all__ = ["Directory", "SearchQuery", "ServerInfo", "any_equal", "in_chain", "open_directory", "syncrepl"]

#: LDAP_MATCHING_RULE_IN_CHAIN: follows a DN-valued attribute through nested groups.
IN_CHAIN = "1.2.840.113556.1.4.1941"
#: AD's Show Deleted control: tombstones are searched too.
SHOW_DELETED = ("1.2.840.113556.1.4.417", True, None)

log = logging.getLogger(__name__)


class Directory:
    """A bound connection to one directory server and what its rootDSE told us."""

    def __init__(self, settings: Values) -> None:
        self._settings = settings
        self._connection, self.url, self.info = connect(settings, _probe)
        self._own_contexts = frozenset(_keys(self.info.naming_contexts))
        log.info("connected to %s (%s, flavor %s)", self.url, self.info.vendor, self.info.flavor)

    def read(self, query: SearchQuery, limit: int = 0, show_deleted: bool = False) -> Iterator[RawEntry]:
        """Every entry matching ``query``, streamed page by page (at most ``limit``);
        ``show_deleted`` (AD) includes tombstones."""
        return paged_search(self._connection, self.url, query, self._settings.page_size,
                            self._settings.time_limit, limit, self._own_contexts,
                            (SHOW_DELETED,) if show_deleted else ())

    def entry(self, dn: str, attributes: tuple[str, ...],
              binary: frozenset[str] = frozenset()) -> RawEntry | None:
        """One entry by DN (the rootDSE for ""), or None when it does not exist."""
        return read_entry(self._connection, self.url, dn, attributes, binary)

    def sync_refresh(self, query: SearchQuery, cookie: bytes | None) -> Iterator[syncrepl.Message]:
        """What changed in ``query`` since ``cookie`` (RFC 4533 refreshOnly), streamed."""
        return syncrepl.refresh(self._connection, self.url, query, cookie, self._settings.time_limit)

    def dirsync(self, query: SearchQuery, cookie: bytes | None) -> Iterator[RawEntry | dirsync.Position]:
        """What changed in ``query``'s naming context since ``cookie`` (AD DirSync)."""
        return dirsync.changes(self._connection, self.url, query, cookie, self._settings.time_limit)

    def matches(self, dn: str, search_filter: str) -> bool:
        """Whether the entry ``dn`` exists and matches ``search_filter`` (a base search)."""
        return read_entry(self._connection, self.url, dn, ("1.1",), search_filter=search_filter) is not None

    def netbios_domain(self) -> str | None:
        """The NetBIOS name of an AD domain (the ``EXAMPLE`` of ``EXAMPLE\\jdoe``), from
        its crossRef in the Configuration partition; None if there is none to read."""
        info = self.info
        if not info.configuration_naming_context or not info.default_naming_context:
            return None
        query = SearchQuery(f"CN=Partitions,{info.configuration_naming_context}",
                            f"(&(objectClass=crossRef)(nCName={escape_filter_chars(info.default_naming_context)}))",
                            ("nETBIOSName",), "one")
        names = [v for entry in self.read(query, limit=1) for v in entry.values("nETBIOSName")
                 if isinstance(v, str)]
        return names[0] if names else None

    def check_password(self, dn: str, password: str) -> None:
        """Bind as ``dn`` with ``password`` on this server; DirectoryAuthError if refused."""
        bind_as(self._settings, self.url, dn, password)

    def close(self) -> None:
        disconnect(self._connection)

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def any_equal(attributes: tuple[str, ...], value: str) -> str:
    """``(|(a1=value)(a2=value))`` with ``value`` escaped (RFC 4515), never injected."""
    escaped = escape_filter_chars(value)
    return "(|" + "".join(f"({attribute}={escaped})" for attribute in attributes) + ")"


def in_chain(attribute: str, dn: str) -> str:
    """``(attribute:1.2.840.113556.1.4.1941:=dn)``, ``dn`` escaped (RFC 4515): with
    ``memberOf`` it matches every entry in ``dn``'s group, however deeply nested."""
    return f"({attribute}:{IN_CHAIN}:={escape_filter_chars(dn)})"


def _keys(dns: tuple[str, ...]) -> list[str]:
    keys = []
    for dn in dns:
        try:
            keys.append(dn_key(dn))
        except InvalidDN:
            log.debug("the rootDSE names an unparseable naming context %r", dn)
    return keys


def _probe(connection, url: str) -> ServerInfo:
    return server_info(url, read_entry(connection, url, "", ROOT_DSE_ATTRIBUTES))


def open_directory(settings: Values) -> Directory:
    """Bind to the first usable URL of ``settings`` (the [directory] section)."""
    return Directory(settings)
