"""Quick reads answered on the event loop under a time limit, and the Principal/query cache
kept by state: both must give exactly the answers a worker thread and a fresh query give."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from bridge import config
from bridge.errors import ReadTimeUp, StoreError
from bridge.jmap.methods import engine
from bridge.jmap.query_cache import Answer, QueryCache
from bridge.jmap.service import Service
from bridge.model import Caller, MappedEntry, Principal, PrincipalType
from bridge.query import SortKey
from bridge.store import Store, db
from tests.conftest import StoreApi
from tests.support.jmap import ACCOUNT, USING


def person(n: int, name: str, login: str | None = None) -> MappedEntry:
    pid = f"p{n:032x}"
    return MappedEntry(Principal(id=pid, source="s", type=PrincipalType.INDIVIDUAL, dn=f"uid={pid},dc=x",
                                 dn_key=f"uid={pid},dc=x", name=name, email=f"{login or pid}@example.org",
                                 login=login or f"user{n}"))


PEOPLE = [person(n, name) for n, name in enumerate(
    ["Ann Lee", "Anna Berg", "Bob Ray", "Joanna Fox", "Zed Ann", "Eve Stone"])]


def ids_of(*numbers: int) -> list[str]:
    return [f"p{n:032x}" for n in numbers]


@pytest.fixture
def counted_queries(monkeypatch) -> list[int]:
    """How many times the store evaluated a Principal/query (a spy on Store.query)."""
    calls, original = [], Store.query

    def query(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Store, "query", query)
    return calls


@pytest.fixture
def threads(monkeypatch) -> list[str]:
    """Where each Response was made: "loop" (a running event loop) or "worker"."""
    where, original = [], Service.handle

    def handle(self, request, caller, *store):
        try:
            asyncio.get_running_loop()
            where.append("loop")
        except RuntimeError:
            where.append("worker")
        return original(self, request, caller, *store)

    monkeypatch.setattr(Service, "handle", handle)
    return where


def stop_the_clock_after_one_reading(monkeypatch) -> None:
    """Every time limit runs out at once: the first reading sets the deadline, every later
    one is far past it."""
    readings = iter([0.0])
    monkeypatch.setattr(db, "_clock", lambda: next(readings, 1e9))


# -- the cache ----------------------------------------------------------------------------


def answer(size: int) -> Answer:
    return Answer(0, tuple(f"i{n}" for n in range(size)), None)  # costs size + 1


def test_the_cache_drops_the_least_recently_used_answers_beyond_its_capacity():
    cache = QueryCache(capacity=12)
    for key in "abc":
        cache.put(key, answer(2))
    assert cache.get("a") == answer(2)  # a is now the most recently used

    cache.put("d", answer(2))  # 12 held: all fit
    cache.put("e", answer(2))  # 15: b, the least recently used, is dropped

    assert [key for key in "abcde" if cache.get(key) is not None] == ["a", "c", "d", "e"]


def test_an_answer_over_a_quarter_of_the_capacity_is_not_kept_and_zero_keeps_nothing():
    cache = QueryCache(capacity=40)
    cache.put("small", answer(9))
    cache.put("big", answer(10))
    assert (cache.get("small"), cache.get("big")) == (answer(9), None)

    nothing = QueryCache(capacity=0)
    nothing.put("empty", answer(0))
    assert nothing.get("empty") is None and len(nothing) == 0


def test_a_key_counts_in_ids_worth_of_its_size():
    cache = QueryCache(capacity=400)
    cache.put("small filter", answer(9), key_size=40 * 50)  # 60 ids' worth
    cache.put("huge filter", answer(0), key_size=1_000_000)  # a 1 MB text
    assert (cache.get("small filter"), cache.get("huge filter")) == (answer(9), None)


def test_a_repeated_query_is_answered_from_the_cache_until_the_state_moves(tmp_path, counted_queries):
    api = StoreApi(tmp_path)
    api.apply(PEOPLE)
    query = {"filter": {"text": "ann"}, "sort": [{"property": "name"}], "limit": 3}

    first = api.jmap.one("Principal/query", **query)
    again = api.jmap.one("Principal/query", **query, anchorOffset=3)  # no anchor: ignored
    other_window = api.jmap.one("Principal/query", **{**query, "position": 1})
    assert (first, len(counted_queries)) == (again, 2)
    assert first["ids"] == ids_of(0, 1, 3) and other_window["ids"] == ids_of(1, 3, 4)

    api.apply([*PEOPLE[:1], person(1, "Berg Anders"), *PEOPLE[2:]])  # Anna is now Anders
    moved = api.jmap.one("Principal/query", **query)

    assert moved["queryState"] != first["queryState"] and len(counted_queries) == 3
    assert moved["ids"] == ids_of(0, 3, 4)  # Ann Lee, Joanna Fox, Zed Ann
    api.store.close()


def test_with_the_cache_off_every_query_reads_the_store(tmp_path, counted_queries):
    api = StoreApi(tmp_path, jmap={"query_cache_ids": 0})
    api.apply(PEOPLE)
    answers = [api.jmap.one("Principal/query", filter={"text": "ann"}) for _ in range(3)]
    assert answers[0] == answers[1] == answers[2] and len(counted_queries) == 3
    api.store.close()


def test_the_cache_keeps_apart_callers_whose_answers_differ(tmp_path):
    """With accounts_visible = own, accountIds finds only the caller's own account."""
    settings = config.load(None, environ={"BRIDGE_STORE__PATH": str(tmp_path / "b.db"),
                                          "BRIDGE_JMAP__ACCOUNT_ID_TEMPLATE": "u-{login}"})
    with Store.open(settings.store.path) as store, store.snapshot() as snapshot:
        snapshot.add(person(1, "Ann", login="ann"))
        snapshot.add(person(2, "Bob", login="bob"))
        snapshot.apply(lambda plan: None, {"started": 0, "mode": "full", "seen": 2, "skipped": 0,
                                           "warnings": 0})
    service = Service(settings)
    request = {"using": USING, "methodCalls": [
        ["Principal/query", {"accountId": ACCOUNT, "filter": {"accountIds": ["u-ann"]}}, "0"]]}

    def found(login: str, number: int) -> list[str]:
        response = service.handle(request, Caller(login, f"p{number:032x}"))
        return response["methodResponses"][0][1]["ids"]

    assert (found("ann", 1), found("bob", 2), found("ann", 1)) == (ids_of(1), [], ids_of(1))


