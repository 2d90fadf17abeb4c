"""Principal/get, /changes and /set through the real app, against a synced slapd."""

from __future__ import annotations

import ldap3
import pytest
from starlette.testclient import TestClient

from bridge import sync
from bridge.store import Store
from bridge.web import create_app
from tests.support import ldif
from tests.support.jmap import ACCOUNT, MEMBERSHIP, USING, Jmap, basic

VISIBLE = 32  # 34 principals, minus carol (locked) and dave (disabled filter)


def ids_by_dn(settings) -> dict[str, str]:
    with Store.open(settings.store.path) as store:
        return {p.dn: p.id for p in store.principals()}


def resync(settings) -> None:
    sync.run(settings, force=True)


# -- /get ---------------------------------------------------------------------------------


def test_get_with_null_ids_returns_every_visible_principal(alice):
    result = alice.one("Principal/get", ids=None)

    assert len(result["list"]) == VISIBLE and result["notFound"] == []
    assert {p["type"] for p in result["list"]} == {"individual", "group", "location", "resource"}


def test_get_with_null_ids_over_max_objects_is_request_too_large(slapd, make_settings):
    settings = make_settings(slapd, jmap={"max_objects_in_get": 10})
    sync.run(settings)
    with TestClient(create_app(settings)) as client:
        alice = Jmap(client, basic("alice", ldif.PASSWORDS["alice"]))
        assert alice.error("Principal/get", ids=None)["type"] == "requestTooLarge"
        assert alice.error("Principal/get", ids=[f"p{n}" for n in range(11)])["type"] == "requestTooLarge"
        assert len(alice.one("Principal/get", ids=[f"p{n}" for n in range(10)])["notFound"]) == 10


def test_get_golden_room(alice, synced):
    room_id = ids_by_dn(synced)[f"cn=Room 4B,{ldif.ROOMS}"]

    result = alice.one("Principal/get", ids=[room_id])

    assert result == {"accountId": ACCOUNT, "state": result["state"], "notFound": [], "list": [{
        "id": room_id, "type": "location", "name": "Room 4B", "description": "Fourth floor, 12 seats",
        "email": None, "timeZone": None, "capabilities": {}, "accounts": None}]}
    assert result["state"] == alice.one("Principal/query")["queryState"]


def test_get_properties_always_include_the_id(alice, synced):
    alice_id = ids_by_dn(synced)[ldif.person_dn("alice")]

    result = alice.one("Principal/get", ids=[alice_id], properties=["email"])

    assert result["list"] == [{"id": alice_id, "email": "alice@example.org"}]


def test_get_unknown_property_is_invalid_arguments(alice):
    assert alice.error("Principal/get", ids=[], properties=["members"])["type"] == "invalidArguments"


def test_get_not_found_for_unknown_and_hidden_ids_and_duplicates_once(alice, synced):
    ids = ids_by_dn(synced)
    alice_id, carol_id = ids[ldif.person_dn("alice")], ids[ldif.person_dn("carol")]

    result = alice.one("Principal/get", ids=[alice_id, "pnope", carol_id, alice_id, "pnope"])

    assert [p["id"] for p in result["list"]] == [alice_id]
    assert result["notFound"] == ["pnope", carol_id]


def test_disabled_principals_are_shown_when_configured(slapd, make_settings):
    settings = make_settings(slapd, jmap={"show_disabled": True})
    sync.run(settings)
    with TestClient(create_app(settings)) as client:
        alice = Jmap(client, basic("alice", ldif.PASSWORDS["alice"]))
        assert len(alice.one("Principal/get", ids=None)["list"]) == VISIBLE + 2


def test_membership_properties_only_with_the_bridge_capability(alice, synced):
    ids = ids_by_dn(synced)
    staff, alice_id = ids[ldif.group_dn("staff")], ids[ldif.person_dn("alice")]

    plain = alice.one("Principal/get", ids=[staff])["list"][0]
    opted = alice.one("Principal/get", ids=[staff, alice_id], using=[*USING, MEMBERSHIP])["list"]

    assert "members" not in plain and "memberOf" not in plain
    assert set(opted[0]["members"]) == {alice_id, ids[ldif.person_dn("bob")]}
    assert opted[1]["members"] is None  # not a group
    assert staff in opted[1]["memberOf"]


