"""What clients see: the principal view (directory values with users' edits), Principal/query
in SQL against its Python meaning, and principals rebuilt as they were at older states."""

from __future__ import annotations

import time
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import query
from bridge.model import MappedEntry, Principal, PrincipalType
from bridge.query import AccountIn, Contains, Equals, IdIn, Operator, SortKey
from bridge.store import Store, view
from bridge.store.view import where_sql

IDS = [f"p{n:032x}" for n in range(10)]
# letters that fold, decompose or expand differently, GLOB's special characters, and the
# separator of the combined text column
ALPHABET = "aAbZzß_É\u0301İﬁ*?[ .@\x1f"
TIME_ZONES = ["Europe/Paris", "UTC", None]


def entry(pid: str, name: str, email: str | None, description: str | None, kind: str,
          zone: str | None, disabled: bool, login: str | None = None) -> MappedEntry:
    return MappedEntry(Principal(id=pid, source="s", type=PrincipalType(kind), dn=f"cn={pid},dc=x",
                                 dn_key=f"cn={pid},dc=x", name=name, email=email,
                                 description=description, time_zone=zone, login=login,
                                 disabled=disabled))


def apply(store: Store, entries: list[MappedEntry]) -> None:
    with store.snapshot() as snapshot:
        for item in entries:
            snapshot.add(item)
        snapshot.apply(lambda plan: None, {"started": time.time(), "mode": "full",
                                           "seen": len(entries), "skipped": 0, "warnings": 0})


texts = st.text(ALPHABET, min_size=0, max_size=6)
LOGINS = ["ann", "bob", "", "b o"]
records = st.builds(entry, st.just(""), texts.filter(bool), st.none() | texts, st.none() | texts,
                    st.sampled_from(["individual", "group", "location"]), st.sampled_from(TIME_ZONES),
                    st.booleans(), st.none() | st.sampled_from(LOGINS))
directories = st.lists(records, min_size=0, max_size=10).map(lambda items: [
    MappedEntry(Principal(**{**vars_of(e.principal), "id": IDS[n]})) for n, e in enumerate(items)])
edits = st.dictionaries(st.sampled_from(IDS), st.fixed_dictionaries(
    {}, optional={"name": texts.filter(bool), "description": st.none() | texts,
                  "time_zone": st.sampled_from(TIME_ZONES)}), max_size=4)


def vars_of(principal: Principal) -> dict:
    return {name: getattr(principal, name) for name in principal.__dataclass_fields__}


def conditions():
    atoms = st.one_of(
        st.builds(Contains.of, st.sampled_from(["name", "email", "text"]), st.text(ALPHABET, max_size=4)),
        st.builds(Equals, st.just("type"), st.sampled_from(["individual", "group", "location"])),
        st.builds(Equals, st.just("time_zone"), st.sampled_from(["Europe/Paris", "UTC"])),
        st.builds(IdIn, st.frozensets(st.sampled_from(IDS), max_size=4)),
        st.builds(AccountIn, st.sampled_from(["u-{login}", "{id}", "{uuid}", "x-{login}-{login}"]),
                  st.frozensets(st.sampled_from(["u-ann", "u-bob", IDS[1], "x-bob-bob",
                                                 "00000000-0000-0000-0000-000000000003"]), max_size=3),
                  st.none() | st.sampled_from(IDS[:3])))
    return st.recursive(atoms, lambda inner: st.builds(
        Operator, st.sampled_from(["AND", "OR", "NOT"]), st.lists(inner, max_size=3).map(tuple)),
        max_leaves=6)


sort_keys = st.lists(st.builds(SortKey, st.sampled_from(query.SORT_FIELDS), st.booleans(),
                               st.sampled_from(query.COLLATIONS)), max_size=3).map(tuple)


def expected(principals: list[Principal], condition, keys, include_disabled: bool) -> list[str]:
    chosen = [p for p in principals if (include_disabled or not p.disabled) and query.matches(condition, p)]
    return [p.id for p in query.sort(chosen, keys)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(directories, edits, st.one_of(st.none(), conditions()), sort_keys, st.booleans())
def test_sql_query_agrees_with_the_python_meaning(directory, user_edits, condition, keys, include_disabled):
    with Store.open(":memory:") as store:
        apply(store, directory)
        for pid, values in user_edits.items():
            if store.principal(pid):
                store.edit(pid, values, actor="test")
        principals = list(store.views([e.principal.id for e in directory]).values())

        assert store.query(condition, keys, include_disabled) == \
            expected(principals, condition, keys, include_disabled)
        assert store.count(condition, include_disabled) == \
            len(expected(principals, condition, keys, include_disabled))


# names from two letters, so that three-letter needles (which the trigram index answers)
# match often and a page may or may not lie within the first rows
dense = st.lists(st.builds(entry, st.just(""), st.text("ab", min_size=3, max_size=7),
                           st.none() | st.text("ab", max_size=5), st.none(), st.just("individual"),
                           st.none(), st.booleans()), min_size=1, max_size=10).map(lambda items: [
    MappedEntry(Principal(**{**vars_of(e.principal), "id": IDS[n]})) for n, e in enumerate(items)])
needles = st.builds(Contains.of, st.sampled_from(["name", "text"]), st.text("ab", min_size=3, max_size=4))
dense_conditions = st.one_of(needles, st.builds(lambda c: Operator("NOT", (c,)), needles),
                             st.builds(lambda *cs: Operator("OR", cs), needles, needles),
                             st.builds(lambda c: Operator("AND", (c, Equals("type", "individual"))), needles))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dense, dense_conditions, st.sampled_from([(), (SortKey("name"),), (SortKey("name", False),)]),
       st.booleans(), st.integers(0, 4), st.integers(1, 4), st.integers(1, 12))
