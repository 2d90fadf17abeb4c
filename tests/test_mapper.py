"""bridge.mapper: raw directory entries → principals, as a pure function tested by tables."""

from __future__ import annotations

import re
import uuid

import pytest

from bridge import config
from bridge.mapper import (
    FLAVORS,
    ID_NAMESPACE,
    Skipped,
    SourceMap,
    flavor_for,
    identifier_uuid,
    map_entry,
    principal_id,
    source_map,
)
from bridge.model import MappedEntry, MemberRef, PrincipalType, RawEntry

OPENLDAP = FLAVORS["openldap"]
UUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
PID = "p3f2504e04f8911d39a0c0305e82c3301"
PEOPLE = "ou=people,dc=example,dc=org"
GROUPS = "ou=groups,dc=example,dc=org"


def smap(type: str = "individual", base: str = PEOPLE, id_attribute: str = "",
         **options: str) -> SourceMap:
    """The SourceMap of one source configured through BRIDGE_SOURCES__S__* variables."""
    environ = {"BRIDGE_SOURCES__S__TYPE": type, "BRIDGE_SOURCES__S__BASE": base}
    environ |= {f"BRIDGE_SOURCES__S__{name.upper()}": value for name, value in options.items()}
    return source_map(config.load(None, environ=environ).sources[0], OPENLDAP, id_attribute)


def entry(dn: str, **attributes: str | bytes | tuple) -> RawEntry:
    return RawEntry(dn=dn, attributes={
        name.lower(): values if isinstance(values, tuple) else (values,)
        for name, values in attributes.items()})


def person(dn: str = f"uid=jdoe,{PEOPLE}", **attributes) -> RawEntry:
    return entry(dn, **{"entryUUID": UUID, **attributes})


def mapped(raw: RawEntry, source: SourceMap | None = None, **kwargs) -> MappedEntry:
    result = map_entry(raw, source or smap(), **kwargs)
    assert isinstance(result, MappedEntry), result
    return result


# --- identity --------------------------------------------------------------------------

def test_id_is_p_and_32_lower_case_hex_digits_of_the_entry_uuid():
    principal = mapped(person(entryUUID=UUID.upper())).principal
    assert principal.id == PID
    assert re.fullmatch(r"p[0-9a-f]{32}", principal.id)


def test_same_entry_uuid_gives_the_same_id_after_a_rename():
    before = mapped(person(f"uid=jdoe,{PEOPLE}")).principal
    after = mapped(person(f"uid=jane.doe,ou=staff,{PEOPLE}")).principal
    assert before.id == after.id == PID


def test_different_entry_uuids_give_different_ids():
    other = "3f2504e0-4f89-11d3-9a0c-0305e82c3302"
    assert mapped(person(entryUUID=other)).principal.id != PID


def test_principal_id_of_a_uuid():
    assert principal_id(uuid.UUID(UUID)) == PID


def test_16_byte_object_guid_is_read_little_endian():
    guid = bytes(range(1, 17))
    assert identifier_uuid("objectGUID", guid) == uuid.UUID(bytes_le=guid)
    assert identifier_uuid("objectGUID", guid) != uuid.UUID(bytes=guid)


def test_object_guid_identifier_gives_the_id_of_its_little_endian_uuid():
    guid = bytes(range(1, 17))
    raw = entry(f"uid=jdoe,{PEOPLE}", objectGUID=guid)
    principal = mapped(raw, smap(id_attribute="objectGUID")).principal
    assert principal.id == "p" + uuid.UUID(bytes_le=guid).hex


@pytest.mark.parametrize("attribute, value", [
    ("uid", "jdoe"),
    ("employeeNumber", "12345"),
    ("objectGUID", b"\x01\x02\x03"),  # bytes, but not 16 of them
])
def test_non_uuid_identifier_gives_a_stable_uuid5(attribute, value):
    first = identifier_uuid(attribute, value)
    assert first == identifier_uuid(attribute, value)
    assert first.version == 5
    shown = value.hex() if isinstance(value, bytes) else value
    assert first == uuid.uuid5(ID_NAMESPACE, f"{attribute.lower()}:{shown}")