def test_accounts_follow_the_template_and_show_only_ones_own(slapd, make_settings):
    settings = make_settings(slapd, jmap={"account_id_template": "u-{login}",
                                          "account_capabilities": ["urn:ietf:params:jmap:calendars"]})
    sync.run(settings)
    ids = ids_by_dn(settings)
    alice_id, bob_id = ids[ldif.person_dn("alice")], ids[ldif.person_dn("bob")]
    with TestClient(create_app(settings)) as client:
        alice = Jmap(client, basic("alice", ldif.PASSWORDS["alice"]))
        found = {p["id"]: p for p in alice.one("Principal/get", ids=[alice_id, bob_id])["list"]}
        by_account = alice.one("Principal/query", filter={"accountIds": ["u-alice", "u-bob"]})

    assert found[bob_id]["accounts"] is None
    assert found[alice_id]["accounts"] == {"u-alice": {
        "name": "alice@example.org", "isPersonal": True, "isReadOnly": False,
        "accountCapabilities": {"urn:ietf:params:jmap:calendars": {},
                                "urn:ietf:params:jmap:principals:owner": {
                                    "accountIdForPrincipal": ACCOUNT, "principalId": alice_id}}}}
    assert by_account["ids"] == [alice_id]  # bob's account is not visible to alice


# -- /changes -----------------------------------------------------------------------------


def changes(jmap: Jmap, since: str, **args) -> dict:
    return jmap.one("Principal/changes", sinceState=since, **args)


def test_changes_report_an_update_a_creation_and_a_destruction(slapd, synced, alice):
    state = alice.one("Principal/get", ids=[])["state"]
    admin = slapd.admin()
    admin.modify(ldif.person_dn("alice"), {"description": [(ldap3.MODIFY_REPLACE, ["Audit"])]})
    admin.add(ldif.person_dn("zoe"), ["inetOrgPerson"], {"cn": "Zoe New", "sn": "New", "uid": "zoe"})
    admin.delete(ldif.person_dn("user020"))
    before = ids_by_dn(synced)
    resync(synced)
    after = ids_by_dn(synced)

    result = changes(alice, state)

    assert result["created"] == [after[ldif.person_dn("zoe")]]
    assert result["updated"] == [after[ldif.person_dn("alice")]]
    assert result["destroyed"] == [before[ldif.person_dn("user020")]]
    assert result["hasMoreChanges"] is False
    assert result["newState"] == alice.one("Principal/get", ids=[])["state"] != state
    assert changes(alice, result["newState"])["created"] == []


def test_changes_page_through_intermediate_states(slapd, synced, alice):
    state = alice.one("Principal/get", ids=[])["state"]
    admin = slapd.admin()
    for n in range(1, 8):
        admin.modify(ldif.person_dn(f"user{n:03d}"), {"description": [(ldap3.MODIFY_ADD, [f"d{n}"])]})
    resync(synced)

    seen, pages = [], 0
    while True:
        page = changes(alice, state, maxChanges=3)
        assert len(page["created"]) + len(page["updated"]) + len(page["destroyed"]) <= 3
        seen += page["updated"]
        state, pages = page["newState"], pages + 1
        if not page["hasMoreChanges"]:
            break

    assert pages == 3 and len(seen) == len(set(seen)) == 7


def test_a_principal_that_becomes_disabled_is_destroyed_for_clients(slapd, synced, alice):
    state = alice.one("Principal/get", ids=[])["state"]
    erin = ids_by_dn(synced)[ldif.person_dn("erin")]
    slapd.admin().modify(ldif.person_dn("erin"), {"employeeType": [(ldap3.MODIFY_ADD, ["former"])]})
    resync(synced)

    disabled = changes(alice, state)
    slapd.admin().modify(ldif.person_dn("erin"), {"employeeType": [(ldap3.MODIFY_DELETE, [])]})
    resync(synced)
    enabled = changes(alice, disabled["newState"])

    assert (disabled["destroyed"], disabled["updated"]) == ([erin], [])
    assert (enabled["created"], enabled["updated"]) == ([erin], [])
    assert changes(alice, state)["updated"] == [erin]  # visible at both ends: an update


@pytest.mark.parametrize("state", ["", "garbage", "abc-", "-12"])
def test_a_malformed_state_is_invalid_arguments(alice, state):
    assert alice.error("Principal/changes", sinceState=state)["type"] == "invalidArguments"


def test_a_state_of_another_database_or_from_the_future_cannot_be_calculated(alice):
    state = alice.one("Principal/get", ids=[])["state"]
    epoch, modseq = state.rsplit("-", 1)

    for foreign in (f"{'0' * 8}-1", f"{epoch}-{int(modseq) + 100}"):
        assert alice.error("Principal/changes", sinceState=foreign)["type"] == "cannotCalculateChanges"


def test_max_changes_must_be_positive(alice):
    state = alice.one("Principal/get", ids=[])["state"]
    assert alice.error("Principal/changes", sinceState=state, maxChanges=0)["type"] == "invalidArguments"


# -- /set: the self-edit policy ------------------------------------------------------------


def set_(jmap: Jmap, **args) -> dict:
    return jmap.one("Principal/set", **args)