def test_a_page_agrees_with_the_python_meaning_whether_or_not_the_first_rows_hold_it(
        directory, condition, keys, include_disabled, offset, limit, probe_rows):
    """A first page may be found among the first rows in order (view.PROBE_ROWS, small
    here so that the probe both succeeds and falls back to the index)."""
    with Store.open(":memory:") as store, patch.object(view, "PROBE_ROWS", probe_rows):
        apply(store, directory)
        principals = list(store.views([e.principal.id for e in directory]).values())

        assert store.query(condition, keys, include_disabled, offset, limit) == \
            expected(principals, condition, keys, include_disabled)[offset:offset + limit]


def test_text_conditions_fold_case_and_match_substrings():
    directory = [entry(IDS[0], "Straße Müller", "S.Mueller@Example.ORG", None, "individual", None, False),
                 entry(IDS[1], "Room 4B", None, "Fourth floor", "location", None, False)]
    with Store.open(":memory:") as store:
        apply(store, directory)

        def ids(condition):
            return store.query(condition, (), include_disabled=False)

        assert ids(Contains.of("name", "STRASSE")) == [IDS[0]]  # ß folds to ss
        assert ids(Contains.of("email", "example.org")) == [IDS[0]]
        assert ids(Contains.of("text", "FLOOR")) == [IDS[1]]  # text includes description
        assert ids(Contains.of("email", "4b")) == []  # a null email never matches
        assert ids(Contains.of("name", "m")) == [IDS[0], IDS[1]]  # short: no trigram, still right


@pytest.mark.parametrize("needle, found", [("x?y", [0]), ("x*y", [1]), ("[ab", [2]), ("xay", [3])])
def test_glob_characters_in_a_text_condition_are_literal(needle, found):
    names = ["x?yz", "x*yz", "[abc", "xayz"]
    with Store.open(":memory:") as store:
        apply(store, [entry(IDS[n], name, None, None, "individual", None, False)
                      for n, name in enumerate(names)])

        assert store.query(Contains.of("name", needle), (), False) == [IDS[n] for n in found]


def test_a_long_text_condition_uses_the_trigram_index():
    params: list = []
    where = where_sql(Contains.of("name", "alice"), params)
    with Store.open(":memory:") as store:
        plan = store._db.execute(
            f"EXPLAIN QUERY PLAN SELECT v.id FROM principal_view v WHERE {where}", params).fetchall()
    assert any("principal_text VIRTUAL TABLE INDEX" in row[-1] for row in plan)


# -- users' edits -----------------------------------------------------------------------


def test_an_edit_survives_the_next_sync_and_is_audited():
    directory = [entry(IDS[0], "Alice", "a@x.org", None, "individual", None, False)]
    with Store.open(":memory:") as store:
        apply(store, directory)
        state = store.modseq()

        assert store.edit(IDS[0], {"name": "Ally", "time_zone": "UTC"}, actor="alice", remote="10.0.0.1")
        assert store.modseq() == state + 1
        apply(store, directory)  # the directory still says Alice

        seen = store.views([IDS[0]])[IDS[0]]
        assert (seen.name, seen.time_zone, seen.email) == ("Ally", "UTC", "a@x.org")
        assert store.principal(IDS[0]).name == "Alice"  # the directory's value is kept apart
        assert [(a["field"], a["old"], a["new"], a["actor"], a["remote"]) for a in store.audit(IDS[0])] == \
            [("name", "Alice", "Ally", "alice", "10.0.0.1"), ("time_zone", None, "UTC", "alice", "10.0.0.1")]


def test_an_edit_that_changes_nothing_writes_nothing():
    with Store.open(":memory:") as store:
        apply(store, [entry(IDS[0], "Alice", None, None, "individual", None, False)])
        state = store.modseq()

        assert not store.edit(IDS[0], {"name": "Alice"}, actor="alice")
        assert store.modseq() == state and store.audit(IDS[0]) == []


def test_only_name_description_and_time_zone_can_be_overridden():
    with Store.open(":memory:") as store:
        apply(store, [entry(IDS[0], "Alice", None, None, "individual", None, False)])
        with pytest.raises(Exception, match="not an overridable field"):
            store.edit(IDS[0], {"email": "x@y.org"}, actor="alice")


# -- reconstruction ---------------------------------------------------------------------


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(directories, edits), min_size=1, max_size=5))
def test_states_at_any_modseq_are_what_clients_saw_then(history):
    with Store.open(":memory:") as store:
        seen: list[tuple[int, dict[str, Principal]]] = [(0, {})]
        for directory, user_edits in history:
            apply(store, directory)
            seen.append((store.modseq(), store.views(IDS)))
            for pid, values in user_edits.items():
                if store.principal(pid):
                    store.edit(pid, values, actor="test")
                    seen.append((store.modseq(), store.views(IDS)))
        for modseq, views in seen:
            rebuilt = store.states_at(IDS, modseq)
            assert {pid: p for pid, p in rebuilt.items() if p is not None} == views


def test_windows_cut_the_log_at_a_number_of_ids():
    with Store.open(":memory:") as store:
        apply(store, [entry(pid, "x", None, None, "individual", None, False) for pid in IDS[:5]])
        first = store.window(0, 2)
        assert (first.ids, first.has_more) == (tuple(IDS[:2]), True)
        rest = store.window(first.until, 10)
        assert (rest.ids, rest.has_more, rest.until) == (tuple(IDS[2:5]), False, store.modseq())
        assert store.window(store.modseq() + 1, 10) is None
