"""The SQLite connection: opening (WAL, busy timeout), write transactions, and the
translation of sqlite3 errors into StoreError."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils

from bridge.errors import StoreError

BUSY_TIMEOUT_MS = 10_000


@contextmanager
def sql_errors(doing: str) -> Iterator[None]:
    """Re-raise sqlite3 errors as StoreError, saying what the store was doing."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"store: {doing}: {exc}") from exc


def connect(path: str, readonly: bool = False) -> sqlite_utils.Database:
    """Open ``path`` (``:memory:`` too) in autocommit mode; transactions are explicit."""
    with sql_errors(f"opening {path}"):
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        else:
            _make_parent(path)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not readonly and path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        return sqlite_utils.Database(conn)


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
