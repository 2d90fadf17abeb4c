"""Principals as clients saw them at an older state, rebuilt from the change log.

Every change row carries enough to step back over it: an update holds each changed
field's old value (member lists as added/removed), a destruction the whole record, and a
user's edit the overrides before and after. Walking a record's rows after the state
backwards from what is stored now gives the record at that state, exactly; that is what
/changes needs for visibility and /queryChanges for old filter and sort results.

Also the windows of /changes: where to cut the log so that at most N ids change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bridge.model import Principal
from bridge.store.records import COLUMNS, LIST_FIELDS, from_row
from bridge.store.view import OVERRIDABLE, overrides_of

OVERRIDES = "overrides"  # the detail key of a user's edit


@dataclass(frozen=True)
class Window:
    """The ids that changed in (since, until], in modseq order of their first change."""

    since: int
    until: int
    ids: tuple[str, ...]
    has_more: bool


def window(db: Any, since: int, current: int, max_ids: int,
           scope: tuple[str, str] | None = None) -> Window:
    """The longest stretch of the log after ``since`` in which at most ``max_ids``
    distinct records change; ``has_more`` when it ends before ``current``. Principals by
    default, or the rows of one (type, state scope): a recipient's notifications. Either
    way the (type, scope, modseq) index answers it."""
    seen: dict[str, None] = {}
    until = since
    kind, key = scope or ("Principal", None)
    cursor = db.execute("SELECT modseq, record_id FROM changes WHERE type = ? AND scope IS ? "
                        "AND modseq > ? ORDER BY modseq", [kind, key, since])
    while rows := cursor.fetchmany(1000):
        for modseq, record_id in rows:
            if record_id not in seen and len(seen) == max_ids:
                return Window(since, until, tuple(seen), has_more=True)
            seen[record_id] = None
            until = modseq
    return Window(since, current, tuple(seen), has_more=False)


def changed_since(db: Any, since: int) -> list[str]:
    rows = db.execute("SELECT DISTINCT record_id FROM changes WHERE type = 'Principal' "
                      "AND scope IS NULL AND modseq > ?", [since]).fetchall()
    return [row[0] for row in rows]


def states_at(db: Any, ids: list[str], modseq: int) -> dict[str, Principal | None]:
    """Each principal as it was (with the user's edits) right after ``modseq``; None where it
    did not exist then."""
    stored = _stored(db, ids)
    overrides = overrides_of(db, ids)
    rows: dict[str, list[tuple[str, dict]]] = {pid: [] for pid in ids}
    for record_id, kind, detail in db.execute(
            # scope IS NULL: the (type, scope, modseq) index then reads only rows after modseq
            "SELECT record_id, kind, detail FROM changes WHERE type = 'Principal' AND scope IS NULL "
            "AND modseq > ? AND record_id IN (SELECT value FROM json_each(?)) ORDER BY modseq",
            [modseq, json.dumps(ids)]).fetchall():
        rows[record_id].append((kind, json.loads(detail)))
    result = {}
    for pid in ids:
        record, edits = stored.get(pid), dict(overrides[pid])
        for kind, detail in reversed(rows[pid]):
            record, edits = _step_back(record, edits, kind, detail)
        result[pid] = _effective(pid, record, edits) if record is not None else None
    return result


def _stored(db: Any, ids: list[str]) -> dict[str, dict]:
    rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM principals WHERE id IN "
                      "(SELECT value FROM json_each(?))", [json.dumps(ids)]).fetchall()
    return {row[0]: _plain(dict(zip(COLUMNS, row, strict=True))) for row in rows}


def _plain(row: dict) -> dict:
    """A stored row with lists decoded and disabled a boolean, like a change detail."""
    for name in LIST_FIELDS:
        if isinstance(row[name], str):
            row[name] = json.loads(row[name])
    row["disabled"] = bool(row["disabled"])
    return row


def _step_back(record: dict | None, edits: dict, kind: str,
               detail: dict) -> tuple[dict | None, dict]:
    """The state before one change row, given the state after it."""
    if OVERRIDES in detail:
        return record, dict(detail[OVERRIDES][0])
    if kind == "created":
        return None, edits
    if kind == "destroyed":
        return _plain(dict(detail)), edits
    before = dict(record)
    for name, change in detail.items():
        if name in LIST_FIELDS:
            before[name] = sorted((set(before[name]) - set(change["added"])) | set(change["removed"]))
        else:
            before[name] = change[0]
    return before, edits


def _effective(pid: str, record: dict, edits: dict) -> Principal:
    return from_row({**record, "id": pid, **{f: v for f, v in edits.items() if f in OVERRIDABLE}})
