"""The store's schema as numbered migrations, applied in order; ``PRAGMA user_version``
records how far a database has come."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable

from bridge.store import notifications, view

MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 1: principals, the change log with one global modseq, runs, membership closure
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE principals (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        type TEXT NOT NULL,
        dn TEXT NOT NULL,
        dn_key TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT,
        email TEXT,
        time_zone TEXT,
        login TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        members TEXT NOT NULL DEFAULT '[]',
        member_of TEXT NOT NULL DEFAULT '[]',
        hash TEXT NOT NULL,
        modseq INTEGER NOT NULL
    );
    CREATE INDEX principals_dn_key ON principals (dn_key);
    CREATE INDEX principals_source ON principals (source);

    CREATE TABLE changes (
        modseq INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        record_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('created', 'updated', 'destroyed')),
        run_id INTEGER,
        at TEXT NOT NULL,
        dn_key TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX changes_record ON changes (record_id, modseq);
    CREATE INDEX changes_dn_key ON changes (dn_key);
    CREATE INDEX changes_at ON changes (at);

    -- the highest modseq of each state scope ("Principal"), kept even when rows are pruned
    CREATE TABLE states (scope TEXT PRIMARY KEY, modseq INTEGER NOT NULL);

    -- each group's member references (normalised DN keys, casefolded memberUid logins)
    CREATE TABLE member_refs (group_id TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL);
    CREATE INDEX member_refs_group ON member_refs (group_id);

    CREATE TABLE effective_members (
        group_id TEXT NOT NULL,
        member_id TEXT NOT NULL,
        PRIMARY KEY (group_id, member_id)
    ) WITHOUT ROWID;
    CREATE INDEX effective_members_member ON effective_members (member_id);

    CREATE TABLE sync_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        mode TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        seen INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        destroyed INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        warnings INTEGER NOT NULL DEFAULT 0,
        duration REAL NOT NULL DEFAULT 0,
        modseq INTEGER,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    """,
)



def _view(conn: sqlite3.Connection) -> None:
    """2: what clients see — overrides of one's own principal, the audit log, and the
    principal view with its trigram text index, filled from the principals."""
    for statement in _statements(view.SCHEMA):
        conn.execute(statement)
    view.refresh(conn)


def _notifications(conn: sqlite3.Connection) -> None:
    """3: ShareNotifications, and a state scope on change rows (one per recipient)."""
    for statement in _statements(notifications.SCHEMA):
        conn.execute(statement)


def _lookups_and_horizons(conn: sqlite3.Connection) -> None:
    """4: indexed case-insensitive lookups by login and email (share-event recipients), and
    the pruned horizon per state scope, so that pruning one scope's old rows no longer
    makes every other scope's current state too old. A scope's horizon starts at the
    old global one, or at its own current modseq if lower (no row of it came after)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(principal_view)")}
    if "login_fold" not in columns:  # databases from before view.SCHEMA had it
        conn.execute("ALTER TABLE principal_view ADD COLUMN login_fold TEXT")
        conn.execute("UPDATE principal_view SET login_fold = casefold(login)")
        conn.execute("CREATE INDEX principal_view_login_fold ON principal_view (login_fold)")
    conn.execute("CREATE INDEX IF NOT EXISTS principal_view_email_fold ON principal_view (email_fold)")
    conn.execute("CREATE TABLE pruned (scope TEXT PRIMARY KEY, modseq INTEGER NOT NULL) WITHOUT ROWID")
    conn.execute("""INSERT INTO pruned (scope, modseq)
        SELECT s.scope, min(s.modseq, CAST(m.value AS INTEGER)) FROM states s
        JOIN meta m ON m.key = 'pruned_through' WHERE true""")


_CURSORS = """
    -- 5: where each source's incremental reader goes on from (a syncrepl cookie, an AD
    -- uSN with its DC, a timestamp), written in the same transaction as the data it read
    CREATE TABLE sync_cursors (
        source TEXT PRIMARY KEY,
        reader TEXT NOT NULL,
        fingerprint TEXT NOT NULL,  -- the source's search as it was read
        position TEXT NOT NULL,     -- JSON, the reader's own
        updated_at TEXT NOT NULL
    );
"""

_DELTA_LOOKUPS = """
    -- 6: what an incremental run looks up: the groups that name a key, a run's changes
    CREATE INDEX member_refs_ref ON member_refs (ref, kind);
    CREATE INDEX changes_run ON changes (run_id);
"""

MIGRATIONS = (*MIGRATIONS, _view, _notifications, _lookups_and_horizons, _CURSORS, _DELTA_LOOKUPS)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to SCHEMA_VERSION; a new one also gets its random epoch.
    Returns the version found before migrating."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"database schema {found} is newer than this bridge understands ({SCHEMA_VERSION})")
    for version in range(found, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process (serve and cron starting together) may have got here first
            if conn.execute("PRAGMA user_version").fetchone()[0] > version:
                conn.execute("COMMIT")
                continue
            step = MIGRATIONS[version]
            if callable(step):
                step(conn)
            else:
                for statement in _statements(step):
                    conn.execute(statement)
            if version == 0:
                conn.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)",
                             (secrets.token_hex(4),))
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]