def test_create_and_destroy_are_forbidden(alice, synced):
    bob = ids_by_dn(synced)[ldif.person_dn("bob")]

    result = set_(alice, create={"k1": {"name": "Mallory", "type": "individual"}},
                  destroy=[bob, "pnope"])

    assert result["notCreated"]["k1"]["type"] == "forbidden"
    assert result["notDestroyed"][bob]["type"] == "forbidden"
    assert result["notDestroyed"]["pnope"]["type"] == "notFound"
    assert result["created"] is None and result["destroyed"] is None
    assert result["newState"] == result["oldState"]


def test_editing_someone_else_is_forbidden(alice, synced):
    bob = ids_by_dn(synced)[ldif.person_dn("bob")]
    result = set_(alice, update={bob: {"name": "Bobby"}})
    assert result["notUpdated"][bob]["type"] == "forbidden"


def test_editing_ones_own_name_description_and_time_zone(slapd, synced, alice):
    me = ids_by_dn(synced)[ldif.person_dn("alice")]
    state = alice.one("Principal/get", ids=[])["state"]

    result = set_(alice, ifInState=state, update={me: {
        "name": "Alice Pleasance", "description": None, "timeZone": "America/New_York"}})

    assert result["updated"] == {me: None} and result["newState"] != state
    assert changes(alice, state)["updated"] == [me]
    slapd.admin().modify(ldif.person_dn("alice"), {"displayName": [(ldap3.MODIFY_REPLACE, ["A. L."])]})
    resync(synced)  # the directory changes too: the user's edit stays on top
    seen = alice.one("Principal/get", ids=[me])["list"][0]
    assert (seen["name"], seen["description"], seen["timeZone"]) == \
        ("Alice Pleasance", None, "America/New_York")
    with Store.open(synced.store.path) as store:
        audit = store.audit(me)
    assert [(a["field"], a["old"], a["new"], a["actor"]) for a in audit] == [
        ("name", "Alice L.", "Alice Pleasance", "alice"), ("description", "Finance", None, "alice"),
        ("time_zone", "Europe/Paris", "America/New_York", "alice")]


@pytest.mark.parametrize("patch, bad", [
    ({"timeZone": "Mars/Olympus"}, ["timeZone"]),
    ({"name": "   "}, ["name"]),
    ({"name": "tab\there"}, ["name"]),
    ({"name": "bell\x07"}, ["name"]),
    ({"name": 42}, ["name"]),
    ({"description": "x" * 5000}, ["description"]),
    ({"id": "pother"}, ["id"]),
    ({"capabilities": {"x": {}}}, ["capabilities"]),
    ({"accounts": {"a": {}}}, ["accounts"]),
    ({"color": "red"}, ["color"]),
])
def test_invalid_or_server_set_values_are_invalid_properties(alice, synced, patch, bad):
    me = ids_by_dn(synced)[ldif.person_dn("alice")]
    result = set_(alice, update={me: patch})
    assert result["notUpdated"][me]["type"] == "invalidProperties"
    assert result["notUpdated"][me]["properties"] == bad


@pytest.mark.parametrize("patch", [{"email": "new@example.org"}, {"type": "group"}])
def test_own_email_and_type_are_forbidden(alice, synced, patch):
    me = ids_by_dn(synced)[ldif.person_dn("alice")]
    result = set_(alice, update={me: patch})
    assert result["notUpdated"][me]["type"] == "forbidden"
    assert result["notUpdated"][me]["properties"] == list(patch)


def test_sending_current_values_changes_nothing_and_is_allowed(alice, synced):
    me = ids_by_dn(synced)[ldif.person_dn("alice")]
    state = alice.one("Principal/get", ids=[])["state"]

    result = set_(alice, update={me: {"id": me, "email": "alice@example.org", "name": "Alice L.",
                                      "accounts": None, "capabilities": {}}})

    assert result["updated"] == {me: None} and result["newState"] == state


def test_a_patch_into_a_property_is_invalid_patch(alice, synced):
    me = ids_by_dn(synced)[ldif.person_dn("alice")]
    result = set_(alice, update={me: {"name/first": "A"}})
    assert result["notUpdated"][me]["type"] == "invalidPatch"


def test_if_in_state_mismatch(alice):
    assert alice.error("Principal/set", ifInState="0-0", update={})["type"] == "stateMismatch"


def test_more_operations_than_max_objects_in_set(alice):
    error = alice.error("Principal/set", destroy=[f"p{n}" for n in range(501)])
    assert error["type"] == "requestTooLarge"


def test_properties_not_configured_editable_are_forbidden(slapd, make_settings):
    settings = make_settings(slapd, jmap={"editable_properties": ["timeZone"]})
    sync.run(settings)
    me = ids_by_dn(settings)[ldif.person_dn("alice")]
    with TestClient(create_app(settings)) as client:
        alice = Jmap(client, basic("alice", ldif.PASSWORDS["alice"]))
        result = set_(alice, update={me: {"name": "Other", "timeZone": "UTC"}})
    assert result["notUpdated"][me]["type"] == "forbidden"
    assert result["notUpdated"][me]["properties"] == ["name"]
