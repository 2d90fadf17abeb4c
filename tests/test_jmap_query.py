"""Principal/query and Principal/queryChanges: examples against slapd, and the RFC 8620 §5.6
client algorithm as a property over random filters, sorts and directory changes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import ldap3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bridge import config, sync
from bridge.model import MappedEntry, Principal, PrincipalType
from bridge.store import Store
from bridge.web import create_app
from tests.support import ldif
from tests.support.jmap import Jmap, bearer


def names(jmap: Jmap, **args) -> list[str]:
    ids = jmap.one("Principal/query", **args)["ids"]
    found = {p["id"]: p["name"] for p in jmap.one("Principal/get", ids=ids)["list"]}
    return [found[i] for i in ids]


# -- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize("condition, expected", [
    ({"name": "ROOM"}, ["Boardroom", "Room 4B"]),
    ({"email": "@example.org", "type": "individual"}, None),  # checked by count below
    ({"text": "floor"}, ["Room 4B"]),  # description
    ({"type": "resource"}, ["Projector 1"]),
    ({"timeZone": "Europe/Paris"}, ["Alice L."]),
    ({"operator": "OR", "conditions": [{"name": "alice"}, {"name": "erin"}]}, ["Alice L.", "Erin Plain"]),
    ({"operator": "AND", "conditions": [{"type": "group"}, {"name": "er"}]}, ["inner", "outer"]),
    ({"operator": "NOT", "conditions": [{"type": "individual"}, {"type": "group"}]},
     ["Boardroom", "Projector 1", "Room 4B"]),
])
def test_filter_conditions_and_operators(alice, condition, expected):
    found = names(alice, filter=condition, sort=[{"property": "name"}])
    if expected is None:
        assert len(found) == 21  # alice and the 20 generated (bob: invalid mail; carol, dave: hidden)
    else:
        assert found == expected


def test_an_unknown_filter_key_is_unsupported_filter(alice):
    assert alice.error("Principal/query", filter={"role": "x"})["type"] == "unsupportedFilter"


@pytest.mark.parametrize("condition", [
    {"name": 5}, {"accountIds": "a"}, {"operator": "XOR", "conditions": []}, {"operator": "AND"},
    {"operator": "AND", "conditions": [5]}])
def test_filter_values_of_the_wrong_type_are_invalid_arguments(alice, condition):
    assert alice.error("Principal/query", filter=condition)["type"] == "invalidArguments"


# -- sorting --------------------------------------------------------------------------------


def test_sorts_by_name_email_type_and_id_with_ties_by_id(alice):
    by_type = alice.one("Principal/query", sort=[{"property": "type", "isAscending": False},
                                                 {"property": "name"}])["ids"]
    got = {p["id"]: p for p in alice.one("Principal/get", ids=by_type)["list"]}
    types = [got[i]["type"] for i in by_type]
    assert types == sorted(types, reverse=True)
    assert names(alice, filter={"type": "location"}, sort=[{"property": "name", "isAscending": False}]) == \
        ["Room 4B", "Boardroom"]
    by_id = alice.one("Principal/query", sort=[{"property": "id"}])["ids"]
    assert by_id == sorted(by_id) == alice.one("Principal/query")["ids"]
    emails = alice.one("Principal/query", sort=[{"property": "email"}])["ids"]
    assert [got[i]["email"] for i in emails][-1] is None  # nulls last


def test_collations_differ_where_they_should(alice, slapd, synced):
    """'_' (0x5F) lies between the capitals and the small letters; 'é' beyond ASCII."""
    for uid, shown in (("under", "_under"), ("zed", "zed lower"), ("emile", "émile")):
        slapd.admin().add(ldif.person_dn(uid), ["inetOrgPerson"],
                          {"cn": uid, "sn": uid, "uid": uid, "displayName": shown})
    sync.run(synced)

    def ordered(collation):
        return names(alice, filter={"type": "individual"},
                     sort=[{"property": "name", "collation": collation}])

    octet, ascii_, unicode_ = ordered("i;octet"), ordered("i;ascii-casemap"), ordered("i;unicode-casemap")
    assert octet.index("_under") < octet.index("zed lower")  # as code points
    assert ascii_.index("zed lower") < ascii_.index("_under")  # upper-cased: 'Z' before '_'
    assert ascii_[-1] == "émile"  # no case for non-ASCII letters
    assert unicode_.index("émile") < unicode_.index("User 001")  # É decomposes to E


@pytest.mark.parametrize("sort, kind", [
    ([{"property": "timeZone"}], "unsupportedSort"),
    ([{"property": "name", "collation": "i;x"}], "unsupportedSort"),
    ([{"property": "name", "isAscending": "yes"}], "invalidArguments"),
    ([{"prop": "name"}], "invalidArguments"),
    (["name"], "invalidArguments"),
])
def test_bad_comparators(alice, sort, kind):
    assert alice.error("Principal/query", sort=sort)["type"] == kind


# -- windows ---------------------------------------------------------------------------------


def test_position_limit_total_and_negative_position(alice):
    everyone = alice.one("Principal/query", sort=[{"property": "name"}])["ids"]

    page = alice.one("Principal/query", sort=[{"property": "name"}], position=5, limit=3, calculateTotal=True)
    tail = alice.one("Principal/query", sort=[{"property": "name"}], position=-2)
    beyond = alice.one("Principal/query", position=1000)

    assert (page["ids"], page["position"], page["total"]) == (everyone[5:8], 5, len(everyone))
    assert (tail["ids"], tail["position"]) == (everyone[-2:], len(everyone) - 2)
    assert beyond["ids"] == [] and "total" not in beyond
    assert page["canCalculateChanges"] is True


def test_anchor_and_anchor_offset(alice):
    everyone = alice.one("Principal/query", sort=[{"property": "name"}])["ids"]

    around = alice.one("Principal/query", sort=[{"property": "name"}], anchor=everyone[10],
                       anchorOffset=-2, limit=3, position=99)

    assert (around["ids"], around["position"]) == (everyone[8:11], 8)
    assert alice.error("Principal/query", anchor="pnope")["type"] == "anchorNotFound"


def test_a_negative_limit_is_invalid_arguments(alice):
    assert alice.error("Principal/query", limit=-1)["type"] == "invalidArguments"


# -- /queryChanges examples ------------------------------------------------------------------


def test_query_changes_after_a_rename_moves_the_entry(alice, slapd, synced):
    query = {"filter": {"type": "location"}, "sort": [{"property": "name"}]}
    before = alice.one("Principal/query", **query)
    slapd.admin().modify_dn(f"cn=Boardroom,{ldif.ROOMS}", "cn=Zeppelin")
    sync.run(synced)

    result = alice.one("Principal/queryChanges", sinceQueryState=before["queryState"],
                       calculateTotal=True, **query)
    after = alice.one("Principal/query", **query)

    moved = before["ids"][0]
    assert result["removed"] == [moved] and result["added"] == [{"id": moved, "index": 1}]
    assert result["newQueryState"] == after["queryState"] and result["total"] == 2
    assert apply_changes(before["ids"], result) == after["ids"]


def test_query_changes_with_too_many_changes_or_an_unknown_state(alice, slapd, synced):
    state = alice.one("Principal/query")["queryState"]
    for n in range(1, 4):
        slapd.admin().modify(ldif.person_dn(f"user{n:03d}"), {"displayName": [(ldap3.MODIFY_ADD, ["Zed"])]})
    sync.run(synced)

    assert alice.error("Principal/queryChanges", sinceQueryState=state, sort=[{"property": "name"}],
                       maxChanges=2)["type"] == "tooManyChanges"
    foreign = alice.error("Principal/queryChanges", sinceQueryState="00000000-1")
    assert foreign["type"] == "cannotCalculateChanges"
    assert alice.error("Principal/queryChanges", sinceQueryState="x")["type"] == "invalidArguments"


def apply_changes(old: list[str | None], result: dict, total: int | None = None) -> list[str | None]:
    """RFC 8620 §5.6's client algorithm on a cached list; None marks a position the client
    does not know (a sparse cache)."""
    cached = list(old)
    unknown_removal = False
    for gone in result["removed"]:
        if gone in cached:
            cached.remove(gone)
        else:
            unknown_removal = True
    if unknown_removal and None in cached:  # everything after the first gap is now unknown
        gap = cached.index(None)
        cached[gap:] = [None] * (len(cached) - gap)
    for item in sorted(result["added"], key=lambda a: a["index"]):
        cached[len(cached):item["index"]] = [None] * max(0, item["index"] - len(cached))
        cached.insert(item["index"], item["id"])
    if total is not None:
        cached = (cached + [None] * total)[:total]
    return cached


# -- the property ------------------------------------------------------------------------------

IDS = [f"p{n:032x}" for n in range(12)]
WORDS = st.sampled_from(["Ann", "ann", "Bob", "bo", "Éva", "eva", "_x", "Zed", "straße", "STRASSE"])


def record(pid: str, name: str, email: str | None, kind: str, zone: str | None,
           disabled: bool, login: str) -> MappedEntry:
    return MappedEntry(Principal(id=pid, source="s", type=PrincipalType(kind), dn=f"cn={pid},dc=x",
                                 dn_key=f"cn={pid},dc=x", name=name, email=email, time_zone=zone,
                                 login=login, disabled=disabled))


directories = st.dictionaries(st.sampled_from(IDS), st.tuples(
    WORDS, st.none() | WORDS.map(lambda w: f"{w}@x.org"), st.sampled_from(["individual", "group"]),
    st.sampled_from([None, "UTC"]), st.booleans(), st.sampled_from(["ann", "bob", "cy"])), max_size=10)
edits = st.dictionaries(st.sampled_from(IDS), st.fixed_dictionaries({}, optional={
    "name": WORDS, "time_zone": st.sampled_from([None, "UTC"])}), max_size=3)
atoms = st.one_of(
    st.builds(lambda k, v: {k: v}, st.sampled_from(["name", "email", "text"]),
              st.sampled_from(["a", "bo", "ß", "x.o", "e"])),
    st.builds(lambda v: {"type": v}, st.sampled_from(["individual", "group"])),
    st.just({"timeZone": "UTC"}),
    st.builds(lambda ids: {"accountIds": ids}, st.lists(st.sampled_from(["u-ann", "u-bob", "u-x"]),
                                                        max_size=2)))
filters = st.none() | st.recursive(atoms, lambda inner: st.builds(
    lambda op, cs: {"operator": op, "conditions": cs}, st.sampled_from(["AND", "OR", "NOT"]),
    st.lists(inner, max_size=3)), max_leaves=4)
sorts = st.lists(st.builds(lambda p, a, c: {"property": p, "isAscending": a, "collation": c},
                           st.sampled_from(["name", "email", "type", "id"]), st.booleans(),
                           st.sampled_from(["i;unicode-casemap", "i;ascii-casemap", "i;octet"])),
                 max_size=2)


def store_apply(store: Store, directory: dict) -> None:
    with store.snapshot() as snapshot:
        for pid, fields in sorted(directory.items()):
            snapshot.add(record(pid, *fields))
        snapshot.apply(lambda plan: None, {"started": time.time(), "mode": "full", "seen": 0,
                                           "skipped": 0, "warnings": 0})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(directories, st.lists(st.tuples(directories, edits), min_size=1, max_size=4), filters, sorts,
       st.data())
def test_applying_removed_and_added_to_the_old_result_gives_the_new_one(first, steps, condition, sort, data):
    with tempfile.TemporaryDirectory() as temporary:
        token_file = Path(temporary) / "tokens.toml"
        token_file.write_text('[[token]]\nname = "svc"\ntoken = "a-long-enough-token-0123"\n')
        settings = config.load(None, environ={"BRIDGE_STORE__PATH": f"{temporary}/b.db",
                                              "BRIDGE_SERVER__TOKEN_FILE": str(token_file),
                                              "BRIDGE_JMAP__ACCOUNT_ID_TEMPLATE": "u-{login}",
                                              "BRIDGE_JMAP__ACCOUNTS_VISIBLE": "all"})
        with Store.open(settings.store.path) as store, TestClient(create_app(settings)) as client:
            jmap = Jmap(client, bearer("a-long-enough-token-0123"))
            query = {"filter": condition, "sort": sort}
            store_apply(store, first)
            for directory, user_edits in steps:
                old = jmap.one("Principal/query", **query)
                up_to = data.draw(st.none() | st.sampled_from(old["ids"])) if old["ids"] else None
                store_apply(store, directory)
                for pid, values in user_edits.items():
                    if store.principal(pid):
                        store.edit(pid, values, actor="test")

                result = jmap.one("Principal/queryChanges", sinceQueryState=old["queryState"],
                                  calculateTotal=True, **query)
                new = jmap.one("Principal/query", **query)

                assert apply_changes(old["ids"], result) == new["ids"]
                assert result["total"] == len(new["ids"])
                assert result["newQueryState"] == new["queryState"]
                if up_to is not None:  # a client that cached only up to up_to
                    partial = jmap.one("Principal/queryChanges", sinceQueryState=old["queryState"],
                                       upToId=up_to, calculateTotal=True, **query)
                    known = old["ids"].index(up_to) + 1
                    cached = old["ids"][:known] + [None] * (len(old["ids"]) - known)
                    rebuilt = apply_changes(cached, partial, partial["total"])
                    assert len(rebuilt) == len(new["ids"])
                    assert all(got in (None, want) for got, want in zip(rebuilt, new["ids"], strict=True))


def test_query_changes_follow_account_ids_through_a_login_change(tmp_path):
    """accountIds depend on each principal's login: when logins move between principals,
    the old result must be judged with the old logins."""
    from tests.conftest import StoreApi

    api = StoreApi(tmp_path, jmap={"account_id_template": "u-{login}", "accounts_visible": "all"})
    a, b = IDS[0], IDS[1]
    api.apply([record(a, "A", None, "individual", None, False, "ann"),
               record(b, "B", None, "individual", None, False, "bob")])
    query = {"filter": {"accountIds": ["u-bob"]}}
    old = api.jmap.one("Principal/query", **query)
    api.apply([record(a, "A", None, "individual", None, False, "bob"),
               record(b, "B", None, "individual", None, False, "robert")])

    result = api.jmap.one("Principal/queryChanges", sinceQueryState=old["queryState"], **query)
    new = api.jmap.one("Principal/query", **query)

    assert (old["ids"], new["ids"]) == ([b], [a])
    assert apply_changes(old["ids"], result) == new["ids"]


def test_filters_too_big_or_too_deep_are_unsupported(alice):
    wide = {"operator": "OR", "conditions": [{"name": f"n{n}"} for n in range(64)]}
    deep: dict = {"name": "x"}
    for _ in range(8):
        deep = {"operator": "NOT", "conditions": [deep]}

    assert alice.error("Principal/query", filter=wide)["type"] == "unsupportedFilter"
    assert alice.error("Principal/query", filter=deep)["type"] == "unsupportedFilter"
    assert alice.one("Principal/query", filter={"operator": "OR", "conditions": wide["conditions"][:63]})


def test_query_changes_after_a_mass_change_asks_for_a_new_query(tmp_path):
    from tests.conftest import StoreApi

    api = StoreApi(tmp_path, jmap={"max_changes": 3})
    api.apply([record(pid, "A", None, "individual", None, False, "x") for pid in IDS[:5]])
    old = api.jmap.one("Principal/query")
    api.apply([record(pid, "B", None, "individual", None, False, "x") for pid in IDS[:5]])

    error = api.jmap.error("Principal/queryChanges", sinceQueryState=old["queryState"])
    assert error["type"] == "cannotCalculateChanges"
