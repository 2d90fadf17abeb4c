"""The change log: state tokens, one record's history, rows since a modseq, and retention
pruning."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

PRINCIPAL = "Principal"


@dataclass(frozen=True)
class ChangeRow:
    modseq: int
    type: str
    record_id: str
    kind: str
    run_id: int | None
    at: str
    dn_key: str | None
    detail: dict[str, Any] = field(default_factory=dict)


def format_state(epoch: str, modseq: int) -> str:
    return f"{epoch}-{modseq}"


def parse_state(epoch: str, token: str) -> int | None:
    """The modseq a state token stands for; None when it comes from another database
    (a different epoch). Raises ValueError when the token is not a state at all."""
    token_epoch, _, modseq = token.rpartition("-")
    if not token_epoch or not modseq.isdigit() or len(modseq) > 18:
        raise ValueError(f"not a state: {token!r}")
    return int(modseq) if token_epoch == epoch else None


def current_modseq(db: sqlite_utils.Database, scope: str = PRINCIPAL) -> int:
    row = db.execute("SELECT modseq FROM states WHERE scope = ?", [scope]).fetchone()
    return row[0] if row else 0


def set_modseq(db: sqlite_utils.Database, scope: str, modseq: int) -> None:
    db.execute("INSERT INTO states (scope, modseq) VALUES (?, ?) "
               "ON CONFLICT (scope) DO UPDATE SET modseq = excluded.modseq", [scope, modseq])


def pruned_through(db: sqlite_utils.Database, scope: str | None = None) -> int:
    """The newest modseq pruned from the log: of one state scope's rows, or of any row.
    A client whose state is at least that of its scope can still be told every change."""
    if scope is not None:
        row = db.execute("SELECT modseq FROM pruned WHERE scope = ?", [scope]).fetchone()
        return row[0] if row else 0
    row = db.execute("SELECT value FROM meta WHERE key = 'pruned_through'").fetchone()
    return int(row[0]) if row else 0


def can_tell_changes(db: sqlite_utils.Database, scope: str, since: int) -> bool:
    """Whether every change of ``scope`` after ``since`` is still in the log (and
    ``since`` is a state the scope has had)."""
    return pruned_through(db, scope) <= since <= current_modseq(db, scope)


_ROW = "SELECT modseq, type, record_id, kind, run_id, at, dn_key, detail FROM changes"


def history(db: sqlite_utils.Database, record_id: str) -> list[ChangeRow]:
    rows = db.execute(f"{_ROW} WHERE record_id = ? ORDER BY modseq", [record_id]).fetchall()
    return [ChangeRow(*row[:7], detail=json.loads(row[7])) for row in rows]


def rows_since(db: sqlite_utils.Database, since: int) -> list[ChangeRow]:
    rows = db.execute(f"{_ROW} WHERE modseq > ? ORDER BY modseq", [since]).fetchall()
    return [ChangeRow(*row[:7], detail=json.loads(row[7])) for row in rows]


def records_with_dn(db: sqlite_utils.Database, dn_key: str) -> list[str]:
    """Ids that have (or had) this DN, most recently changed first."""
    rows = db.execute(
        """SELECT id FROM (SELECT id, modseq FROM principals WHERE dn_key = ?
                            UNION ALL
                            SELECT record_id, modseq FROM changes WHERE dn_key = ?)
           GROUP BY id ORDER BY max(modseq) DESC""", [dn_key, dn_key]).fetchall()
    return [row[0] for row in rows]


def prune(db: sqlite_utils.Database, before: str) -> int:
    """Drop change rows older than ``before`` (an ISO time), always a prefix of the log,
    and remember the horizon. Returns the number of rows dropped."""
    # by the time index: max() alone would walk the log back from its newest row
    horizon = db.execute("SELECT max(modseq) FROM changes INDEXED BY changes_at WHERE at < ?",
                         [before]).fetchone()[0]
    if not horizon:
        return 0
    db.execute(f"""INSERT INTO pruned (scope, modseq)
        SELECT coalesce(scope, '{PRINCIPAL}'), max(modseq) FROM changes WHERE modseq <= ? GROUP BY 1
        ON CONFLICT (scope) DO UPDATE SET modseq = max(modseq, excluded.modseq)""", [horizon])
    dropped = db.execute("DELETE FROM changes WHERE modseq <= ?", [horizon]).rowcount
    db.execute("INSERT INTO meta (key, value) VALUES ('pruned_through', ?) "
               "ON CONFLICT (key) DO UPDATE SET value = "
               "max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
               [str(horizon)])
    return dropped
