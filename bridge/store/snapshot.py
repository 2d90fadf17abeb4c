"""One run's snapshot of the directory: staged (see staging.py), then either planned (the
diff, nothing written) or applied to the store in ONE transaction.

The diff is by id and content hash, in SQL. Applying appends one change row per created,
updated or destroyed principal (an unchanged entry adds nothing), stores the principals
and their member references, recomputes the membership closure, prunes old history and
records the run — or, if anything fails or the safety check vetoes, none of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sqlite_utils

from bridge.model import RECORD_FIELDS, MappedEntry
from bridge.store import changes as log
from bridge.store import view
from bridge.store.db import sql_errors, utc_now, write_transaction
from bridge.store.losses import losses
from bridge.store.records import COLUMNS, field_changes
from bridge.store.staging import BATCH, Resolution, Staging

_JSON_VALUE = {"members": "json({t}.members)", "member_of": "json({t}.member_of)",
               "disabled": "json(CASE WHEN {t}.disabled THEN 'true' ELSE 'false' END)"}
_RECORD_JSON = "json_object(" + ", ".join(
    f"'{f}', " + _JSON_VALUE.get(f, "{t}." + f) for f in RECORD_FIELDS) + ")"

_CREATED = "FROM temp.stage s LEFT JOIN principals p ON p.id = s.id WHERE p.id IS NULL"
_UPDATED = "FROM temp.stage s JOIN principals p ON p.id = s.id WHERE p.hash != s.hash"
_DESTROYED = "FROM principals p LEFT JOIN temp.stage s ON s.id = p.id WHERE s.id IS NULL"
# a delta: what it staged, and what it removed (every other stored principal is unchanged)
_DESTROYED_BY_DELTA = "FROM temp.stage_gone g CROSS JOIN principals p ON p.id = g.id"  # gone first


def _destroyed(complete: bool) -> str:
    return _DESTROYED if complete else _DESTROYED_BY_DELTA
_KINDS = ("created", "updated", "destroyed")


def _record_json(table: str) -> str:
    return _RECORD_JSON.replace("{t}", table)


@dataclass
class SourceDiff:
    previous: int = 0
    staged: int = 0
    created: int = 0
    updated: int = 0
    destroyed: int = 0
    emptied: dict[str, tuple[int, int]] = field(default_factory=dict)  # see losses.py


@dataclass(frozen=True)
class Sample:
    kind: str
    id: str
    dn: str
    source: str
    fields: tuple[str, ...] = ()


@dataclass
class Plan:
    """The diff between the staged snapshot and the store, per source."""

    sources: dict[str, SourceDiff] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def total(self, kind: str) -> int:
        return sum(getattr(diff, kind) for diff in self.sources.values())

    @property
    def changed(self) -> bool:
        return any(self.total(kind) for kind in _KINDS)


@dataclass(frozen=True)
class Applied:
    plan: Plan
    run_id: int
    modseq: int


class Snapshot:
    """Stage every principal of one read (``add``; ``delete`` too for a delta), then
    ``plan()`` or ``apply()`` it. ``complete=False`` marks a delta."""

    def __init__(self, db: sqlite_utils.Database, complete: bool = True) -> None:
        self._db = db
        with sql_errors("creating the staging tables"):
            self._staging = Staging(db, complete)
        self._resolved: Resolution | None = None
        self._chained = False

    def add(self, mapped: MappedEntry) -> None:
        with sql_errors("staging entries"):
            self._staging.add(mapped)

    def delete(self, principal_id: str, source: str | None = None) -> None:
        """A deletion (delta only); with ``source``, of that source's principal only."""
        with sql_errors("staging a deletion"):
            self._staging.delete(principal_id, source)

    def present(self, source: str, principal_ids: list[str]) -> None:
        """These principals of ``source`` are still there (delta only)."""
        with sql_errors("staging present entries"):
            self._staging.present(source, principal_ids)

    def only_present(self, source: str) -> None:
        """Of ``source``, keep only the stored principals named present or staged."""
        self._staging.only_present(source)

    def widen(self) -> None:
        """Resolve this delta against the whole store, not only what it touches (see
        neighbourhood.py); resolved again if it was already."""
        with sql_errors("widening the snapshot"):
            self._staging.widen()
        self._resolved = None

    @property
    def narrow(self) -> bool:
        return self._staging.narrow

    def resolve(self) -> Resolution:
        """Resolve memberships and hash every record; idempotent."""
        if self._resolved is None:
            with sql_errors("resolving the snapshot"):
                self._resolved = self._staging.resolve()
        return self._resolved

    def unresolved_member_refs(self) -> dict[str, list[str]]:
        """DN keys of members no source read, each with the ids of the groups listing it."""
        self.resolve()
        with sql_errors("finding members outside every source"):
            return self._staging.unresolved_member_refs()

    def member_pairs(self, limit: int = 3) -> list[tuple[str, str]]:
        """(group DN, member DN) of a few direct memberships, synced members first."""
        self.resolve()
        with sql_errors("finding a membership"):
            return self._staging.member_pairs(limit)

    def add_chain_edges(self, edges: list[tuple[str, str]]) -> None:
        """Effective (group id, member id) memberships the server computed; the stored
        closure becomes the closure of the direct memberships and these. A narrow delta
        must be widened first: the closure of every group is then computed again."""
        if self.narrow:
            raise ValueError("in-chain memberships need the whole store: widen() the delta first")
        self.resolve()
        with sql_errors("staging effective memberships"):
            self._staging.add_chain_edges(edges)
        self._chained = True

    def plan(self, samples: int = 10) -> Plan:
        """The diff against the store, with up to ``samples`` examples per kind."""
        self.resolve()
        with sql_errors("computing the diff"):
            return _plan(self._db, samples, self._staging.complete)

    def apply(self, check: Callable[[Plan], None], run: dict, retention: float = 0,
              samples: int = 10, cursors: dict[str, Cursor] | None = None) -> Applied:
        """In one transaction: diff, let ``check`` veto (by raising), write everything.

        ``run`` holds the run's ``started`` (epoch seconds), ``mode``, ``seen``, ``skipped``,
        ``warnings`` and ``detail``. History older than ``retention`` seconds is pruned.
        ``cursors`` replace every source's stored cursor (None keeps them as they are)."""
        self.resolve()
        with sql_errors("applying the snapshot"), write_transaction(self._db):
            complete = self._staging.complete
            plan = _plan(self._db, samples, complete)
            check(plan)
            run_id = _insert_run(self._db, run)
            narrow = self._staging.narrow  # never chained: add_chain_edges needs a wide delta
            if narrow:
                _mark_regrouped(self._db)
            if plan.changed:
                _write_changes(self._db, run_id, complete)
                log.set_modseq(self._db, log.PRINCIPAL, _last_modseq(self._db))
                view.refresh(self._db, "p.id IN (SELECT record_id FROM changes WHERE run_id = ?)",
                             [run_id], drop_gone=False)
                view.drop(self._db, "SELECT record_id FROM changes WHERE run_id = ? AND kind = 'destroyed'",
                          [run_id])
            _store_member_refs(self._db, complete)
            if cursors is not None:
                _store_cursors(self._db, cursors)
            if narrow:
                _update_effective_members(self._db)
            elif plan.changed or self._chained:
                _recompute_effective_members(self._db, self._chained)
            if retention:
                log.prune(self._db, utc_now(time.time() - retention))
            modseq = log.current_modseq(self._db)
            _finish_run(self._db, run_id, run, plan, modseq)
        return Applied(plan, run_id, modseq)

    def close(self) -> None:
        with sql_errors("dropping the staging tables"):
            self._staging.close()


