"""What a run's updates would empty: per source and field, how many of the principals the
run read again had a value and would lose it. Many at once is what a read looks like when
the service account may no longer see an attribute (an ACL change hides ``mail`` or
``member``): the entries come back complete in every other way, so nothing is destroyed,
but each is emptied. Counting only what the run read makes an incremental run, which reads
a few entries, as suspicious of its own reads as a full one. The safety valve
(bridge/sync.py) decides what is too many."""

from __future__ import annotations

from typing import Any

#: per field: whether the stored row ``p`` has a value, and whether the staged row ``s``
#: takes it away (a group that stops being a group takes its members along, rightly)
FIELDS = {
    "email": ("coalesce(p.email, '') != ''", "coalesce(s.email, '') = ''"),
    "description": ("coalesce(p.description, '') != ''", "coalesce(s.description, '') = ''"),
    "time_zone": ("coalesce(p.time_zone, '') != ''", "coalesce(s.time_zone, '') = ''"),
    "members": ("p.type = 'group' AND coalesce(p.members, '[]') != '[]'",
                "s.type = 'group' AND coalesce(s.members, '[]') = '[]'"),
}
#: the staged rows this run read (not stored neighbours carried in to resolve a delta),
#: each with its stored row; by the staged source, so an entry that moves counts where it goes
_READ = "FROM temp.stage s CROSS JOIN principals p ON p.id = s.id WHERE s.origin IS NULL"


def losses(db: Any, updated_sql: str) -> dict[str, dict[str, tuple[int, int]]]:
    """source → field → (principals read that would lose it, principals read that have it),
    for the fields some principal would lose. ``updated_sql`` is the FROM/WHERE of the
    updated pairs: ``s`` the staged row, ``p`` the stored one."""
    sums = ", ".join(f"sum(({had}) AND ({gone}))" for had, gone in FIELDS.values())
    lost = {source: dict(zip(FIELDS, numbers, strict=True)) for source, *numbers in db.execute(
        f"SELECT s.source, {sums} {updated_sql} AND s.origin IS NULL GROUP BY s.source")}
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for source, numbers in sorted(lost.items()):
        for field, number in numbers.items():
            if number:  # only then are the holders worth counting
                holders = db.execute(f"SELECT count(*) {_READ} AND s.source = ? AND {FIELDS[field][0]}",
                                     [source]).fetchone()[0]
                found.setdefault(source, {})[field] = (number, holders)
    return found
