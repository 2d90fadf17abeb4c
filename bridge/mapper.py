"""Pure mapping of directory entries to principals: flavor defaults, attribute maps, the id
derived from the immutable identifier, the disabled flag, and member references.

Nothing here does I/O; ``map_entry`` is a function of its arguments (the time included),
tested by tables.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, fields

from bridge.account_state import AccountRule, ExpiredFiletime, FlagSet, LockedValue
from bridge.config import Values
from bridge.dn import InvalidDN, dn_key, leaf_rdn, strip_optional_uid
from bridge.model import MappedEntry, MemberRef, Principal, PrincipalType, RawEntry, SearchQuery
from bridge.validation import is_addr_spec, is_time_zone

#: Namespace for ids of identifiers that are not UUIDs (uuid5 of "attribute:value").
ID_NAMESPACE = uuid.UUID("6f1c3c8e-4f7a-5b0e-9a51-2f4c1d7e8b90")
LOGIN_VALUED_MEMBERS = frozenset({"memberuid"})
#: Attributes whose values are octet strings, never text (lower-case names).
BINARY_ATTRIBUTES = frozenset({"objectguid", "objectsid", "msexchmailboxguid", "jpegphoto",
                               "thumbnailphoto", "usercertificate"})


@dataclass(frozen=True)
class AttributeMap:
    """Where each principal field comes from: attribute lists, the first present wins.
    The field names are the [sources.NAME] option names."""

    name_attributes: tuple[str, ...]
    email_attributes: tuple[str, ...]
    description_attributes: tuple[str, ...]
    login_attributes: tuple[str, ...]
    time_zone_attributes: tuple[str, ...]
    member_attributes: tuple[str, ...]


@dataclass(frozen=True)
class TypeMarker:
    """An attribute value that says which type an entry is, whatever filter found it
    (Exchange marks room mailboxes, which are also users, with msExchRecipientTypeDetails
    16). Matched without regard to case."""

    attribute: str
    value: str
    type: PrincipalType


@dataclass(frozen=True)
class Flavor(AttributeMap):
    """The defaults of one server family; every source may override the attribute lists."""

    name: str
    id_attribute: str
    filters: dict[PrincipalType, str]
    #: when an individual's account is disabled (rooms and groups have no account state)
    account_rules: tuple[AccountRule, ...] = ()
    type_markers: tuple[TypeMarker, ...] = ()
    #: the login attribute a DOMAIN\name login names (AD: sAMAccountName)
    domain_login_attribute: str = ""


_OPENLDAP = Flavor(
    name="openldap", id_attribute="entryUUID",
    name_attributes=("displayName", "cn"), email_attributes=("mail",),
    description_attributes=("description",), login_attributes=("uid",),
    time_zone_attributes=(), member_attributes=("member", "uniqueMember", "memberUid"),
    filters={
        PrincipalType.INDIVIDUAL: "(objectClass=inetOrgPerson)",
        PrincipalType.GROUP: "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
                             "(objectClass=posixGroup))",
        PrincipalType.LOCATION: "(objectClass=room)",
        PrincipalType.RESOURCE: "(objectClass=device)",
        PrincipalType.OTHER: "(objectClass=*)",
    },
    # ppolicy: 000001010000Z is the administrative lock. Any other value is a lockout after
    # failed binds that expires on its own (pwdLockoutDuration) and is lifted by the next
    # good bind; flagging it would let anyone hide a colleague by mistyping their password.
    account_rules=(LockedValue("pwdAccountLockedTime", "000001010000Z"),),
)

# Exchange's recipient types (msExchRecipientTypeDetails) and resource metadata.
_ROOM_MAILBOX, _EQUIPMENT_MAILBOX = "16", "32"
_AD = Flavor(
    name="ad", id_attribute="objectGUID",
    name_attributes=("displayName", "cn"), email_attributes=("mail",),
    description_attributes=("description",),
    login_attributes=("sAMAccountName", "userPrincipalName"),
    time_zone_attributes=(), member_attributes=("member",),
    filters={
        PrincipalType.INDIVIDUAL: "(&(objectCategory=person)(objectClass=user))",
        PrincipalType.GROUP: "(objectClass=group)",
        PrincipalType.LOCATION: f"(&(objectClass=user)(|(msExchRecipientTypeDetails={_ROOM_MAILBOX})"
                                "(msExchResourceMetaData=ResourceType:Room)))",
        PrincipalType.RESOURCE: f"(&(objectClass=user)(|(msExchRecipientTypeDetails={_EQUIPMENT_MAILBOX})"
                                "(msExchResourceMetaData=ResourceType:Equipment)))",
        PrincipalType.OTHER: "(objectClass=contact)",
    },
    # userAccountControl ACCOUNTDISABLE (0x2); accountExpires in the past. lockoutTime
    # (failed binds) is deliberately not a rule, for the reason given for ppolicy above.
    account_rules=(FlagSet("userAccountControl", 0x2), ExpiredFiletime("accountExpires")),
    # Room and equipment mailboxes are (disabled) user objects, so the person filter finds
    # them too; these markers keep them out of individual sources. A filter cannot: on a
    # forest without the Exchange schema, (!(msExchRecipientTypeDetails=16)) is Undefined
    # for every entry (three-valued logic) and would hide everyone.
    type_markers=(
        TypeMarker("msExchRecipientTypeDetails", _ROOM_MAILBOX, PrincipalType.LOCATION),
        TypeMarker("msExchRecipientTypeDetails", _EQUIPMENT_MAILBOX, PrincipalType.RESOURCE),
        TypeMarker("msExchResourceMetaData", "ResourceType:Room", PrincipalType.LOCATION),
        TypeMarker("msExchResourceMetaData", "ResourceType:Equipment", PrincipalType.RESOURCE),
    ),
    domain_login_attribute="sAMAccountName",
)

FLAVORS: dict[str, Flavor] = {
    "openldap": _OPENLDAP,
    # RFC 4530 entryUUID and the standard schema: the OpenLDAP defaults fit most servers.
    "generic": Flavor(**{**_OPENLDAP.__dict__, "name": "generic"}),
    "ad": _AD,
}


def flavor_for(configured: str, detected: str) -> Flavor:
    """The flavor to use: the configured one, or the rootDSE's guess when ``auto``."""
    return FLAVORS[detected if configured == "auto" else configured]