def test_uuid5_ids_never_change_between_releases():
    """Pinned: a changed namespace or name format would re-create every principal."""
    assert principal_id(identifier_uuid("uid", "jdoe")) == "p5435414d50e653eaaf3fb17f704a898a"


def test_uuid5_id_ignores_the_case_of_the_attribute_name_only():
    assert identifier_uuid("UID", "jdoe") == identifier_uuid("uid", "jdoe")
    assert identifier_uuid("uid", "JDoe") != identifier_uuid("uid", "jdoe")
    assert identifier_uuid("cn", "jdoe") != identifier_uuid("uid", "jdoe")


def test_entry_without_the_identifier_is_skipped_with_a_reason():
    raw = entry(f"uid=jdoe,{PEOPLE}", cn="Jane Doe")
    result = map_entry(raw, smap())
    assert isinstance(result, Skipped)
    assert result.dn == raw.dn
    assert "entryUUID" in result.reason


def test_entry_with_an_unparseable_dn_is_skipped():
    result = map_entry(person("not a dn"), smap())
    assert isinstance(result, Skipped)
    assert "DN" in result.reason


# --- principal fields ------------------------------------------------------------------

@pytest.mark.parametrize("dn, attributes, name", [
    (f"uid=jdoe,{PEOPLE}", {"displayName": "Jane D.", "cn": "Jane Doe"}, "Jane D."),
    (f"uid=jdoe,{PEOPLE}", {"cn": "Jane Doe"}, "Jane Doe"),
    (f"uid=jdoe,{PEOPLE}", {"displayName": "   ", "cn": "Jane Doe"}, "Jane Doe"),
    (f"uid=jdoe,{PEOPLE}", {"cn": "  Jane Doe  "}, "Jane Doe"),
    (f"cn=Jane Doe,{PEOPLE}", {"cn": ("J. Doe", "Jane Doe")}, "Jane Doe"),
    (f"uid=jdoe,{PEOPLE}", {"cn": ("J. Doe", "Jane Doe")}, "J. Doe"),
    (f"uid=jdoe,{PEOPLE}", {}, "jdoe"),
    (f"cn=Smith\\, Jane,{PEOPLE}", {}, "Smith, Jane"),
])
def test_name_is_the_first_name_attribute_present(dn, attributes, name):
    assert mapped(person(dn, **attributes)).principal.name == name


def test_configured_name_attributes_replace_the_flavor_defaults():
    source = smap(name_attributes="cn")
    assert source.name_attributes == ("cn",)
    raw = person(displayName="Jane D.", cn="Jane Doe")
    assert mapped(raw, source).principal.name == "Jane Doe"


def test_principal_carries_source_type_and_dn():
    principal = mapped(person(f"UID=JDoe, {PEOPLE}")).principal
    assert (principal.source, principal.type) == ("s", PrincipalType.INDIVIDUAL)
    assert principal.dn == f"UID=JDoe, {PEOPLE}"
    assert principal.dn_key == f"uid=jdoe,{PEOPLE}"


@pytest.mark.parametrize("mail, email, warned", [
    ("jane@example.org", "jane@example.org", []),
    (" jane@example.org ", "jane@example.org", []),
    ("Jane Doe <jane@example.org>", None, ["Jane Doe <jane@example.org>"]),
    (("bob(at)example.org", "jane@example.org"), "jane@example.org", ["bob(at)example.org"]),
    (("jane@example.org", "not valid"), "jane@example.org", []),
])
def test_email_is_the_first_valid_addr_spec_and_invalid_ones_warn(mail, email, warned):
    result = mapped(person(mail=mail))
    assert result.principal.email == email
    assert len(result.warnings) == len(warned)
    for warning, value in zip(result.warnings, warned, strict=True):
        assert repr(value) in warning and "mail" in warning


