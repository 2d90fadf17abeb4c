"""A user's edits of their own principal (name, description, timeZone): kept as overrides
over the directory's values, so every later sync leaves them in place. Each edit that
changes something is one change row (a new state) and one audit row per field."""

from __future__ import annotations

import json
from typing import Any

from bridge.store import changes as log
from bridge.store.db import utc_now
from bridge.store.reconstruct import OVERRIDES
from bridge.store.view import OVERRIDABLE, overrides_of, refresh


def apply_edit(db: Any, principal_id: str, values: dict[str, str | None], actor: str,
               remote: str = "") -> bool:
    """Within the caller's write transaction: lay ``values`` over the principal's fields.
    Returns False (and writes nothing) when the effective values would not change."""
    unknown = set(values) - set(OVERRIDABLE)
    if unknown:
        raise ValueError(f"not an overridable field: {sorted(unknown)}")
    before_effective = _effective(db, principal_id)
    old = overrides_of(db, [principal_id])[principal_id]
    new = {**old, **values}
    after_effective = {**before_effective, **values}
    if after_effective == before_effective:
        return False
    now = utc_now()
    db.execute("DELETE FROM overrides WHERE principal_id = ?", [principal_id])
    db.conn.executemany("INSERT INTO overrides (principal_id, field, value) VALUES (?, ?, ?)",
                        [(principal_id, field, value) for field, value in sorted(new.items())])
    cursor = db.execute(
        "INSERT INTO changes (type, record_id, kind, run_id, at, dn_key, detail) "
        "SELECT 'Principal', id, 'updated', NULL, ?, dn_key, ? FROM principals WHERE id = ?",
        [now, json.dumps({OVERRIDES: [old, new], "by": actor}), principal_id])
    log.set_modseq(db, log.PRINCIPAL, cursor.lastrowid)
    db.conn.executemany(
        "INSERT INTO audit_log (at, principal_id, actor, field, old, new, remote) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(now, principal_id, actor, field, before_effective[field], after_effective[field], remote)
         for field in OVERRIDABLE if before_effective[field] != after_effective[field]])
    refresh(db, "p.id = ?", [principal_id], drop_gone=False)
    return True


def _effective(db: Any, principal_id: str) -> dict[str, str | None]:
    row = db.execute(f"SELECT {', '.join(OVERRIDABLE)} FROM principal_view WHERE id = ?",
                     [principal_id]).fetchone()
    if row is None:
        raise KeyError(principal_id)
    return dict(zip(OVERRIDABLE, row, strict=True))