@dataclass(frozen=True)
class SourceMap(AttributeMap):
    """One source's search and attribute map, with flavor defaults filled in."""

    name: str
    type: PrincipalType
    base: str
    scope: str
    filter: str
    disabled_filter: str
    id_attribute: str
    account_rules: tuple[AccountRule, ...] = ()
    type_markers: tuple[TypeMarker, ...] = ()

    def attributes(self) -> tuple[str, ...]:
        """Exactly the attributes the map reads, plus the identifier."""
        wanted = [self.id_attribute, *self.name_attributes, *self.email_attributes,
                  *self.description_attributes, *self.login_attributes,
                  *self.time_zone_attributes, *(rule.attribute for rule in self.account_rules),
                  *(marker.attribute for marker in self.type_markers)]
        if self.type is PrincipalType.GROUP:
            wanted += self.member_attributes
        return tuple(dict.fromkeys(wanted))  # de-duplicated, order kept

    def query(self, search_filter: str = "", attributes: tuple[str, ...] = ()) -> SearchQuery:
        """The search that reads this source (or a narrower filter / fewer attributes)."""
        attributes = attributes or self.attributes()
        return SearchQuery(self.base, search_filter or self.filter, attributes, self.scope,
                           frozenset(a.lower() for a in attributes) & BINARY_ATTRIBUTES)


def source_map(source: Values, flavor: Flavor, id_attribute: str = "") -> SourceMap:
    """Combine a [sources.NAME] section with the flavor's defaults."""
    kind = PrincipalType(source.type)

    def pick(option: str) -> tuple[str, ...]:
        configured = source[option]
        return tuple(configured) if configured is not None else getattr(flavor, option)

    return SourceMap(
        **{f.name: pick(f.name) for f in fields(AttributeMap)},
        name=source.name, type=kind, base=source.base, scope=source.scope,
        filter=source.filter or flavor.filters[kind], disabled_filter=source.disabled_filter,
        id_attribute=id_attribute or flavor.id_attribute,
        account_rules=flavor.account_rules if kind is PrincipalType.INDIVIDUAL else (),
        type_markers=flavor.type_markers)


@dataclass(frozen=True)
class Skipped:
    """An entry that cannot become a principal, and why."""

    dn: str
    reason: str


def principal_id(identifier: uuid.UUID) -> str:
    """The JMAP Id: ``p`` + 32 lower-case hex digits. A letter first, no case-only twins,
    never the sequence ``NIL`` (RFC 8620 §1.2 hygiene)."""
    return "p" + identifier.hex