def _plan(db: sqlite_utils.Database, samples: int, complete: bool) -> Plan:
    plan = Plan()
    destroyed = _destroyed(complete)

    def count(sql: str, attribute: str) -> None:
        for source, number in db.execute(sql).fetchall():
            setattr(plan.sources.setdefault(source, SourceDiff()), attribute, number)

    count("SELECT source, count(*) FROM principals GROUP BY source", "previous")
    count(f"SELECT s.source, count(*) {_CREATED} GROUP BY s.source", "created")
    count(f"SELECT s.source, count(*) {_UPDATED} GROUP BY s.source", "updated")
    count(f"SELECT p.source, count(*) {destroyed} GROUP BY p.source", "destroyed")
    if complete:
        count("SELECT source, count(*) FROM temp.stage GROUP BY source", "staged")
    else:  # what a complete snapshot would have staged: the store, with what came and went
        arrived = dict(db.execute("""SELECT s.source, count(*) FROM temp.stage s
            LEFT JOIN principals p ON p.id = s.id WHERE p.id IS NULL OR p.source != s.source
            GROUP BY s.source""").fetchall())
        # CROSS JOIN: read the few staged rows, never every principal of a source
        left = dict(db.execute("""SELECT p.source, count(*) FROM temp.stage s
            CROSS JOIN principals p ON p.id = s.id WHERE p.source != s.source
            GROUP BY p.source""").fetchall())
        for source in {*arrived, *left}:
            plan.sources.setdefault(source, SourceDiff())
        for source, diff in plan.sources.items():
            diff.staged = diff.previous + arrived.get(source, 0) - left.get(source, 0) - diff.destroyed
    for source, emptied in losses(db, _UPDATED).items():
        plan.sources.setdefault(source, SourceDiff()).emptied = emptied
    plan.samples = {
        "created": [Sample("created", *row) for row in db.execute(
            f"SELECT s.id, s.dn, s.source {_CREATED} ORDER BY s.id LIMIT ?", [samples])],
        "updated": [Sample("updated", new["id"], new["dn"], new["source"], tuple(field_changes(old, new)))
                    for old, new in _updated_pairs(db, samples)],
        "destroyed": [Sample("destroyed", *row) for row in db.execute(
            f"SELECT p.id, p.dn, p.source {destroyed} ORDER BY p.id LIMIT ?", [samples])],
    }
    return plan


