"""The SQLite connection: opening (WAL, busy timeout), write transactions, and the
translation of sqlite3 errors into StoreError."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from bridge.errors import ReadTimeUp, StoreError
from bridge.query import account_id, fold, unicode_casemap

BUSY_TIMEOUT_MS = 10_000


@contextmanager
def sql_errors(doing: str) -> Iterator[None]:
    """Re-raise sqlite3 errors as StoreError, saying what the store was doing; ReadTimeUp
    for a statement stopped by a time limit, or kept waiting on a lock past it."""
    try:
        yield
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
        if code == sqlite3.SQLITE_INTERRUPT or (code == sqlite3.SQLITE_BUSY and _limit.deadline is not None):
            raise ReadTimeUp(f"store: {doing}: stopped at its time limit") from exc
        raise StoreError(f"store: {doing}: {exc}") from exc


class _Limit(threading.local):
    deadline: float | None = None  # of the time limit this thread's reads run under


_limit = _Limit()
_clock = time.monotonic  # what time limits are measured by (a test may stop it)


def allow_time_limits(conn: sqlite3.Connection, longest: float) -> None:
    """Make ``conn`` obey time_limit: SQLite's progress handler, asked every thousand
    virtual-machine steps, interrupts a statement once the time limit of the thread running
    it has passed; and a lock held elsewhere is waited on at most ``longest`` seconds (the
    limit a caller will use). For a connection used only under time limits."""
    conn.set_progress_handler(_past_deadline, 1000)
    with sql_errors("allowing time limits"):
        conn.execute(f"PRAGMA busy_timeout = {max(1, round(longest * 1000))}")


def _past_deadline() -> bool:
    deadline = _limit.deadline
    return deadline is not None and _clock() > deadline


@contextmanager
def time_limit(conn: sqlite3.Connection, seconds: float) -> Iterator[None]:
    """Reads on ``conn`` (prepared by allow_time_limits) from this thread end in ReadTimeUp,
    through sql_errors, once ``seconds`` have passed: a statement is interrupted, a lock is
    not waited on, and check_time_limit, called where Python does much with what was read,
    stops that too. A transaction begun inside and left open is rolled back, so a stopped
    read leaves the connection as it found it. Limits do not nest."""
    if _limit.deadline is not None:
        raise RuntimeError("a time limit is already running on this thread")
    outer = conn.in_transaction
    _limit.deadline = _clock() + seconds
    try:
        yield
    finally:
        _limit.deadline = None
        if conn.in_transaction and not outer:
            with sql_errors("ending a time limit"):
                conn.rollback()


def check_time_limit() -> None:
    """ReadTimeUp if this thread runs under a time limit that has passed."""
    if _limit.deadline is not None and _clock() > _limit.deadline:
        raise ReadTimeUp("stopped at its time limit")


def utc_now(at: float | None = None) -> str:
    """The store's timestamps: UTC, whole seconds, ISO 8601 with ``Z``."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def connect(path: str, readonly: bool = False) -> sqlite_utils.Database:
    """Open ``path`` (``:memory:`` too) in autocommit mode; transactions are explicit."""
    with sql_errors(f"opening {path}"):
        if readonly:
            # a URI, so that mode=ro applies; as_uri() escapes '#', '%' and '?' in the path
            uri = Path(path).resolve().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            _make_parent(path)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _register_functions(conn)
        if not readonly and path != ":memory:":
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
        return sqlite_utils.Database(conn)


def _register_functions(conn: sqlite3.Connection) -> None:
    """The Python meanings SQL needs: Unicode case folding and collation keys, identical
    to bridge.query's, so SQL and Python order and match alike."""
    conn.create_function("casefold", 1, lambda text: None if text is None else fold(text),
                         deterministic=True)
    conn.create_function("casemap_key", 1,
                         lambda text: None if text is None else unicode_casemap(text),
                         deterministic=True)
    conn.create_function("account_id", 3, account_id, deterministic=True)


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL; another process creating the same new file at the same moment can
    make the switch report "locked" without waiting, so retry for the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _make_parent(path: str) -> None:
    parent = os.path.dirname(path) if path != ":memory:" else ""
    if parent:
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"store: cannot create {parent}: {exc.strerror}") from exc


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception. IMMEDIATE takes the write
    lock up front, so a transaction that reads then writes never fails half-way on a
    writer that committed in between."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
