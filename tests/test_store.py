"""The store on its own: snapshots, the change log and its invariants, retention, locking."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import StoreError, SyncBusy
from bridge.model import MappedEntry, MemberRef, Principal, PrincipalType
from bridge.store import Store
from bridge.store.records import apply_changes, record_of, to_row
from bridge.store.schema import SCHEMA_VERSION
from tests.support.changes import changes_since

IDS = [f"p{n:032x}" for n in range(8)]


def person(pid: str, name: str = "", **fields) -> MappedEntry:
    return MappedEntry(Principal(id=pid, source="people", type=PrincipalType.INDIVIDUAL,
                                 dn=f"uid={pid},dc=x", dn_key=f"uid={pid},dc=x",
                                 name=name or pid, login=pid, **fields))


def group(pid: str, member_ids: list[str], name: str = "") -> MappedEntry:
    return MappedEntry(Principal(id=pid, source="groups", type=PrincipalType.GROUP,
                                 dn=f"cn={pid},dc=x", dn_key=f"cn={pid},dc=x", name=name or pid),
                       tuple(MemberRef("dn", f"uid={m},dc=x") for m in member_ids))


def apply(store: Store, entries: list[MappedEntry], check=lambda plan: None, **kwargs):
    with store.snapshot() as snapshot:
        for entry in entries:
            snapshot.add(entry)
        return snapshot.apply(check, {"started": time.time(), "mode": "full", "seen": len(entries),
                                      "skipped": 0, "warnings": 0}, **kwargs)


def records(store: Store) -> dict[str, dict]:
    return {p.id: record_of(to_row(p)) for p in store.principals()}


@pytest.fixture
def store() -> Store:
    with Store.open(":memory:") as opened:
        yield opened


# -- the change log's invariant ------------------------------------------------------------

names = st.sampled_from(["Ann", "Bob", "Cy", "Dee"])
snapshots = st.lists(
    st.dictionaries(st.sampled_from(IDS[:6]),
                    st.tuples(names, st.booleans(), st.none() | st.just("x@example.org")),
                    max_size=6),
    min_size=1, max_size=6)
group_members = st.lists(st.lists(st.sampled_from(IDS[:6]), max_size=4), min_size=6, max_size=6)


def entries_of(snapshot: dict, members: list[str]) -> list[MappedEntry]:
    people = [person(pid, name, disabled=disabled, email=email)
              for pid, (name, disabled, email) in sorted(snapshot.items())]
    return [*people, group(IDS[7], members)]


def expected_records(snapshot: dict, members: list[str]) -> dict[str, dict]:
    """What the store must hold after applying ``entries_of(snapshot, members)``."""
    in_group = sorted(set(members) & set(snapshot))
    expected = {pid: record_of(to_row(Principal(
        id=pid, source="people", type=PrincipalType.INDIVIDUAL, dn=f"uid={pid},dc=x",
        dn_key=f"uid={pid},dc=x", name=name, login=pid, disabled=disabled, email=email,
        member_of=(IDS[7],) if pid in in_group else ())))
        for pid, (name, disabled, email) in snapshot.items()}
    expected[IDS[7]] = record_of(to_row(Principal(
        id=IDS[7], source="groups", type=PrincipalType.GROUP, dn=f"cn={IDS[7]},dc=x",
        dn_key=f"cn={IDS[7]},dc=x", name=IDS[7], members=tuple(in_group))))
    return expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots, group_members)
def test_replaying_changes_from_any_earlier_state_gives_the_current_set(sequence, members):
    """RFC 8620 §5.2: a client holding the set at an old state that fetches what /changes
    reports (and drops what it destroyed) ends with exactly the current set — and that
    set is exactly the last snapshot."""
    with Store.open(":memory:") as store:
        history = [(0, {})]
        for snapshot, group_member_ids in zip(sequence, members, strict=False):
            apply(store, entries_of(snapshot, group_member_ids))
            assert records(store) == expected_records(snapshot, group_member_ids)
            history.append((store.modseq(), records(store)))
        final = records(store)
        for modseq, earlier in history:
            changes = changes_since(store, modseq)
            assert not set(changes.created) & set(earlier)
            assert set(changes.updated) <= set(earlier) and set(changes.destroyed) <= set(earlier)
            replayed = {pid: record for pid, record in earlier.items() if pid not in changes.destroyed}
            replayed |= {pid: final[pid] for pid in (*changes.created, *changes.updated)}
            assert replayed == final


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots, group_members)
def test_the_change_rows_alone_rebuild_the_current_set(sequence, members):
    """Every row carries what changed: replaying created/updated/destroyed details onto
    an earlier set, row by row, gives the current records field for field."""
    with Store.open(":memory:") as store:
        history = [(0, {})]
        for snapshot, group_member_ids in zip(sequence, members, strict=False):
            apply(store, entries_of(snapshot, group_member_ids))
            history.append((store.modseq(), records(store)))
        for modseq, earlier in history:
            rebuilt = {pid: dict(record) for pid, record in earlier.items()}
            for row in store.change_rows(modseq):
                if row.kind == "created":
                    rebuilt[row.record_id] = row.detail
                elif row.kind == "updated":
                    rebuilt[row.record_id] = apply_changes(rebuilt[row.record_id], row.detail)
                else:
                    del rebuilt[row.record_id]
            assert rebuilt == records(store)


def apply_delta(store: Store, changed: list[MappedEntry], deleted: list[str]):
    with store.snapshot(complete=False) as delta:
        for entry in changed:
            delta.add(entry)
        for principal_id in deleted:
            delta.delete(principal_id)
        return delta.apply(lambda plan: None, {"started": time.time(), "mode": "incremental",
                                               "seen": len(changed), "skipped": 0, "warnings": 0})


def change_log(store: Store) -> list[tuple]:
    return [(row.modseq, row.record_id, row.kind, row.detail) for row in store.change_rows(0)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots, group_members, st.data())
def test_a_delta_gives_the_same_store_and_history_as_the_complete_snapshot(sequence, members, data):
    """An incremental reader delivers only changed entries (plus some unchanged ones again)
    and deletions; the group keeps references to people who come and go. Applying those
    deltas must give what applying each complete snapshot gives, row for row."""
    with Store.open(":memory:") as full, Store.open(":memory:") as incremental:
        previous: dict[str, MappedEntry] = {}
        for snapshot, group_member_ids in zip(sequence, members, strict=False):
            current = {entry.principal.id: entry for entry in entries_of(snapshot, group_member_ids)}
            resent = data.draw(st.sets(st.sampled_from(sorted(current))))
            changed = [e for pid, e in current.items() if previous.get(pid) != e or pid in resent]
            deleted = [pid for pid in previous if pid not in current]

            apply(full, list(current.values()))
            apply_delta(incremental, changed, deleted)

            assert records(incremental) == records(full)
            assert change_log(incremental) == change_log(full)
            assert [incremental.groups_of(i) for i in IDS] == [full.groups_of(i) for i in IDS]
            previous = current


def test_a_complete_snapshot_takes_no_deletions(store):
    with store.snapshot() as snapshot, pytest.raises(ValueError, match="absence is deletion"):
        snapshot.delete(IDS[0])


def test_a_delta_deletion_after_an_add_of_the_same_id_wins(store):
    apply(store, [person(IDS[0]), person(IDS[1])])

    apply_delta(store, [person(IDS[0], "renamed")], [IDS[0]])

    assert store.principal(IDS[0]) is None and store.principal(IDS[1]) is not None


# -- snapshots --------------------------------------------------------------------------


def test_an_identical_snapshot_adds_no_change_rows(store):
    entries = [person(IDS[0]), person(IDS[1]), group(IDS[2], [IDS[0]])]
    apply(store, entries)
    modseq = store.modseq()

    applied = apply(store, entries)

    assert not applied.plan.changed
    assert store.modseq() == modseq
    assert store.change_rows(modseq) == []


def test_membership_resolution_drops_self_membership_and_counts_unresolved(store):
    with store.snapshot() as snapshot:
        snapshot.add(person(IDS[0]))
        itself = group(IDS[1], [IDS[0], "nobody"])
        snapshot.add(MappedEntry(itself.principal,
                                 (*itself.member_refs, MemberRef("dn", f"cn={IDS[1]},dc=x"))))
        resolution = snapshot.resolve()
        snapshot.apply(lambda plan: None, {"started": time.time(), "mode": "full", "seen": 2,
                                           "skipped": 0, "warnings": 0})
    assert resolution.unresolved_members == 1
    assert store.principal(IDS[1]).members == (IDS[0],)
    assert store.principal(IDS[0]).member_of == (IDS[1],)


def test_member_uid_resolves_only_to_individuals_by_login(store):
    login_group = MappedEntry(Principal(id=IDS[3], source="groups", type=PrincipalType.GROUP,
                                        dn="cn=g,dc=x", dn_key="cn=g,dc=x", name="g", login=IDS[0]),
                              (MemberRef("login", IDS[0]), MemberRef("login", IDS[1])))
    apply(store, [person(IDS[0]), login_group])

    assert store.principal(IDS[3]).members == (IDS[0],)


def test_the_first_staged_copy_of_an_id_wins(store):
    with store.snapshot() as snapshot:
        snapshot.add(person(IDS[0], "first"))
        snapshot.add(person(IDS[0], "second"))
        assert snapshot.resolve().duplicates == (f"uid={IDS[0]},dc=x",)
        snapshot.apply(lambda plan: None, {"started": time.time(), "mode": "full", "seen": 2,
                                           "skipped": 0, "warnings": 0})
    assert store.principal(IDS[0]).name == "first"


def test_a_veto_rolls_back_everything(store):
    apply(store, [person(IDS[0])])
    modseq, runs = store.modseq(), store.runs()

    def refuse(plan):
        raise RuntimeError("vetoed")

    with pytest.raises(RuntimeError):
        apply(store, [person(IDS[1])], check=refuse)
    assert store.modseq() == modseq and store.runs() == runs
    assert store.principal(IDS[1]) is None


def test_effective_membership_follows_nesting_and_survives_cycles(store):
    apply(store, [person(IDS[0]), person(IDS[1]),
                  MappedEntry(Principal(id=IDS[4], source="g", type=PrincipalType.GROUP, dn="cn=a,dc=x",
                                        dn_key="cn=a,dc=x", name="a"),
                              (MemberRef("dn", "cn=b,dc=x"), MemberRef("dn", f"uid={IDS[0]},dc=x"))),
                  MappedEntry(Principal(id=IDS[5], source="g", type=PrincipalType.GROUP, dn="cn=b,dc=x",
                                        dn_key="cn=b,dc=x", name="b"),
                              (MemberRef("dn", "cn=a,dc=x"), MemberRef("dn", f"uid={IDS[1]},dc=x")))])

    assert store.groups_of(IDS[0]) == store.groups_of(IDS[1]) == {IDS[4], IDS[5]}
    assert (store.groups_of(IDS[4]), store.groups_of(IDS[5])) == ({IDS[5]}, {IDS[4]})


# -- states and retention ---------------------------------------------------------------


def test_state_tokens_name_the_database_and_the_modseq(store):
    apply(store, [person(IDS[0])])
    state = store.state()

    assert state == f"{store.epoch}-{store.modseq()}"
    assert store.parse_state(state) == store.modseq()
    assert store.parse_state(f"{'0' * 8}-1") is None  # another database
    for malformed in ("", "12", "abc-", "-5", "x-y"):
        with pytest.raises(ValueError):
            store.parse_state(malformed)


def test_every_database_gets_its_own_epoch(tmp_path):
    with Store.open(str(tmp_path / "a.db")) as a, Store.open(str(tmp_path / "b.db")) as b:
        assert a.epoch != b.epoch


def test_pruned_history_cannot_answer_changes_from_before_it(tmp_path):
    path = str(tmp_path / "pruned.db")
    with Store.open(path) as store:
        apply(store, [person(IDS[0])])
        old = store.modseq()
        with sqlite3.connect(path) as conn:  # make the first run's rows two days old
            conn.execute("UPDATE changes SET at = '2000-01-01T00:00:00Z'")

        apply(store, [person(IDS[0]), person(IDS[1])], retention=86400)

        assert store.pruned_through() == old
        assert changes_since(store, 0) is None
        assert changes_since(store, old).created == (IDS[1],)  # still complete from there
        assert [row.kind for row in store.history(IDS[0])] == []
        assert store.principal(IDS[0]) is not None


def test_a_future_state_cannot_be_answered(store):
    apply(store, [person(IDS[0])])
    assert changes_since(store, store.modseq() + 5) is None


# -- opening, migrating, locking --------------------------------------------------------


def test_readonly_open_of_a_missing_store_creates_nothing(tmp_path):
    path = tmp_path / "nothing.db"
    with Store.open(str(path), readonly=True) as store:
        assert store.principals() == []
    assert not path.exists()


def test_a_database_from_a_newer_bridge_is_refused(tmp_path):
    path = tmp_path / "future.db"
    Store.open(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(StoreError, match="newer than this bridge"):
        Store.open(str(path))


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(StoreError, match="garbage.db"):
        Store.open(str(path))


def test_reopening_keeps_data_and_epoch(tmp_path):
    path = str(tmp_path / "keep.db")
    with Store.open(path) as store:
        apply(store, [person(IDS[0])])
        epoch, state = store.epoch, store.state()
    with Store.open(path) as store:
        assert (store.epoch, store.state()) == (epoch, state)
        assert store.principal(IDS[0]).name == IDS[0]


def test_only_one_run_may_hold_the_lock(tmp_path):
    path = str(tmp_path / "locked.db")
    with Store.open(path) as first, Store.open(path) as second:
        with first.run_lock(), pytest.raises(SyncBusy), second.run_lock():
            pass
        with second.run_lock():
            pass


def _open_and_close(path: str, ready) -> str:
    ready.wait()
    try:
        Store.open(path).close()
    except StoreError as exc:
        return str(exc)
    return ""


def test_processes_creating_the_same_new_store_at_once_all_succeed(tmp_path):
    """`serve` and a cron `bridge sync` may both be the first to open a new database."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        path = str(tmp_path / f"race{attempt}.db")
        with context.Manager() as manager:
            ready = manager.Event()
            with context.Pool(4) as pool:
                pending = [pool.apply_async(_open_and_close, (path, ready)) for _ in range(4)]
                ready.set()
                assert [p.get(timeout=60) for p in pending] == [""] * 4
        with Store.open(path) as store:
            assert store.runs() == []