# -- the time limit -----------------------------------------------------------------------


def test_a_read_past_its_time_limit_stops_and_leaves_the_connection_clean(tmp_path, monkeypatch):
    store = Store.open(str(tmp_path / "b.db"))
    with store.snapshot() as snapshot:
        for n in range(300):
            snapshot.add(person(n, f"Person {n}"))
        snapshot.apply(lambda plan: None, {"started": 0, "mode": "full", "seen": 300, "skipped": 0,
                                           "warnings": 0})
    by_email = (SortKey("email", True, "i;unicode-casemap"),)
    with pytest.raises(RuntimeError):  # a store not prepared for limits would not keep them
        store.time_limit(60)
    store.allow_time_limits(0.002)
    with store.time_limit(60), store.reading():  # time to spare: an ordinary answer
        assert len(store.query(None, by_email, True)) == 300

    stop_the_clock_after_one_reading(monkeypatch)
    with pytest.raises(ReadTimeUp), store.time_limit(0.001), store.reading():
        store.query(None, by_email, True)

    monkeypatch.setattr(db, "_clock", lambda: 0.0)
    with store.reading():  # no transaction was left open behind the stopped read
        assert len(store.query(None, by_email, True)) == 300
    with store.reading():  # and a limit inside a transaction leaves that transaction alone
        with store.time_limit(60):
            store.state()
        store.state()
    store.close()


def test_python_work_checks_the_time_limit_and_limits_do_not_nest(monkeypatch):
    conn = sqlite3.connect(":memory:", isolation_level=None)
    db.allow_time_limits(conn, 0.002)
    db.check_time_limit()  # no limit: nothing to check
    stop_the_clock_after_one_reading(monkeypatch)
    with pytest.raises(ReadTimeUp), db.time_limit(conn, 0.001):
        db.check_time_limit()
    monkeypatch.setattr(db, "_clock", lambda: 0.0)
    with db.time_limit(conn, 60):
        db.check_time_limit()
        with pytest.raises(RuntimeError), db.time_limit(conn, 60):
            pass
    db.check_time_limit()


SLOW = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 100000) SELECT count(*) FROM n"


def test_a_stopped_read_leaves_no_transaction_open_but_an_outer_one_is_kept(monkeypatch):
    conn = sqlite3.connect(":memory:", isolation_level=None)
    db.allow_time_limits(conn, 0.002)
    stop_the_clock_after_one_reading(monkeypatch)
    with pytest.raises(sqlite3.OperationalError, match="interrupted"), db.time_limit(conn, 0.001):
        conn.execute("BEGIN")
        conn.execute(SLOW).fetchall()
    assert not conn.in_transaction

    monkeypatch.setattr(db, "_clock", lambda: 0.0)
    conn.execute("BEGIN")
    with db.time_limit(conn, 60):
        assert conn.execute(SLOW).fetchone() == (100000,)
    assert conn.in_transaction
    conn.execute("COMMIT")