def test_email_attributes_are_tried_in_order():
    source = smap(email_attributes="mail,otherMailbox")
    raw = person(mail="broken", otherMailbox="jane@example.org")
    assert mapped(raw, source).principal.email == "jane@example.org"


@pytest.mark.parametrize("locality, zone, warnings", [
    ("Europe/Paris", "Europe/Paris", 0),
    ("Mars/Olympus", None, 1),
    ("europe/paris", None, 1),
])
def test_time_zone_must_be_an_iana_zone(locality, zone, warnings):
    result = mapped(person(l=locality), smap(time_zone_attributes="l"))
    assert result.principal.time_zone == zone
    assert len(result.warnings) == warnings
    assert all(repr(locality) in w and "timeZone" in w for w in result.warnings)


def test_flavor_reads_no_time_zone_by_default():
    result = mapped(person(l="Europe/Paris"))
    assert result.principal.time_zone is None
    assert result.warnings == ()


def test_description_and_login_are_first_values():
    raw = person(description=("Head of IT", "Coffee"), uid=("jdoe", "jane"))
    principal = mapped(raw).principal
    assert (principal.description, principal.login) == ("Head of IT", "jdoe")


def test_absent_optional_fields_are_none():
    principal = mapped(person()).principal
    assert (principal.description, principal.email, principal.time_zone, principal.login) \
        == (None, None, None, None)


# --- disabled --------------------------------------------------------------------------

@pytest.mark.parametrize("attributes, disabled_ids, disabled", [
    ({}, frozenset(), False),
    # a lockout after failed binds expires by itself: not a disabled account
    ({"pwdAccountLockedTime": "20240101000000Z"}, frozenset(), False),
    ({"pwdAccountLockedTime": "000001010000Z"}, frozenset(), True),  # locked by an administrator
    ({}, frozenset({PID}), True),
    ({}, frozenset({"p" + "0" * 32}), False),
])
def test_disabled_by_administrative_lock_or_disabled_filter_match(attributes, disabled_ids, disabled):
    result = mapped(person(**attributes), disabled_ids=disabled_ids)
    assert result.principal.disabled is disabled


# --- group members ---------------------------------------------------------------------

def group(**attributes) -> RawEntry:
    return entry(f"cn=staff,{GROUPS}", entryUUID=UUID, cn="staff", **attributes)


@pytest.mark.parametrize("attribute, value, ref", [
    ("member", f"UID=JDoe , {PEOPLE}", MemberRef("dn", f"uid=jdoe,{PEOPLE}")),
    ("member", f"cn=Smith\\, Jane,{PEOPLE}", MemberRef("dn", f"cn=smith\\, jane,{PEOPLE}")),
    ("uniqueMember", f"uid=jdoe,{PEOPLE}#'0101'B", MemberRef("dn", f"uid=jdoe,{PEOPLE}")),
    ("uniqueMember", f"uid=jdoe,{PEOPLE}", MemberRef("dn", f"uid=jdoe,{PEOPLE}")),
    ("memberUid", "jdoe", MemberRef("login", "jdoe")),
])
def test_group_member_values_become_normalised_refs(attribute, value, ref):
    result = mapped(group(**{attribute: value}), smap("group", GROUPS))
    assert result.member_refs == (ref,)
    assert result.warnings == ()


def test_member_value_that_is_not_a_dn_warns_and_gives_no_ref():
    raw = group(member=("not a dn", f"uid=jdoe,{PEOPLE}"))
    result = mapped(raw, smap("group", GROUPS))
    assert result.member_refs == (MemberRef("dn", f"uid=jdoe,{PEOPLE}"),)
    assert len(result.warnings) == 1
    assert "member" in result.warnings[0] and "'not a dn'" in result.warnings[0]


def test_duplicate_member_refs_are_removed():
    raw = group(member=(f"uid=jdoe,{PEOPLE}", "UID=jdoe, OU=People,DC=example,DC=org"),
                uniqueMember=f"uid=jdoe,{PEOPLE}#'1'B", memberUid=("jdoe", "jdoe"))
    refs = mapped(raw, smap("group", GROUPS)).member_refs
    assert sorted(refs, key=repr) == [MemberRef("dn", f"uid=jdoe,{PEOPLE}"),
                                      MemberRef("login", "jdoe")]


