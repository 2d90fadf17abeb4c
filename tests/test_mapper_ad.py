"""The Active Directory flavor of bridge.mapper, as tables: objectGUID ids, the
userAccountControl bit, accountExpires, Exchange room and equipment markers, logins."""

from __future__ import annotations

import uuid

import pytest

from bridge import config
from bridge.account_state import epoch_to_filetime, filetime_to_epoch
from bridge.mapper import FLAVORS, Skipped, SourceMap, map_entry, source_map
from bridge.model import MappedEntry, PrincipalType, RawEntry

AD = FLAVORS["ad"]
NOW = 1_800_000_000.0  # 2027-01-15, fixed: expiry is judged at an explicit time
GUID = uuid.UUID("d6f73a7a-9361-4b0e-8a2b-3c4d5e6f7081")
USERS = "OU=People,DC=example,DC=test"


def smap(type: str = "individual", base: str = USERS, **options: str) -> SourceMap:
    environ = {"BRIDGE_SOURCES__S__TYPE": type, "BRIDGE_SOURCES__S__BASE": base}
    environ |= {f"BRIDGE_SOURCES__S__{name.upper()}": value for name, value in options.items()}
    return source_map(config.load(None, environ=environ).sources[0], AD)


def user(cn: str = "Jane Doe", **attributes: str | bytes | tuple) -> RawEntry:
    values = {"objectGUID": GUID.bytes_le, "cn": cn, "sAMAccountName": "jdoe",
              "userPrincipalName": "jdoe@example.test", "userAccountControl": "512", **attributes}
    return RawEntry(f"CN={cn},{USERS}", {name.lower(): v if isinstance(v, tuple) else (v,)
                                         for name, v in values.items()})


def mapped(raw: RawEntry, source: SourceMap | None = None) -> MappedEntry:
    result = map_entry(raw, source or smap(), now=NOW)
    assert isinstance(result, MappedEntry), result
    return result


def test_id_is_the_object_guid_read_little_endian_as_windows_stores_it():
    assert mapped(user()).principal.id == "p" + GUID.hex


def test_a_rename_or_a_move_keeps_the_id():
    moved = RawEntry(f"CN=Jane Smith,OU=Moved,{USERS}", user().attributes)
    assert mapped(moved).principal.id == mapped(user()).principal.id


@pytest.mark.parametrize("uac, disabled", [
    ("512", False),      # NORMAL_ACCOUNT
    ("514", True),       # NORMAL_ACCOUNT | ACCOUNTDISABLE
    ("544", False),      # NORMAL_ACCOUNT | PASSWD_NOTREQD
    ("546", True),       # ... | ACCOUNTDISABLE
    ("66048", False),    # NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD
    ("66050", True),     # ... | ACCOUNTDISABLE: a value no fixed list of "disabled values" names
    ("2", True),
    ("16", False),       # LOCKOUT is not disabled: it lifts itself
    ("not a number", False),
])
def test_disabled_is_the_accountdisable_bit_of_user_account_control(uac, disabled):
    assert mapped(user(userAccountControl=uac)).principal.disabled is disabled


@pytest.mark.parametrize("expires, disabled", [
    (0, False),                          # never
    (0x7FFF_FFFF_FFFF_FFFF, False),      # never, as AD writes it for new accounts
    (epoch_to_filetime(NOW + 86400), False),
    (epoch_to_filetime(NOW - 86400), True),
    (epoch_to_filetime(NOW), True),      # expires at that instant
])
def test_account_expires_in_the_past_disables(expires, disabled):
    principal = mapped(user(accountExpires=str(expires))).principal
    assert principal.disabled is disabled


def test_filetime_conversion_round_trips_and_knows_the_1601_epoch():
    assert filetime_to_epoch(116_444_736_000_000_000) == 0
    assert filetime_to_epoch(epoch_to_filetime(NOW)) == pytest.approx(NOW)


def test_rooms_and_groups_have_no_account_state():
    # Exchange room mailboxes are disabled user accounts by design
    room = user("Room 1", userAccountControl="514", msExchRecipientTypeDetails="16")
    assert mapped(room, smap("location")).principal.disabled is False
    assert smap("group").account_rules == () and smap("location").account_rules == ()
    assert "userAccountControl" not in smap("group").attributes()


@pytest.mark.parametrize("attributes, type", [
    ({"msExchRecipientTypeDetails": "16"}, "location"),
    ({"msExchRecipientTypeDetails": "32"}, "resource"),
    ({"msExchResourceMetaData": ("ResourceType:Room", "Capacity:12")}, "location"),
    ({"msExchResourceMetaData": "resourcetype:equipment"}, "resource"),
])
def test_exchange_room_and_equipment_mailboxes_are_not_individuals(attributes, type):
    raw = user("Room 1", **attributes)
    skipped = map_entry(raw, smap(), now=NOW)
    assert isinstance(skipped, Skipped) and type in skipped.reason
    assert mapped(raw, smap(type)).principal.type == PrincipalType(type)


def test_an_ordinary_mailbox_is_an_individual():
    assert mapped(user(msExchRecipientTypeDetails="1")).principal.type is PrincipalType.INDIVIDUAL


def test_ad_defaults_name_email_login_description():
    principal = mapped(user(displayName="Jane Q. Doe", mail="jane@example.test",
                            description="Accounts")).principal
    assert (principal.name, principal.email, principal.login, principal.description) == (
        "Jane Q. Doe", "jane@example.test", "jdoe", "Accounts")


def test_name_falls_back_to_cn_and_email_is_never_the_upn_unless_configured():
    principal = mapped(user()).principal
    assert (principal.name, principal.email) == ("Jane Doe", None)
    configured = smap(email_attributes="mail,userPrincipalName")
    assert mapped(user(), configured).principal.email == "jdoe@example.test"


@pytest.mark.parametrize("type, expected", [
    ("individual", "(&(objectCategory=person)(objectClass=user))"),
    ("group", "(objectClass=group)"),
    ("location", "(&(objectClass=user)(|(msExchRecipientTypeDetails=16)"
                 "(msExchResourceMetaData=ResourceType:Room)))"),
    ("resource", "(&(objectClass=user)(|(msExchRecipientTypeDetails=32)"
                 "(msExchResourceMetaData=ResourceType:Equipment)))"),
])
def test_ad_default_filters(type, expected):
    assert smap(type).filter == expected


def test_a_configured_filter_replaces_the_default():
    assert smap("location", filter="(description=meeting room)").filter == "(description=meeting room)"


def test_object_guid_is_requested_and_kept_binary():
    query = smap("group").query()
    assert query.attributes[0] == "objectGUID" and "member" in query.attributes
    assert "objectguid" in query.binary
