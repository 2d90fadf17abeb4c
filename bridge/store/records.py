"""Principal rows: columns, conversion to and from model.Principal, the content hash, and
the per-field difference that an ``updated`` change row records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from bridge.model import RECORD_FIELDS, Principal, PrincipalType

LIST_FIELDS = ("members", "member_of")
#: Stored columns of a principal, in RECORD_FIELDS order (id first).
COLUMNS = ("id", *RECORD_FIELDS)


def record_hash(*values: Any) -> str:
    """Hash of one record's RECORD_FIELDS values as stored (lists as JSON text).
    Registered as an SQL function, so staged and stored rows hash the same way."""
    normalised = [sorted(json.loads(v)) if f in LIST_FIELDS else v
                  for f, v in zip(RECORD_FIELDS, values, strict=True)]
    encoded = json.dumps(normalised, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()[:32]


def to_row(principal: Principal) -> dict[str, Any]:
    row = {name: getattr(principal, name) for name in COLUMNS}
    row["type"] = principal.type.value
    row["disabled"] = int(principal.disabled)
    for name in LIST_FIELDS:
        row[name] = json.dumps(sorted(row[name]))
    return row


def from_row(row: Mapping[str, Any]) -> Principal:
    """A Principal from a stored row (lists as JSON text) or a decoded record (lists)."""
    values = {name: row[name] for name in COLUMNS}
    values["type"] = PrincipalType(values["type"])
    values["disabled"] = bool(values["disabled"])
    for name in LIST_FIELDS:
        value = values[name]
        values[name] = tuple(json.loads(value) if isinstance(value, str) else value)
    return Principal(**values)


def record_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The RECORD_FIELDS of a row as plain JSON values (what a ``created`` row keeps)."""
    record = {name: row[name] for name in RECORD_FIELDS}
    record["disabled"] = bool(record["disabled"])
    for name in LIST_FIELDS:
        record[name] = json.loads(record[name]) if isinstance(record[name], str) else list(record[name])
    return record


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """What an update changed: ``{field: [old, new]}``, and for member lists
    ``{field: {"added": [...], "removed": [...]}}`` (a 1,600-member list is not copied)."""
    before, after = record_of(old), record_of(new)
    changed: dict[str, Any] = {}
    for name in RECORD_FIELDS:
        if before[name] == after[name]:
            continue
        if name in LIST_FIELDS:
            changed[name] = {"added": sorted(set(after[name]) - set(before[name])),
                             "removed": sorted(set(before[name]) - set(after[name]))}
        else:
            changed[name] = [before[name], after[name]]
    return changed


def apply_changes(record: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Replay an ``updated`` detail onto the record it was computed from."""
    result = dict(record)
    for name, change in changes.items():
        if name in LIST_FIELDS:
            kept = set(result[name]) - set(change["removed"])
            result[name] = sorted(kept | set(change["added"]))
        else:
            result[name] = change[1]
    return result