def test_configured_member_attributes_replace_the_flavor_defaults():
    raw = group(member=f"uid=a,{PEOPLE}", memberUid="b")
    refs = mapped(raw, smap("group", GROUPS, member_attributes="memberUid")).member_refs
    assert refs == (MemberRef("login", "b"),)


def test_non_group_source_ignores_member_attributes():
    raw = person(member=f"uid=other,{PEOPLE}", memberUid="other")
    result = mapped(raw, smap("individual", member_attributes="member,memberUid"))
    assert result.member_refs == ()


# --- source maps -----------------------------------------------------------------------

PERSON_ATTRIBUTES = ("entryUUID", "displayName", "cn", "mail", "description", "uid",
                     "pwdAccountLockedTime")


@pytest.mark.parametrize("source, expected", [
    (lambda: smap(), PERSON_ATTRIBUTES),
    (lambda: smap(time_zone_attributes="l"), (*PERSON_ATTRIBUTES[:-1], "l", PERSON_ATTRIBUTES[-1])),
    # account state is an individual's: groups and rooms do not read it
    (lambda: smap("group", GROUPS), (*PERSON_ATTRIBUTES[:-1], "member", "uniqueMember", "memberUid")),
    (lambda: smap("location"), PERSON_ATTRIBUTES[:-1]),
    (lambda: smap(id_attribute="nsUniqueId"), ("nsUniqueId", *PERSON_ATTRIBUTES[1:])),
    (lambda: smap(name_attributes="cn,uid", email_attributes="mail,mail"),
     ("entryUUID", "cn", "uid", "mail", "description", "pwdAccountLockedTime")),
])
def test_source_requests_exactly_the_attributes_it_maps(source, expected):
    assert source().attributes() == expected


def test_empty_attribute_list_reads_nothing_for_that_field():
    source = smap(name_attributes="", email_attributes="")
    assert "displayName" not in source.attributes() and "mail" not in source.attributes()
    principal = mapped(person(displayName="Jane", mail="jane@example.org"), source).principal
    assert (principal.name, principal.email) == ("jdoe", None)


@pytest.mark.parametrize("type, default_filter", [
    ("individual", "(objectClass=inetOrgPerson)"),
    ("group", "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
              "(objectClass=posixGroup))"),
    ("location", "(objectClass=room)"),
    ("resource", "(objectClass=device)"),
    ("other", "(objectClass=*)"),
])
def test_filter_defaults_by_type(type, default_filter):
    assert smap(type).filter == default_filter


def test_configured_search_settings_pass_through():
    source = smap(filter="(objectClass=person)", scope="one",
                  disabled_filter="(employeeType=former)")
    assert (source.name, source.type, source.base, source.scope, source.filter,
            source.disabled_filter) == ("s", PrincipalType.INDIVIDUAL, PEOPLE, "one",
                                        "(objectClass=person)", "(employeeType=former)")


# --- flavors ---------------------------------------------------------------------------

@pytest.mark.parametrize("configured, detected, name", [
    ("auto", "openldap", "openldap"),
    ("auto", "generic", "generic"),
    ("openldap", "generic", "openldap"),
    ("generic", "openldap", "generic"),
    ("auto", "ad", "ad"),
    ("ad", "openldap", "ad"),
])
def test_flavor_is_the_configured_one_or_the_detected_one(configured, detected, name):
    assert flavor_for(configured, detected).name == name


def test_source_query_keeps_object_guid_as_bytes():
    source = smap(id_attribute="objectGUID")

    query = source.query()

    assert query.attributes[0] == "objectGUID"
    assert query.binary == frozenset({"objectguid"})
    assert source.query("(uid=x)", ("objectGUID",)).filter == "(uid=x)"