def _updated_pairs(db: sqlite_utils.Database, limit: int = -1) -> Iterator[tuple[dict, dict]]:
    """(stored, staged) rows of every updated principal, read a batch at a time."""
    select = ", ".join([f"p.{c}" for c in COLUMNS] + [f"s.{c}" for c in COLUMNS])
    cursor = db.execute(f"SELECT {select} {_UPDATED} ORDER BY s.id LIMIT ?", [limit])
    width = len(COLUMNS)
    while rows := cursor.fetchmany(BATCH):
        for row in rows:
            yield (dict(zip(COLUMNS, row[:width], strict=True)),
                   dict(zip(COLUMNS, row[width:], strict=True)))


def _write_changes(db: sqlite_utils.Database, run_id: int, complete: bool) -> None:
    now = utc_now()
    db.execute(f"""INSERT INTO changes (type, record_id, kind, run_id, at, dn_key, detail)
        SELECT 'Principal', s.id, 'created', ?, ?, s.dn_key, {_record_json('s')}
        {_CREATED} ORDER BY s.id""", [run_id, now])
    db.execute(f"""INSERT INTO principals ({', '.join(COLUMNS)}, hash, modseq)
        SELECT {', '.join('s.' + c for c in COLUMNS)}, s.hash, c.modseq
        FROM temp.stage s JOIN changes c ON c.record_id = s.id AND c.run_id = ?
        WHERE c.kind = 'created'""", [run_id])
    batch: list[tuple] = []
    for old, new in _updated_pairs(db):
        batch.append((new["id"], run_id, now, new["dn_key"], json.dumps(field_changes(old, new))))
        if len(batch) >= BATCH:
            _insert_updates(db, batch)
    _insert_updates(db, batch)
    assignments = ", ".join(f"{c} = s.{c}" for c in (*RECORD_FIELDS, "hash"))
    db.execute(f"""UPDATE principals SET {assignments}, modseq = c.modseq
        FROM temp.stage s JOIN changes c ON c.record_id = s.id AND c.run_id = ?
        WHERE s.id = principals.id AND c.kind = 'updated'""", [run_id])
    db.execute(f"""INSERT INTO changes (type, record_id, kind, run_id, at, dn_key, detail)
        SELECT 'Principal', p.id, 'destroyed', ?, ?, p.dn_key, {_record_json('p')}
        {_destroyed(complete)} ORDER BY p.id""", [run_id, now])
    db.execute("DELETE FROM principals WHERE id IN (SELECT record_id FROM changes "
               "WHERE run_id = ? AND kind = 'destroyed')", [run_id])


def _insert_updates(db: sqlite_utils.Database, batch: list[tuple]) -> None:
    db.conn.executemany("INSERT INTO changes (type, record_id, kind, run_id, at, dn_key, detail) "
                        "VALUES ('Principal', ?, 'updated', ?, ?, ?, ?)", batch)
    batch.clear()


def _last_modseq(db: sqlite_utils.Database) -> int:
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    return row[0] if row else 0


def _store_member_refs(db: sqlite_utils.Database, complete: bool) -> None:
    """Keep every group's member references as the directory gave them (normalised), so
    that a later delta can re-resolve unchanged groups against new or deleted entries.
    A delta replaces those of the groups it resolved again and of the principals gone."""
    if complete:
        db.execute("DELETE FROM member_refs")
    else:
        db.execute("""DELETE FROM member_refs WHERE group_id IN (
            SELECT id FROM temp.stage WHERE origin IS NOT 'target'
            UNION ALL SELECT id FROM temp.stage_gone)""")
    db.execute("""INSERT INTO member_refs (group_id, kind, ref)
        SELECT s.id, r.kind, r.ref FROM temp.stage_refs r JOIN temp.stage s ON s.seq = r.seq
        WHERE s.origin IS NOT 'target'""")