def test_read_only_commands_open_paths_with_uri_characters(tmp_path):
    path = tmp_path / "we#ird %25 dir" / "b?.db"
    with Store.open(str(path)) as store:
        apply(store, [person(IDS[0])])
        state = store.state()

    with Store.open(str(path), readonly=True) as store:
        assert store.state() == state and not store.ephemeral


# -- a delta completed with what it touches (neighbourhood.py) ------------------------------

def renamed(entry: MappedEntry, dn: str) -> MappedEntry:
    return MappedEntry(replace(entry.principal, dn=dn, dn_key=dn), entry.member_refs)


def in_source(entry: MappedEntry, source: str) -> MappedEntry:
    return MappedEntry(replace(entry.principal, source=source), entry.member_refs)


def test_a_dropped_duplicate_leaves_no_references_to_a_row_carried_in(tmp_path):
    """The last staged row, a duplicate from an overlapping source, is dropped; the first
    row carried in from the store must not take its seq's member references."""
    a, b = person(IDS[0]), person(IDS[1])
    g, h = group(IDS[2], [IDS[1]]), group(IDS[3], [IDS[0]])
    entries = [a, b, g, h, in_source(g, "allgroups"), in_source(h, "allgroups")]
    with Store.open(str(tmp_path / "delta.db")) as store, Store.open(str(tmp_path / "fresh.db")) as fresh:
        apply(store, entries)
        moved = renamed(a, "uid=moved,dc=x")  # h, listing a's old DN, is carried in
        apply_delta(store, [moved, g, in_source(g, "allgroups")], [])
        apply(fresh, [moved, b, g, h, in_source(g, "allgroups"), in_source(h, "allgroups")])
        assert records(store) == records(fresh)
        refs = "SELECT group_id, kind, ref FROM member_refs ORDER BY 1, 2, 3"
        assert store._db.execute(refs).fetchall() == fresh._db.execute(refs).fetchall()


