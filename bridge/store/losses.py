"""What a run's updates would empty: per source and field, how many principals that had a
value would lose it, and how many had one. Many at once is what a read looks like when the
service account may no longer see an attribute (an ACL change hides ``mail`` or
``member``): the entries come back complete in every other way, so nothing is destroyed,
but each is emptied. The safety valve (bridge/sync.py) decides what is too many."""

from __future__ import annotations

from typing import Any

#: the fields a hidden attribute empties, with what "has a value" means for a table alias
HAS_VALUE = {
    "email": "coalesce({t}.email, '') != ''",
    "description": "coalesce({t}.description, '') != ''",
    "time_zone": "coalesce({t}.time_zone, '') != ''",
    "members": "{t}.type = 'group' AND coalesce({t}.members, '[]') != '[]'",
}


def losses(db: Any, updated_sql: str) -> dict[str, dict[str, tuple[int, int]]]:
    """source → field → (principals that would lose it, principals of the source that have
    it), for the fields some principal would lose. ``updated_sql`` is the FROM/WHERE of the
    updated pairs: ``s`` the staged row, ``p`` the stored one."""
    sums = ", ".join(f"sum(({has.format(t='p')}) AND NOT ({has.format(t='s')}))"
                     for has in HAS_VALUE.values())
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for source, *lost in db.execute(f"SELECT s.source, {sums} {updated_sql} GROUP BY s.source"):
        for field, number in zip(HAS_VALUE, lost, strict=True):
            if number:  # only then is the source's whole count worth reading
                holders = db.execute(f"SELECT count(*) FROM principals p WHERE p.source = ? "
                                     f"AND {HAS_VALUE[field].format(t='p')}", [source]).fetchone()[0]
                found.setdefault(source, {})[field] = (number, holders)
    return found