def test_a_read_kept_waiting_on_a_lock_stops_at_the_time_limit(tmp_path):
    path = str(tmp_path / "locked.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (i)")
    holder.execute("BEGIN EXCLUSIVE")  # a rollback journal: readers must wait for it
    conn = sqlite3.connect(path, isolation_level=None)
    db.allow_time_limits(conn, 0.05)
    assert conn.execute("PRAGMA busy_timeout").fetchone() == (50,)

    with pytest.raises(ReadTimeUp), db.time_limit(conn, 0.05), db.sql_errors("reading"):
        conn.execute("SELECT count(*) FROM t").fetchall()
    # without a limit, a wait is a store error
    with pytest.raises(StoreError) as outside, db.sql_errors("reading"):
        conn.execute("SELECT count(*) FROM t").fetchall()
    assert not isinstance(outside.value, ReadTimeUp)

    holder.execute("ROLLBACK")
    with db.sql_errors("reading"):  # nothing in the way now
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    holder.close()
    conn.close()


@pytest.mark.parametrize("calls, quick", [
    ([["Principal/get", {}, "0"], ["Principal/query", {}, "1"], ["Core/echo", {}, "2"]], True),
    ([["ShareNotification/get", {}, "0"], ["ShareNotification/query", {}, "1"]], True),
    ([["Principal/query", {}, "0"], ["Principal/changes", {}, "1"]], False),
    ([["Principal/queryChanges", {}, "0"]], False),
    ([["Principal/set", {}, "0"]], False),
    ([["ShareNotification/set", {}, "0"]], False),
    ([["Principal/nothing", {}, "0"]], False),
    ([["Principal/get", {}]], False),
    ("not a list", False),
])
def test_only_requests_of_quick_reads_are_tried_on_the_loop(calls, quick):
    assert engine.quick({"using": USING, "methodCalls": calls}) is quick


def test_quick_reads_run_on_the_event_loop_and_the_rest_in_worker_threads(tmp_path, threads):
    api = StoreApi(tmp_path)
    api.apply(PEOPLE)
    state = api.jmap.one("Principal/get", ids=ids_of(0))["state"]
    api.jmap.one("Principal/query", filter={"text": "ann"})
    api.jmap.one("Principal/changes", sinceState=state)
    api.jmap.call(("Principal/set", {"accountId": ACCOUNT, "update": {ids_of(0)[0]: {"name": "x"}}}))

    assert threads == ["loop", "loop", "worker", "worker"]
    api.store.close()


def test_inline_read_ms_zero_sends_every_request_to_a_worker_thread(tmp_path, threads):
    api = StoreApi(tmp_path, jmap={"inline_read_ms": 0})
    api.apply(PEOPLE)
    api.jmap.one("Principal/query", filter={"text": "ann"})
    assert threads == ["worker"]
    api.store.close()


def test_a_quick_read_out_of_time_is_answered_again_in_a_worker_thread(tmp_path, monkeypatch, threads,
                                                                        caplog):
    api = StoreApi(tmp_path, jmap={"query_cache_ids": 0})
    api.apply([person(n, f"Person {n}") for n in range(300)])
    query = {"sort": [{"property": "email"}], "calculateTotal": True, "limit": 5}
    expected = api.jmap.one("Principal/query", **query)

    stop_the_clock_after_one_reading(monkeypatch)
    with caplog.at_level(logging.WARNING):
        late = api.jmap.one("Principal/query", **query)
    monkeypatch.setattr(db, "_clock", lambda: 0.0)
    after = api.jmap.one("Principal/query", **query)

    assert late == expected == after and expected["total"] == 300
    assert threads == ["loop", "loop", "worker", "loop"]
    assert not caplog.records  # no serverFail logged: the stopped attempt is not an error
    api.store.close()


def test_only_requests_that_may_write_poke_the_push_watcher(tmp_path, monkeypatch):
    """A poke makes the watcher read the store in a worker thread: quick reads skip it."""
    api = StoreApi(tmp_path)
    api.apply(PEOPLE)
    pokes = []
    monkeypatch.setattr(api.client.app.state.bridge.watcher, "poke", lambda: pokes.append(1))
    api.jmap.one("Principal/get", ids=ids_of(0))
    api.jmap.one("Principal/query", filter={"text": "ann"})
    assert pokes == []
    api.jmap.call(("Principal/set", {"accountId": ACCOUNT, "update": {ids_of(0)[0]: {"name": "x"}}}))
    assert pokes == [1]
    api.store.close()


def test_when_the_loops_store_cannot_be_opened_requests_go_to_worker_threads(tmp_path, monkeypatch,
                                                                             threads, caplog):
    api = StoreApi(tmp_path)
    api.apply(PEOPLE)

    def refuse(self):
        raise StoreError("store: opening: database is locked")

    monkeypatch.setattr(Service, "open_loop_store", refuse)
    with caplog.at_level(logging.WARNING):
        found = api.jmap.one("Principal/query", filter={"text": "ann"})

    assert found["ids"] and threads == ["worker"]
    assert "cannot open the event loop's store" in caplog.text
    api.store.close()
