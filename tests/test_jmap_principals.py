"""Principal/get, /changes and /set through the real app, against a synced slapd."""

from __future__ import annotations

import sqlite3

import ldap3
import pytest
from starlette.testclient import TestClient

from bridge import sync
from bridge.model import MappedEntry, Principal, PrincipalType
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
    ids = ids_by_dn(synced)
    erin = ids[ldif.person_dn("erin")]
    groups = sorted([ids[ldif.group_dn("posix")], ids[ldif.group_dn("outer")]])
    slapd.admin().modify(ldif.person_dn("erin"), {"employeeType": [(ldap3.MODIFY_ADD, ["former"])]})
    resync(synced)

    disabled = changes(alice, state)
    slapd.admin().modify(ldif.person_dn("erin"), {"employeeType": [(ldap3.MODIFY_DELETE, [])]})
    resync(synced)
    enabled = changes(alice, disabled["newState"])

    # her groups' member lists lose and regain her: they are updated too
    assert (disabled["destroyed"], sorted(disabled["updated"])) == ([erin], groups)
    assert (enabled["created"], sorted(enabled["updated"])) == ([erin], groups)
    assert changes(alice, state)["updated"] == [erin]  # visible at both ends: an update


def test_hidden_principals_stay_out_of_member_lists(alice, synced, slapd):
    ids = ids_by_dn(synced)
    slapd.admin().modify(ldif.group_dn("staff"), {"member": [(ldap3.MODIFY_ADD, [ldif.person_dn("carol")])]})
    resync(synced)

    staff = alice.one("Principal/get", ids=[ids[ldif.group_dn("staff")]], using=[*USING, MEMBERSHIP])

    assert ids[ldif.person_dn("carol")] not in staff["list"][0]["members"]  # carol is locked
    assert ids[ldif.person_dn("alice")] in staff["list"][0]["members"]


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
    ({"capabilities/urn:x": {}}, ["capabilities"]),
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


# -- /changes collapsing (RFC 8620 §5.2), on a store the test drives --------------------------

PIDS = [f"p{n:032x}" for n in range(6)]


def person(pid: str, name: str = "x", disabled: bool = False) -> MappedEntry:
    return MappedEntry(Principal(id=pid, source="s", type=PrincipalType.INDIVIDUAL, dn=f"cn={pid}",
                                 dn_key=f"cn={pid}", name=name, login=pid, disabled=disabled))


def state_of(api) -> str:
    return api.jmap.one("Principal/get", ids=[])["state"]


def test_rfc8620_5_2_created_then_destroyed_is_omitted(store_api):
    store_api.apply([person(PIDS[0])])
    state = state_of(store_api)
    store_api.apply([person(PIDS[0]), person(PIDS[1])])
    store_api.apply([person(PIDS[0])])

    result = changes(store_api.jmap, state)

    assert (result["created"], result["updated"], result["destroyed"]) == ([], [], [])
    assert result["newState"] != state


def test_rfc8620_5_2_destroyed_then_recreated_is_an_update(store_api):
    store_api.apply([person(PIDS[0]), person(PIDS[1])])
    state = state_of(store_api)
    store_api.apply([person(PIDS[1])])
    store_api.apply([person(PIDS[0], "back"), person(PIDS[1])])

    result = changes(store_api.jmap, state)
    assert (result["created"], result["updated"], result["destroyed"]) == ([], [PIDS[0]], [])


def test_rfc8620_5_2_created_then_updated_is_created(store_api):
    state = state_of(store_api)
    store_api.apply([person(PIDS[0])])
    store_api.apply([person(PIDS[0], "renamed")])

    assert changes(store_api.jmap, state)["created"] == [PIDS[0]]


def test_pruned_history_cannot_be_calculated(store_api):
    old = state_of(store_api)  # before the rows that will be pruned
    store_api.apply([person(PIDS[0])])
    with sqlite3.connect(store_api.settings.store.path) as conn:
        conn.execute("UPDATE changes SET at = '2000-01-01T00:00:00Z'")
    store_api.apply([person(PIDS[0]), person(PIDS[1])], retention=86400)
    recent = state_of(store_api)

    assert store_api.jmap.error("Principal/changes", sinceState=old)["type"] == "cannotCalculateChanges"
    assert store_api.jmap.error("Principal/queryChanges", sinceQueryState=old)["type"] == \
        "cannotCalculateChanges"
    assert changes(store_api.jmap, recent)["created"] == []


def test_states_from_other_visibility_settings_cannot_be_calculated(slapd, make_settings):
    hidden = make_settings(slapd)
    sync.run(hidden)
    with TestClient(create_app(hidden)) as client:
        state = Jmap(client, basic("alice", ldif.PASSWORDS["alice"])).one("Principal/get", ids=[])["state"]
    shown = make_settings(slapd, jmap={"show_disabled": True})
    with TestClient(create_app(shown)) as client:
        alice = Jmap(client, basic("alice", ldif.PASSWORDS["alice"]))
        assert alice.error("Principal/changes", sinceState=state)["type"] == "cannotCalculateChanges"


def test_creation_ids_in_update_and_destroy(alice, synced):
    me = ids_by_dn(synced)[ldif.person_dn("alice")]
    response = alice.post({"using": USING, "createdIds": {"mine": me}, "methodCalls": [
        ["Principal/set", {"accountId": ACCOUNT, "update": {"#mine": {"timeZone": "UTC"}},
                           "destroy": ["#mine", "#unknown"]}, "0"]]}).json()
    result = response["methodResponses"][0][1]

    assert result["updated"] == {me: None}
    assert result["notDestroyed"] == {"#mine": {"type": "forbidden", "description": result[
        "notDestroyed"]["#mine"]["description"]}, "#unknown": {"type": "notFound", "description": None}}
