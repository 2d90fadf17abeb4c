"""ShareNotifications (RFC 9670 §3): stored per recipient, immutable, each creation and each
destruction one change row in the recipient's own state scope.

Retention happens here too, and leaves the same trail: a per-recipient cap destroys the
oldest, expiry destroys the old, and a change to an object already notified within the
coalescing window replaces that notification by one that keeps its ``old_rights`` and
takes the new ``new_rights``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from bridge.store import changes as log
from bridge.store.db import utc_now

TYPE = "ShareNotification"

SCHEMA = """
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    created TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_account_id TEXT NOT NULL,
    object_id TEXT NOT NULL,
    old_rights TEXT,
    new_rights TEXT,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL  -- the modseq of its creation: the order of arrival within a second
);
CREATE INDEX notifications_recipient ON notifications (recipient, created, seq);
CREATE INDEX notifications_object ON notifications (recipient, object_type, object_account_id, object_id);
CREATE INDEX notifications_created ON notifications (created);

ALTER TABLE changes ADD COLUMN scope TEXT;
CREATE INDEX changes_scope ON changes (type, scope, modseq);
"""

_COLUMNS = ("id", "recipient", "created", "changed_by", "object_type", "object_account_id",
            "object_id", "old_rights", "new_rights", "name")
_JSON = ("changed_by", "old_rights", "new_rights")


@dataclass(frozen=True)
class Notification:
    id: str
    recipient: str
    created: str  # UTC, ISO 8601 with Z
    changed_by: dict  # {"name", "email", "principal_id"}
    object_type: str
    object_account_id: str
    object_id: str
    old_rights: dict | None
    new_rights: dict | None
    name: str


@dataclass(frozen=True)
class Retention:
    cap: int  # most notifications kept per recipient
    coalesce_window: float  # seconds


def scope(recipient: str) -> str:
    return f"{TYPE}:{recipient}"


def _from_row(row: tuple) -> Notification:
    values = dict(zip(_COLUMNS, row, strict=True))
    for name in _JSON:
        values[name] = json.loads(values[name]) if values[name] is not None else None
    return Notification(**values)


def _row(notification: Notification) -> tuple:
    values = vars(notification)
    return tuple(json.dumps(values[c]) if c in _JSON and values[c] is not None else values[c]
                 for c in _COLUMNS)


def of_recipient(db: Any, recipient: str) -> list[Notification]:
    rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM notifications WHERE recipient = ? "
                      "ORDER BY created, seq", [recipient]).fetchall()
    return [_from_row(row) for row in rows]


def by_ids(db: Any, recipient: str, ids: list[str]) -> dict[str, Notification]:
    rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM notifications WHERE recipient = ? AND id IN "
                      "(SELECT value FROM json_each(?))", [recipient, json.dumps(ids)]).fetchall()
    return {row[0]: _from_row(row) for row in rows}


def add(db: Any, recipient: str, fields: dict, retention: Retention,
        now: float) -> tuple[str | None, list[str]]:
    """Within the caller's write transaction: store one notification for ``recipient``.
    Returns the new id (None when coalescing cancelled the change out) and the ids the
    cap and the coalescing destroyed."""
    destroyed = []
    earlier = _recent_of_object(db, recipient, fields, utc_now(now - retention.coalesce_window)) \
        if retention.coalesce_window > 0 else None
    if earlier is not None:
        destroy(db, [earlier])
        destroyed.append(earlier.id)
        fields = {**fields, "old_rights": earlier.old_rights}
        if fields["old_rights"] == fields["new_rights"]:  # the change was undone
            return None, destroyed
    notification = Notification(id="n" + uuid.uuid4().hex, recipient=recipient, created=utc_now(now),
                                **fields)
    seq = _log(db, notification, "created")
    db.execute(f"INSERT INTO notifications ({', '.join(_COLUMNS)}, seq) VALUES "
               f"({', '.join('?' * (len(_COLUMNS) + 1))})", (*_row(notification), seq))
    excess = db.execute("SELECT count(*) FROM notifications WHERE recipient = ?",
                        [recipient]).fetchone()[0] - retention.cap
    if excess > 0:
        oldest = [_from_row(row) for row in db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM notifications WHERE recipient = ? "
            "ORDER BY created, seq LIMIT ?", [recipient, excess])]
        destroy(db, oldest)
        destroyed += [n.id for n in oldest]
    return notification.id, destroyed


def _recent_of_object(db: Any, recipient: str, fields: dict, since: str) -> Notification | None:
    row = db.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM notifications WHERE recipient = ? AND object_type = ? "
        "AND object_account_id = ? AND object_id = ? AND created >= ? ORDER BY created DESC, seq DESC "
        "LIMIT 1", [recipient, fields["object_type"], fields["object_account_id"], fields["object_id"],
                    since]).fetchone()
    return _from_row(row) if row else None


def destroy(db: Any, notifications: list[Notification]) -> None:
    """Within the caller's write transaction: remove, leaving a destroyed row each."""
    for notification in notifications:
        db.execute("DELETE FROM notifications WHERE id = ?", [notification.id])
        _log(db, notification, "destroyed")


def expire(db: Any, before: str) -> int:
    """Within the caller's write transaction: destroy every notification created before."""
    rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM notifications WHERE created < ?",
                      [before]).fetchall()
    destroy(db, [_from_row(row) for row in rows])
    return len(rows)


def _log(db: Any, notification: Notification, kind: str) -> int:
    detail = json.dumps({c: getattr(notification, c) for c in _COLUMNS if c != "id"})
    cursor = db.execute("INSERT INTO changes (type, record_id, kind, run_id, at, dn_key, detail, scope) "
                        "VALUES (?, ?, ?, NULL, ?, NULL, ?, ?)",
                        [TYPE, notification.id, kind, utc_now(), detail, scope(notification.recipient)])
    log.set_modseq(db, scope(notification.recipient), cursor.lastrowid)
    return cursor.lastrowid


def changed(db: Any, recipient: str, since: int,
            until: int | None = None) -> list[tuple[str, str, str, dict]]:
    """(id, first kind, last kind, record) of each notification changed after ``since``, in
    the order of their first change (a notification is immutable: any row holds it whole)."""
    rows = db.execute("SELECT record_id, kind, detail FROM changes WHERE type = ? AND scope = ? "
                      "AND modseq > ? AND modseq <= ? ORDER BY modseq",
                      [TYPE, scope(recipient), since, 2**62 if until is None else until]).fetchall()
    found: dict[str, list] = {}
    for record_id, kind, detail in rows:
        found.setdefault(record_id, [kind, kind, detail])[1] = kind
    return [(rid, first, last, json.loads(detail)) for rid, (first, last, detail) in found.items()]


def as_of(db: Any, recipient: str, since: int) -> list[Notification]:
    """The recipient's notifications as they were right after ``since``: today's, less those
    created since, plus those destroyed since that existed then."""
    current = {n.id: n for n in of_recipient(db, recipient)}
    for record_id, first, _last, detail in changed(db, recipient, since):
        current.pop(record_id, None)
        if first == "destroyed":  # existed at since (immutable: the detail is the record)
            current[record_id] = Notification(id=record_id, **detail)
    return list(current.values())