def _mark_regrouped(db: sqlite_utils.Database) -> None:
    """Before a narrow delta is written: the principals whose direct members change (or
    that are gone), and every stored group that contains one of them, at any depth."""
    db.execute("DROP TABLE IF EXISTS temp.regrouped")
    db.execute("""CREATE TEMP TABLE regrouped AS
        SELECT s.id FROM temp.stage s LEFT JOIN principals p ON p.id = s.id
        WHERE s.origin IS NOT 'target' AND (p.id IS NULL OR p.members != s.members)
        UNION SELECT id FROM temp.stage_gone""")
    db.execute("""INSERT INTO temp.regrouped SELECT DISTINCT group_id FROM effective_members
        WHERE member_id IN (SELECT id FROM temp.regrouped)
          AND group_id NOT IN (SELECT id FROM temp.regrouped)""")


def _update_effective_members(db: sqlite_utils.Database) -> None:
    """After a narrow delta is written: the closure of the groups ``_mark_regrouped``
    found, computed again from the stored direct members; every other group's is as it was
    (none of its members, at any depth, changed)."""
    db.execute("""DELETE FROM effective_members WHERE group_id IN (SELECT id FROM temp.regrouped)
        OR member_id IN (SELECT id FROM temp.stage_gone)""")
    db.execute("""INSERT INTO effective_members (group_id, member_id)
        WITH RECURSIVE closure (g, m) AS (
            SELECT p.id, j.value FROM principals p, json_each(p.members) j
            WHERE p.id IN (SELECT id FROM temp.regrouped)
            UNION
            SELECT c.g, j.value FROM closure c JOIN principals p ON p.id = c.m, json_each(p.members) j)
        SELECT g, m FROM closure WHERE g != m""")
    db.execute("DROP TABLE temp.regrouped")


def _recompute_effective_members(db: sqlite_utils.Database, chained: bool = False) -> None:
    """Nested membership closure; UNION (not UNION ALL) makes it end on cycles. With
    ``chained``, the server's in-chain memberships are edges too: they can only add what a
    nested group outside every source contributes."""
    db.execute("DELETE FROM effective_members")
    db.execute("DROP TABLE IF EXISTS temp.edges")
    chain = " UNION SELECT group_id, member_id FROM temp.stage_chain" if chained else ""
    db.execute(f"""CREATE TEMP TABLE edges AS SELECT p.id AS g, j.value AS m
                  FROM principals p, json_each(p.members) j WHERE p.members != '[]'{chain}""")
    db.execute("CREATE INDEX temp.edges_g ON edges (g)")
    db.execute("""INSERT INTO effective_members (group_id, member_id)
        WITH RECURSIVE closure (g, m) AS (
            SELECT g, m FROM temp.edges
            UNION
            SELECT c.g, e.m FROM closure c JOIN temp.edges e ON e.g = c.m)
        SELECT g, m FROM closure WHERE g != m""")
    db.execute("DROP TABLE temp.edges")


@dataclass(frozen=True)
class Cursor:
    """Where a source's incremental reader goes on from next time."""

    reader: str
    fingerprint: str  # the source's search when it was read: another search starts over
    position: dict


def _store_cursors(db: sqlite_utils.Database, cursors: dict[str, Cursor]) -> None:
    db.execute("DELETE FROM sync_cursors")
    db.conn.executemany(
        "INSERT INTO sync_cursors (source, reader, fingerprint, position, updated_at) VALUES (?, ?, ?, ?, ?)",
        [(source, c.reader, c.fingerprint, json.dumps(c.position), utc_now())
         for source, c in sorted(cursors.items())])


def stored_cursors(db: sqlite_utils.Database) -> dict[str, Cursor]:
    rows = db.execute("SELECT source, reader, fingerprint, position FROM sync_cursors").fetchall()
    return {source: Cursor(reader, fingerprint, json.loads(position))
            for source, reader, fingerprint, position in rows}


def _insert_run(db: sqlite_utils.Database, run: dict) -> int:
    return db["sync_runs"].insert({
        "started_at": utc_now(run["started"]), "finished_at": utc_now(), "mode": run["mode"],
        "outcome": "ok", "seen": run["seen"], "skipped": run["skipped"],
        "warnings": run["warnings"], "detail": json.dumps(run.get("detail", {}))}).last_pk


def _finish_run(db: sqlite_utils.Database, run_id: int, run: dict, plan: Plan, modseq: int) -> None:
    db["sync_runs"].update(run_id, {
        "finished_at": utc_now(), "modseq": modseq, "duration": round(time.time() - run["started"], 3),
        **{kind: plan.total(kind) for kind in _KINDS}})