def test_a_delta_that_moves_an_entry_between_sources_counts_it_where_it_went(store):
    room = MappedEntry(Principal(id=IDS[4], source="rooms", type=PrincipalType.LOCATION,
                                 dn="cn=r,dc=x", dn_key="cn=r,dc=x", name="Room"))
    apply(store, [person(IDS[0]), room])
    with store.snapshot(complete=False) as delta:
        delta.add(in_source(room, "people"))
        sources = delta.plan().sources
    assert (sources["people"].previous, sources["people"].staged) == (1, 2)
    assert (sources["rooms"].previous, sources["rooms"].staged) == (1, 0)


def test_a_narrow_delta_offers_stored_memberships_to_probe_in_chain_and_keeps_them_widened(tmp_path):
    """G lists X, a group outside every source holding a and b; the server's in-chain
    answer gave G both. A delta deleting a stages no membership, yet the in-chain probe
    gets stored pairs, and the widened delta keeps G's effective member b."""
    a, b = person(IDS[0]), person(IDS[1])
    g = MappedEntry(group(IDS[2], []).principal, (MemberRef("dn", "cn=x,ou=elsewhere"),))
    with Store.open(str(tmp_path / "delta.db")) as store:
        with store.snapshot() as snapshot:
            for entry in (a, b, g):
                snapshot.add(entry)
            snapshot.add_chain_edges([(IDS[2], IDS[0]), (IDS[2], IDS[1])])
            snapshot.apply(lambda plan: None, {"started": time.time(), "mode": "full", "seen": 3,
                                               "skipped": 0, "warnings": 0})
        assert store.groups_of(IDS[1]) == {IDS[2]}
        with store.snapshot(complete=False) as snapshot:
            snapshot.delete(IDS[0], "people")
            assert snapshot.narrow and snapshot.member_pairs() == [(g.principal.dn, "cn=x,ou=elsewhere")]
            with pytest.raises(ValueError, match="widen"):  # the closure of every group is redone
                snapshot.add_chain_edges([(IDS[2], IDS[1])])
            snapshot.widen()  # as nesting.add_server_nesting does when the server says yes
            assert not snapshot.narrow
            snapshot.add_chain_edges([(IDS[2], IDS[1])])
            snapshot.apply(lambda plan: None, {"started": time.time(), "mode": "incremental",
                                               "seen": 0, "skipped": 0, "warnings": 0})
        assert store.groups_of(IDS[1]) == {IDS[2]}
        assert store.principal(IDS[0]) is None


def test_emptied_fields_are_counted_among_what_was_read_by_the_source_it_goes_to(store):
    """An entry that moves to a source whose mapping has no mail counts where it goes, with
    what it had: the valve sees 15 of the 15 read there lose it, not 15 of 0."""
    apply(store, [person(f"p{n:03d}", email=f"p{n}@example.org") for n in range(100)])
    plans = []
    moved = [replace(person(f"p{n:03d}"), principal=replace(person(f"p{n:03d}").principal, source="staff"))
             for n in range(15)]
    apply(store, moved + [person(f"p{n:03d}", email=f"p{n}@example.org") for n in range(15, 100)],
          plans.append)

    assert plans[0].sources["staff"].emptied == {"email": (15, 15)}
    assert plans[0].sources["people"].emptied == {}