def identifier_uuid(attribute: str, value: str | bytes) -> uuid.UUID:
    """The UUID of an identifier value: entryUUID text, a 16-byte objectGUID (stored
    little-endian, hence ``bytes_le``), or a stable uuid5 of anything else."""
    if isinstance(value, bytes):
        if len(value) == 16:
            return uuid.UUID(bytes_le=value)
        return uuid.uuid5(ID_NAMESPACE, f"{attribute.lower()}:{value.hex()}")
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return uuid.uuid5(ID_NAMESPACE, f"{attribute.lower()}:{value}")


def map_entry(entry: RawEntry, smap: SourceMap, disabled_ids: frozenset[str] = frozenset(),
              now: float | None = None) -> MappedEntry | Skipped:
    """Turn one raw entry into a principal; ``disabled_ids`` are the ids that matched the
    source's disabled filter, ``now`` the time account expiry is judged at (epoch seconds,
    default the current time)."""
    identifiers = entry.values(smap.id_attribute)
    if not identifiers:
        return Skipped(entry.dn, f"no {smap.id_attribute}")
    marked = _marked_types(entry, smap.type_markers)
    if marked and smap.type not in marked:
        return Skipped(entry.dn, f"marked as a {' / '.join(sorted(marked))} (a room or equipment "
                       f"mailbox), not a {smap.type}")
    try:
        key = dn_key(entry.dn)
    except InvalidDN as exc:
        return Skipped(entry.dn, f"unparseable DN ({exc})")
    warnings: list[str] = []
    pid = principal_id(identifier_uuid(smap.id_attribute, identifiers[0]))
    principal = Principal(
        id=pid, source=smap.name, type=smap.type, dn=entry.dn, dn_key=key,
        name=_name(entry, smap.name_attributes),
        description=_first(entry, smap.description_attributes),
        email=_checked(entry, smap.email_attributes, is_addr_spec, "email", warnings),
        time_zone=_checked(entry, smap.time_zone_attributes, is_time_zone, "timeZone", warnings),
        login=_first(entry, smap.login_attributes),
        disabled=pid in disabled_ids or _account_disabled(entry, smap.account_rules, now))
    refs = _member_refs(entry, smap.member_attributes, warnings) \
        if smap.type is PrincipalType.GROUP else ()
    return MappedEntry(principal, refs, tuple(warnings))


def _account_disabled(entry: RawEntry, rules: tuple[AccountRule, ...], now: float | None) -> bool:
    if not rules:
        return False
    at = time.time() if now is None else now
    return any(rule.disables(entry, at) for rule in rules)


def _marked_types(entry: RawEntry, markers: tuple[TypeMarker, ...]) -> set[PrincipalType]:
    return {marker.type for marker in markers
            if marker.value.casefold() in {v.strip().casefold() for v in _texts(entry, marker.attribute)}}


def _texts(entry: RawEntry, attribute: str) -> list[str]:
    return [v.strip() for v in entry.values(attribute) if isinstance(v, str) and v.strip()]


def _first(entry: RawEntry, attributes: tuple[str, ...]) -> str | None:
    for attribute in attributes:
        values = _texts(entry, attribute)
        if values:
            return values[0]
    return None


def _name(entry: RawEntry, attributes: tuple[str, ...]) -> str:
    """The first name attribute present; of several values, the one in the RDN. Falls back
    to the RDN's value, since a Principal's name is never null. ``entry.dn`` is valid."""
    rdn = {attr_type.lower(): value for attr_type, value in leaf_rdn(entry.dn)}
    for attribute in attributes:
        values = _texts(entry, attribute)
        if values:
            in_rdn = rdn.get(attribute.lower())
            return in_rdn if len(values) > 1 and in_rdn in values else values[0]
    return next(iter(rdn.values()), "").strip() or entry.dn


def _checked(entry: RawEntry, attributes: tuple[str, ...], valid, label: str,
             warnings: list[str]) -> str | None:
    """The first valid value; invalid ones seen before it become warnings."""
    for attribute in attributes:
        for value in _texts(entry, attribute):
            if valid(value):
                return value
            warnings.append(f"{label} {value!r} from {attribute} is not valid; ignored")
    return None


def _member_refs(entry: RawEntry, attributes: tuple[str, ...],
                 warnings: list[str]) -> tuple[MemberRef, ...]:
    refs: dict[MemberRef, None] = {}
    for attribute in attributes:
        login_valued = attribute.lower() in LOGIN_VALUED_MEMBERS
        for value in _texts(entry, attribute):
            if login_valued:
                refs[MemberRef("login", value.casefold())] = None  # uid is case-insensitive
                continue
            try:
                refs[MemberRef("dn", dn_key(strip_optional_uid(value)))] = None
            except InvalidDN:
                warnings.append(f"{attribute} value {value!r} is not a DN; ignored")
    return tuple(refs)
