"""What the server says about itself in its rootDSE: vendor, naming contexts, controls,
and from that the flavor the bridge should treat it as."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.model import RawEntry

PAGED_RESULTS = "1.2.840.113556.1.4.319"
SYNCREPL = "1.3.6.1.4.1.4203.1.9.1.1"
DIRSYNC = "1.2.840.113556.1.4.841"
START_TLS = "1.3.6.1.4.1.1466.20037"
AD_CAPABILITY = "1.2.840.113556.1.4.800"

ROOT_DSE_ATTRIBUTES = ("*", "+", "vendorName", "vendorVersion", "namingContexts",
                       "defaultNamingContext", "supportedControl", "supportedExtension",
                       "supportedLDAPVersion", "supportedCapabilities", "objectClass",
                       "configContext", "configurationNamingContext", "dnsHostName",
                       "serverName")


@dataclass(frozen=True)
class ServerInfo:
    url: str
    vendor: str
    vendor_version: str
    flavor: str  # detected: openldap | ad | generic
    naming_contexts: tuple[str, ...]
    default_naming_context: str
    configuration_naming_context: str
    controls: frozenset[str]
    extensions: frozenset[str]

    @property
    def supports_paging(self) -> bool:
        return PAGED_RESULTS in self.controls

    @property
    def supports_start_tls(self) -> bool:
        return START_TLS in self.extensions

    @property
    def supports_syncrepl(self) -> bool:
        return SYNCREPL in self.controls

    @property
    def supports_dirsync(self) -> bool:
        return DIRSYNC in self.controls


def server_info(url: str, entry: RawEntry | None) -> ServerInfo:
    """Interpret a rootDSE entry (None when the server hides it)."""
    attrs = entry.attributes if entry else {}

    def texts(name: str) -> tuple[str, ...]:
        return tuple(v for v in attrs.get(name.lower(), ()) if isinstance(v, str))

    def first(name: str) -> str:
        values = texts(name)
        return values[0] if values else ""

    flavor, vendor = _detect(attrs, first("vendorName"))
    return ServerInfo(
        url=url, vendor=vendor, vendor_version=first("vendorVersion"), flavor=flavor,
        naming_contexts=texts("namingContexts"),
        default_naming_context=first("defaultNamingContext"),
        configuration_naming_context=first("configurationNamingContext"),
        controls=frozenset(texts("supportedControl")),
        extensions=frozenset(texts("supportedExtension")))


def _detect(attrs: dict, vendor_name: str) -> tuple[str, str]:
    object_classes = {v.lower() for v in attrs.get("objectclass", ()) if isinstance(v, str)}
    capabilities = set(attrs.get("supportedcapabilities", ()))
    if AD_CAPABILITY in capabilities or "forestfunctionality" in attrs:
        return "ad", vendor_name or "Active Directory"
    if "openldaprootdse" in object_classes or attrs.get("configcontext") == ("cn=config",):
        return "openldap", vendor_name or "OpenLDAP"
    return "generic", vendor_name or "unknown"
