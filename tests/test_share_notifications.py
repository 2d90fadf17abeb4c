"""ShareNotification (RFC 9670 §3): the methods, ingestion from groupware, and retention —
through the real app, for users of a real slapd."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from bridge import sync
from bridge.store import Store
from bridge.web import create_app
from tests.support import ldif
from tests.support.jmap import Jmap, basic, bearer

NOTIFY_TOKEN = "notify-token-0123456789"
JMAP_TOKEN = "jmap-token-0123456789"


READ = {"mayRead": True}


def event(recipient: str = "alice", object_id: str = "c1", old=None, new=READ, **extra) -> dict:
    return {"recipient": recipient, "changedBy": {"name": "Bob Builder", "email": "bob@example.org",
                                                  "principalId": None},
            "objectType": "Calendar", "objectAccountId": "a1", "objectId": object_id,
            "oldRights": old, "newRights": new, "name": "Team calendar", **extra}


class World:
    def __init__(self, slapd, make_settings, tmp_path, **sections) -> None:
        """Every World of one test shares its store: settings differ, data does not."""
        tokens = tmp_path / "tokens.toml"
        tokens.write_text(f'[[token]]\nname = "groupware"\ntoken = "{NOTIFY_TOKEN}"\nscopes = ["notify"]\n'
                          f'[[token]]\nname = "reader"\ntoken = "{JMAP_TOKEN}"\n')
        self.settings = make_settings(slapd, server={"token_file": str(tokens)}, **sections)
        sync.run(self.settings)
        self.client = TestClient(create_app(self.settings))
        self.alice = Jmap(self.client, basic("alice", ldif.PASSWORDS["alice"]))
        self.bob = Jmap(self.client, basic("bob", ldif.PASSWORDS["bob"]))

    def notify(self, *events, token: str = NOTIFY_TOKEN) -> list[dict]:
        response = self.client.post("/notify", json=list(events), headers=bearer(token))
        assert response.status_code == 200, response.text
        return response.json()["results"]

    def state(self, jmap: Jmap) -> str:
        return jmap.one("ShareNotification/get", ids=[])["state"]

    def ids(self, jmap: Jmap) -> list[str]:
        return jmap.one("ShareNotification/query", sort=[{"property": "created"}, {"property": "id"}])["ids"]


@pytest.fixture
def world(slapd, make_settings, tmp_path) -> World:
    return World(slapd, make_settings, tmp_path)


# -- the methods ----------------------------------------------------------------------------


def test_an_ingested_event_is_a_notification_with_every_property(world):
    (result,) = world.notify(event())

    got = world.alice.one("ShareNotification/get", ids=None)

    assert result == {"index": 0, "status": "created", "ids": result["ids"], "replaced": []}
    (notification,) = got["list"]
    assert notification == {"id": result["ids"][0], "created": notification["created"],
                            "changedBy": {"name": "Bob Builder", "email": "bob@example.org",
                                          "principalId": None},
                            "objectType": "Calendar", "objectAccountId": "a1", "objectId": "c1",
                            "oldRights": None, "newRights": {"mayRead": True}, "name": "Team calendar"}
    assert notification["created"].endswith("Z") and len(notification["created"]) == 20


def test_states_are_per_recipient(world):
    alice_state, bob_state = world.state(world.alice), world.state(world.bob)

    world.notify(event("bob"))

    assert world.state(world.alice) == alice_state
    assert world.state(world.bob) != bob_state
    assert world.alice.one("ShareNotification/get", ids=None)["list"] == []


def test_changes_report_creations_and_destructions(world):
    (first,) = world.notify(event(object_id="c1"))
    state = world.state(world.alice)
    (second,) = world.notify(event(object_id="c2"))
    world.alice.one("ShareNotification/set", destroy=first["ids"])

    result = world.alice.one("ShareNotification/changes", sinceState=state)

    assert (result["created"], result["updated"], result["destroyed"]) == (second["ids"], [], first["ids"])
    assert result["newState"] == world.state(world.alice) and not result["hasMoreChanges"]


def test_changes_page_with_max_changes(world):
    state = world.state(world.alice)
    world.notify(*[event(object_id=f"c{n}") for n in range(5)])

    seen, pages = [], 0
    while True:
        page = world.alice.one("ShareNotification/changes", sinceState=state, maxChanges=2)
        seen += page["created"]
        state, pages = page["newState"], pages + 1
        if not page["hasMoreChanges"]:
            break
    assert pages == 3 and len(set(seen)) == 5


def test_only_the_recipient_can_destroy_create_and_update_are_forbidden(world):
    (mine,) = world.notify(event("alice"))
    nid = mine["ids"][0]
    state = world.state(world.alice)

    by_bob = world.bob.one("ShareNotification/set", destroy=[nid])
    refused = world.alice.one("ShareNotification/set", create={"k": {"name": "x"}},
                              update={nid: {"name": "y"}})
    by_alice = world.alice.one("ShareNotification/set", ifInState=state, destroy=[nid])

    assert by_bob["notDestroyed"] == {nid: {"type": "notFound", "description": None}}
    assert refused["notCreated"]["k"]["type"] == refused["notUpdated"][nid]["type"] == "forbidden"
    assert by_alice["destroyed"] == [nid] and by_alice["newState"] != state
    assert world.alice.error("ShareNotification/set", ifInState=state, destroy=[])["type"] == "stateMismatch"


def test_query_filters_and_sorts(world):
    (cal,) = world.notify(event(object_id="c1"))
    (box,) = world.notify({**event(object_id="m1"), "objectType": "Mailbox", "objectAccountId": "a2"})
    ids = {"cal": cal["ids"][0], "box": box["ids"][0]}
    created = world.alice.one("ShareNotification/get", ids=[ids["cal"]])["list"][0]["created"]

    def query(condition, **extra):
        return world.alice.one("ShareNotification/query", filter=condition, **extra)["ids"]

    assert query({"objectType": "Mailbox"}) == [ids["box"]]
    assert query({"objectAccountId": "a1"}) == [ids["cal"]]
    assert sorted(query({"after": created})) == sorted(ids.values())
    assert query({"before": created}) == []
    assert query({"operator": "NOT", "conditions": [{"objectType": "Mailbox"}]}) == [ids["cal"]]
    by_id = query(None, sort=[{"property": "id", "isAscending": False}])
    assert by_id == sorted(ids.values(), reverse=True)


def _nested(depth: int) -> dict:
    condition: dict = {"objectType": "x"}
    for _ in range(depth - 1):
        condition = {"operator": "NOT", "conditions": [condition]}
    return condition


def test_filters_up_to_the_limits_are_accepted(world):
    """64 conditions (the operator counts as one), 8 deep."""
    widest = {"operator": "OR", "conditions": [{"objectType": "x"}] * 63}
    assert world.alice.one("ShareNotification/query", filter=widest)["ids"] == []
    assert world.alice.one("ShareNotification/query", filter=_nested(8))["ids"] == []


@pytest.mark.parametrize("arguments, kind", [
    ({"filter": {"objectKind": "x"}}, "unsupportedFilter"),
    ({"filter": {"after": "yesterday"}}, "invalidArguments"),
    ({"filter": {"after": "2026-01-01T00:00:00+01:00"}}, "invalidArguments"),
    ({"filter": {"objectType": 3}}, "invalidArguments"),
    ({"sort": [{"property": "name"}]}, "unsupportedSort"),
    ({"filter": {"operator": "OR", "conditions": [{"objectType": "x"}] * 64}}, "unsupportedFilter"),
    ({"filter": _nested(9)}, "unsupportedFilter"),
])
def test_bad_queries(world, arguments, kind):
    assert world.alice.error("ShareNotification/query", **arguments)["type"] == kind


def test_query_changes_turn_the_old_result_into_the_new(world):
    world.notify(event(object_id="c1"), event(object_id="c2"))
    query = {"sort": [{"property": "created", "isAscending": False}, {"property": "id"}]}
    old = world.alice.one("ShareNotification/query", **query)
    world.alice.one("ShareNotification/set", destroy=[old["ids"][0]])
    world.notify(event(object_id="c3"))

    result = world.alice.one("ShareNotification/queryChanges", sinceQueryState=old["queryState"],
                             calculateTotal=True, **query)
    new = world.alice.one("ShareNotification/query", **query)

    ids = [i for i in old["ids"] if i not in result["removed"]]
    for item in result["added"]:
        ids.insert(item["index"], item["id"])
    assert ids == new["ids"] and result["total"] == len(new["ids"]) == 2


# -- retention ------------------------------------------------------------------------------


def test_the_cap_destroys_the_oldest_and_says_so_in_changes(slapd, make_settings, tmp_path):
    world = World(slapd, make_settings, tmp_path, notifications={"max_per_recipient": 2})
    world.notify(event(object_id="c1"))
    oldest = world.ids(world.alice)[0]
    state = world.state(world.alice)

    (third,) = world.notify(event(object_id="c2"), event(object_id="c3"))[1:]

    assert third["replaced"] == [oldest]
    assert world.alice.one("ShareNotification/changes", sinceState=state)["destroyed"] == [oldest]
    assert len(world.ids(world.alice)) == 2


def test_repeated_changes_to_one_object_coalesce(world):
    (first,) = world.notify(event(old=None, new={"mayRead": True}))
    state = world.state(world.alice)

    (second,) = world.notify(event(old={"mayRead": True}, new={"mayRead": True, "mayWrite": True}))

    (kept,) = world.alice.one("ShareNotification/get", ids=None)["list"]
    assert second["replaced"] == first["ids"] and kept["id"] == second["ids"][0]
    assert (kept["oldRights"], kept["newRights"]) == (None, {"mayRead": True, "mayWrite": True})
    changes = world.alice.one("ShareNotification/changes", sinceState=state)
    assert (changes["created"], changes["destroyed"]) == (second["ids"], first["ids"])


def test_a_change_undone_within_the_window_leaves_no_notification(world):
    world.notify(event(old=None, new={"mayRead": True}))
    (undone,) = world.notify(event(old={"mayRead": True}, new=None))

    assert undone["ids"] == [] and len(undone["replaced"]) == 1
    assert world.alice.one("ShareNotification/get", ids=None)["list"] == []


def test_old_notifications_expire_and_show_as_destroyed(world):
    (old,) = world.notify(event(object_id="c1"))
    (recent,) = world.notify(event(object_id="c2"))
    state = world.state(world.alice)
    with sqlite3.connect(world.settings.store.path) as conn:
        conn.execute("UPDATE notifications SET created = '2020-01-01T00:00:00Z' WHERE id = ?", old["ids"])
    with Store.open(world.settings.store.path) as store:
        assert store.expire_notifications(world.settings.notifications.max_age) == 1

    assert world.alice.one("ShareNotification/changes", sinceState=state)["destroyed"] == old["ids"]
    assert world.ids(world.alice) == recent["ids"]


# -- ingestion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, reason", [
    ("not an object", "an event is a JSON object"),
    ({**event(), "extra": 1}, "unknown field 'extra'"),
    ({k: v for k, v in event().items() if k != "changedBy"}, "changedBy is required"),
    (event(recipient="nobody@nowhere"), "no principal has the id, login or email"),
    (event(recipient="dave"), "is disabled"),
    (event(recipient="staff"), None),  # not a login: no principal by that name
    ({**event(), "changedBy": {"name": "", "email": None, "principalId": None}}, "changedBy.name"),
    ({**event(), "changedBy": {"name": "B", "email": "not mail", "principalId": None}}, "changedBy.email"),
    ({**event(), "changedBy": {"name": "B", "email": None, "principalId": "pnope"}}, "changedBy.principalId"),
    ({**event(), "objectType": "Cal endar"}, "objectType"),
    ({**event(), "objectAccountId": "a b"}, "objectAccountId must be a JMAP Id"),
    ({**event(), "newRights": {"mayRead": "yes"}}, "newRights"),
    ({**event(), "name": "bell\x07"}, "name must be text"),
    (event(old={"mayRead": True}, new={"mayRead": True}), "nothing changed"),
])
def test_bad_events_are_rejected_one_by_one(world, bad, reason):
    results = world.notify(event(object_id="good1"), bad, event(object_id="good2"))

    assert [r["status"] for r in results] == ["created", "rejected", "created"]
    if reason:
        assert reason in results[1]["reason"], results[1]["reason"]


def test_recipients_by_id_login_or_email(world):
    with Store.open(world.settings.store.path) as store:
        alice_id = next(p.id for p in store.principals() if p.login == "alice")

    results = world.notify(event(alice_id, object_id="x1"), event("ALICE", object_id="x2"),
                           event("Alice@Example.org", object_id="x3"))

    assert [r["status"] for r in results] == ["created"] * 3
    assert len(world.ids(world.alice)) == 3


def test_a_group_recipient_is_refused_unless_expanded(slapd, make_settings, tmp_path):
    plain = World(slapd, make_settings, tmp_path)
    with Store.open(plain.settings.store.path) as store:
        staff = next(p.id for p in store.principals() if p.name == "staff")
    assert "is a group" in plain.notify(event(staff))[0]["reason"]

    small = World(slapd, make_settings, tmp_path, notifications={"expand_groups": True, "max_group_size": 1})
    assert "more than notifications.max_group_size" in small.notify(event(staff))[0]["reason"]

    expanded = World(slapd, make_settings, tmp_path, notifications={"expand_groups": True})
    (result,) = expanded.notify(event(staff))
    assert result["status"] == "created" and len(result["ids"]) == 2  # alice and bob
    assert len(expanded.ids(expanded.alice)) == len(expanded.ids(expanded.bob)) == 1


def test_ingestion_needs_a_token_with_the_notify_scope(world):
    body = [event()]
    assert world.client.post("/notify", json=body).status_code == 401
    assert world.client.post("/notify", json=body, headers=basic("alice", ldif.PASSWORDS["alice"])
                             ).status_code == 401
    assert world.client.post("/notify", json=body, headers=bearer(JMAP_TOKEN)).status_code == 403
    malformed = world.client.post("/notify", json={"not": "events"}, headers=bearer(NOTIFY_TOKEN))
    assert malformed.status_code == 400 and "array of share events" in malformed.json()["detail"]


def test_bridge_notify_reads_a_file(world, tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"events": [event(object_id="f1"), event(recipient="nobody")]}))

    done = subprocess.run([sys.executable, "-m", "bridge", "--config", world.settings.origin,
                           "notify", str(path)], capture_output=True, text=True, timeout=60)

    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1  # one event was rejected
    assert lines[0].startswith("0: created n") and lines[1].startswith("1: rejected: no principal")
    assert lines[-1] == "notify: 1 created, 1 rejected"
    assert len(world.ids(world.alice)) == 1


# -- states belong to one recipient and one type ------------------------------------------------


def test_another_users_state_or_a_principal_state_cannot_calculate_changes(world):
    world.notify(event("bob", object_id="b1"), event("bob", object_id="b2"))
    alice_state, bob_state = world.state(world.alice), world.state(world.bob)
    principal_state = world.bob.one("Principal/get", ids=[])["state"]
    assert alice_state != bob_state

    for foreign in (alice_state, principal_state):
        error = world.bob.error("ShareNotification/changes", sinceState=foreign)
        assert error["type"] == "cannotCalculateChanges", foreign
        assert world.bob.error("ShareNotification/queryChanges", sinceQueryState=foreign)["type"] \
            == "cannotCalculateChanges"
    assert world.bob.error("Principal/changes", sinceState=bob_state)["type"] == "cannotCalculateChanges"
    assert world.bob.one("ShareNotification/changes", sinceState=bob_state)["created"] == []


def test_pruning_old_history_keeps_current_states_usable(world):
    """Retention prunes a prefix of the whole log; a scope with nothing newer must still
    answer /changes from its current state, and an older state is refused."""
    (first,) = world.notify(event(object_id="c1"))
    older = world.state(world.alice)
    world.notify(event(object_id="c2"))
    current, principal_state = world.state(world.alice), world.alice.one("Principal/get", ids=[])["state"]
    world.notify(event("bob", object_id="b1"))
    with sqlite3.connect(world.settings.store.path) as conn:  # everything is a year old
        conn.execute("UPDATE changes SET at = '2020-01-01T00:00:00Z'")
    with Store.open(world.settings.store.path) as store, store.writing():
        from bridge.store import changes
        assert changes.prune(store._db, "2021-01-01T00:00:00Z") > 0

    assert world.alice.one("ShareNotification/changes", sinceState=current)["created"] == []
    assert world.alice.one("Principal/changes", sinceState=principal_state)["updated"] == []
    assert world.alice.error("ShareNotification/changes", sinceState=older)["type"] == \
        "cannotCalculateChanges"
    assert len(world.ids(world.alice)) == 2 and first["ids"][0] in world.ids(world.alice)


# -- recipients, limits and text ---------------------------------------------------------------


def test_a_login_shared_by_two_people_is_refused_not_guessed(slapd, make_settings, tmp_path):
    slapd.admin().add(f"cn=Alice Clone,{ldif.PEOPLE}", ["inetOrgPerson"],
                      {"cn": "Alice Clone", "sn": "Clone", "uid": "ALICE"})
    world = World(slapd, make_settings, tmp_path)

    (result,) = world.notify(event("alice"))

    assert result["status"] == "rejected" and "names 2 principals" in result["reason"]
    with Store.open(world.settings.store.path) as store:
        assert not any(store.notifications_of(p.id) for p in store.principals())


def test_a_zero_coalescing_window_never_coalesces(slapd, make_settings, tmp_path):
    world = World(slapd, make_settings, tmp_path, notifications={"coalesce_window": "0s"})
    results = world.notify(event(old=None, new=READ), event(old=READ, new=None))

    assert [r["replaced"] for r in results] == [[], []]
    assert len(world.ids(world.alice)) == 2


@pytest.mark.parametrize("name", [
    "Family 👨\u200d👩\u200d👧",                                 # ZWJ in an emoji sequence
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",   # ZWNJ in a Persian word
    "Hyphen\u00adated",                                        # soft hyphen
])
def test_names_may_hold_joiners_and_soft_hyphens(world, name):
    (result,) = world.notify({**event(), "name": name})
    assert result["status"] == "created", result
    assert world.alice.one("ShareNotification/get", ids=result["ids"])["list"][0]["name"] == name


@pytest.mark.parametrize("bad, reason", [
    ({**event(), "name": "evil\u202eexe.txt"}, "name must be text"),   # a bidi override
    ({**event(), "newRights": {"x" * 200: True}}, "rights names"),
    ({**event(), "newRights": {"may read": True}}, "rights names"),
])
def test_disguising_names_and_odd_rights_are_rejected(world, bad, reason):
    (result,) = world.notify(bad)
    assert result["status"] == "rejected" and reason in result["reason"]


def test_a_request_with_too_many_events_is_refused_whole(slapd, make_settings, tmp_path):
    world = World(slapd, make_settings, tmp_path, notifications={"max_events": 3})
    response = world.client.post("/notify", json=[event(object_id=f"o{n}") for n in range(4)],
                                 headers=bearer(NOTIFY_TOKEN))
    assert response.status_code == 400 and "at most 3" in response.json()["detail"]
    assert world.ids(world.alice) == []


def test_bridge_notify_splits_a_long_file_and_rejects_a_surrogate_on_its_own(
        slapd, make_settings, tmp_path):
    world = World(slapd, make_settings, tmp_path, notifications={"max_events": 2})
    events = [event(object_id=f"o{n}") for n in range(5)]
    events[3]["name"] = "\ud800"
    path = tmp_path / "events.json"
    path.write_text(json.dumps(events))  # json.dumps writes the lone surrogate as \ud800

    done = subprocess.run([sys.executable, "-m", "bridge", "--config", world.settings.origin,
                           "notify", str(path)], capture_output=True, text=True, timeout=60)

    assert done.returncode == 1, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["0", "1", "2", "3", "4"]
    assert "rejected: text contains a lone surrogate" in lines[3]
    assert lines[-1] == "notify: 4 created, 1 rejected"
    assert len(world.ids(world.alice)) == 4
