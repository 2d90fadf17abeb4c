"""A complete read of the directory, staged in temporary tables and then either planned
(diffed, nothing written) or applied to the store in ONE transaction.

Staging keeps memory flat however large the directory: entries go to SQLite in batches
as they stream in; member references are resolved, the content hash computed and the
diff taken by id and hash in SQL. Applying appends one change row per created, updated
or destroyed principal; an unchanged entry adds nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlite_utils

from bridge.model import RECORD_FIELDS, MappedEntry
from bridge.store import changes as log
from bridge.store.db import sql_errors, write_transaction
from bridge.store.records import COLUMNS, field_changes, record_hash, to_row

BATCH = 2000
_FIELDS = ", ".join(RECORD_FIELDS)
_JSON_VALUE = {"members": "json({t}.members)", "member_of": "json({t}.member_of)",
               "disabled": "json(CASE WHEN {t}.disabled THEN 'true' ELSE 'false' END)"}
_RECORD_JSON = "json_object(" + ", ".join(
    f"'{f}', " + _JSON_VALUE.get(f, "{t}." + f) for f in RECORD_FIELDS) + ")"


def _record_json(table: str) -> str:
    return _RECORD_JSON.replace("{t}", table)


@dataclass
class SourceDiff:
    previous: int = 0
    staged: int = 0
    created: int = 0
    updated: int = 0
    destroyed: int = 0


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
        return any(self.total(kind) for kind in ("created", "updated", "destroyed"))


@dataclass(frozen=True)
class Resolution:
    duplicates: tuple[str, ...]  # DNs dropped because an earlier source had the same id
    unresolved_members: int  # member values that name no staged principal


@dataclass(frozen=True)
class Applied:
    plan: Plan
    run_id: int
    modseq: int


class Snapshot:
    """Stage every principal of one full read, then ``plan()`` or ``apply()`` it."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        self._rows: list[tuple] = []
        self._refs: list[tuple] = []
        self._seq = 0
        self._resolved: Resolution | None = None
        with sql_errors("creating the staging tables"):
            self._create_tables()

    def _create_tables(self) -> None:
        self.close()
        self._db.execute(f"CREATE TEMP TABLE stage (seq INTEGER PRIMARY KEY, {', '.join(COLUMNS)}, "
                         "hash TEXT)")
        self._db.execute("CREATE TEMP TABLE stage_refs (seq INTEGER, kind TEXT, ref TEXT)")
        self._db.conn.create_function("record_hash", len(RECORD_FIELDS), record_hash,
                                      deterministic=True)

    def add(self, mapped: MappedEntry) -> None:
        """Stage one principal; the first one staged wins if an id repeats."""
        self._seq += 1
        row = to_row(mapped.principal)
        self._rows.append((self._seq, *(row[c] for c in COLUMNS)))
        self._refs.extend((self._seq, ref.kind, ref.value) for ref in mapped.member_refs)
        if len(self._rows) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        marks = ", ".join("?" * (len(COLUMNS) + 1))
        with sql_errors("staging entries"):
            self._db.conn.executemany(f"INSERT INTO temp.stage (seq, {', '.join(COLUMNS)}) "
                                      f"VALUES ({marks})", self._rows)
            self._db.conn.executemany("INSERT INTO temp.stage_refs VALUES (?, ?, ?)", self._refs)
        self._rows.clear()
        self._refs.clear()

    def resolve(self) -> Resolution:
        """Drop duplicate ids, resolve member references to ids, fill ``members`` and
        ``member_of``, hash every record. Idempotent."""
        if self._resolved is None:
            self._flush()
            with sql_errors("resolving the snapshot"):
                self._resolved = self._resolve()
        return self._resolved

    def _resolve(self) -> Resolution:
        db = self._db
        duplicates = tuple(row[0] for row in db.execute(
            "SELECT dn FROM temp.stage WHERE seq NOT IN (SELECT min(seq) FROM temp.stage GROUP BY id) "
            "ORDER BY seq").fetchall())
        if duplicates:
            db.execute("DELETE FROM temp.stage WHERE seq NOT IN "
                       "(SELECT min(seq) FROM temp.stage GROUP BY id)")
        db.execute("CREATE UNIQUE INDEX temp.stage_id ON stage (id)")
        db.execute("CREATE INDEX temp.stage_dn_key ON stage (dn_key)")
        # memberUid compares like uid itself: without regard to (ASCII) case
        db.execute("CREATE INDEX temp.stage_login ON stage (login COLLATE NOCASE, id) "
                   "WHERE type = 'individual'")
        db.execute("CREATE INDEX temp.stage_refs_seq ON stage_refs (seq)")
        db.execute("""CREATE TEMP TABLE stage_edges AS
            SELECT DISTINCT g.id AS group_id, m.id AS member_id
            FROM temp.stage_refs r JOIN temp.stage g ON g.seq = r.seq
            JOIN temp.stage m ON r.kind = 'dn' AND m.dn_key = r.ref
            WHERE g.id != m.id
            UNION
            SELECT g.id, (SELECT min(m.id) FROM temp.stage m
                          WHERE m.type = 'individual' AND m.login = r.ref COLLATE NOCASE)
            FROM temp.stage_refs r JOIN temp.stage g ON g.seq = r.seq
            WHERE r.kind = 'login' AND EXISTS (SELECT 1 FROM temp.stage m WHERE
                m.type = 'individual' AND m.login = r.ref COLLATE NOCASE AND m.id != g.id)""")
        db.execute("CREATE INDEX temp.stage_edges_group ON stage_edges (group_id, member_id)")
        db.execute("CREATE INDEX temp.stage_edges_member ON stage_edges (member_id, group_id)")
        unresolved = db.execute(
            """SELECT count(*) FROM temp.stage_refs r JOIN temp.stage g ON g.seq = r.seq
               WHERE NOT EXISTS (SELECT 1 FROM temp.stage m WHERE
                   (r.kind = 'dn' AND m.dn_key = r.ref) OR
                   (r.kind = 'login' AND m.type = 'individual' AND m.login = r.ref COLLATE NOCASE))
            """).fetchone()[0]
        db.execute("""UPDATE temp.stage SET
            members = (SELECT json_group_array(member_id) FROM
                (SELECT member_id FROM temp.stage_edges e WHERE e.group_id = stage.id ORDER BY member_id)),
            member_of = (SELECT json_group_array(group_id) FROM
                (SELECT group_id FROM temp.stage_edges e WHERE e.member_id = stage.id ORDER BY group_id))""")
        db.execute(f"UPDATE temp.stage SET hash = record_hash({_FIELDS})")
        return Resolution(duplicates, unresolved)

    def plan(self, samples: int = 10) -> Plan:
        """The diff against the store, with up to ``samples`` examples per kind."""
        self.resolve()
        with sql_errors("computing the diff"):
            return self._plan(samples)

    def _plan(self, samples: int) -> Plan:
        db = self._db
        plan = Plan()

        def count(sql: str, attribute: str) -> None:
            for source, number in db.execute(sql).fetchall():
                setattr(plan.sources.setdefault(source, SourceDiff()), attribute, number)

        count("SELECT source, count(*) FROM principals GROUP BY source", "previous")
        count("SELECT source, count(*) FROM temp.stage GROUP BY source", "staged")
        count(f"SELECT s.source, count(*) {_CREATED} GROUP BY s.source", "created")
        count(f"SELECT s.source, count(*) {_UPDATED} GROUP BY s.source", "updated")
        count(f"SELECT p.source, count(*) {_DESTROYED} GROUP BY p.source", "destroyed")
        plan.samples = {
            "created": [Sample("created", *row) for row in db.execute(
                f"SELECT s.id, s.dn, s.source {_CREATED} ORDER BY s.id LIMIT ?", [samples])],
            "updated": [Sample("updated", new["id"], new["dn"], new["source"],
                               tuple(field_changes(old, new)))
                        for old, new in self._updated_pairs(samples)],
            "destroyed": [Sample("destroyed", *row) for row in db.execute(
                f"SELECT p.id, p.dn, p.source {_DESTROYED} ORDER BY p.id LIMIT ?", [samples])],
        }
        return plan

    def _updated_pairs(self, limit: int = -1) -> list[tuple[dict, dict]]:
        select = ", ".join([f"p.{c}" for c in COLUMNS] + [f"s.{c}" for c in COLUMNS])
        rows = self._db.execute(f"SELECT {select} {_UPDATED} ORDER BY s.id LIMIT ?", [limit])
        width = len(COLUMNS)
        return [(dict(zip(COLUMNS, row[:width], strict=True)), dict(zip(COLUMNS, row[width:], strict=True)))
                for row in rows.fetchall()]

    def apply(self, check: Callable[[Plan], None], run: dict, prune_before: str = "") -> Applied:
        """In one transaction: diff, let ``check`` veto (by raising), write the principals
        and their change rows, the membership closure, retention, and the run record.

        ``run`` holds the run's ``started`` (epoch seconds), ``mode``, ``seen``,
        ``skipped``, ``warnings`` and ``detail``; the store adds the counts."""
        self.resolve()
        with sql_errors("applying the snapshot"), write_transaction(self._db):
            plan = self._plan(samples=10)
            check(plan)
            run_id = _insert_run(self._db, run)
            if plan.changed:
                self._write_changes(run_id)
                _recompute_effective_members(self._db)
            modseq = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
            modseq = modseq[0] if modseq else 0
            if plan.changed:
                log.set_modseq(self._db, log.PRINCIPAL, modseq)
            if prune_before:
                log.prune(self._db, prune_before)
            _finish_run(self._db, run_id, run, plan, log.current_modseq(self._db))
        return Applied(plan, run_id, log.current_modseq(self._db))

    def _write_changes(self, run_id: int) -> None:
        db, now = self._db, utc_now()
        db.execute(f"""INSERT INTO changes (type, record_id, kind, run_id, at, dn_key, detail)
            SELECT 'Principal', s.id, 'created', ?, ?, s.dn_key, {_record_json('s')}
            {_CREATED} ORDER BY s.id""", [run_id, now])
        db.execute(f"""INSERT INTO principals ({', '.join(COLUMNS)}, hash, modseq)
            SELECT {', '.join('s.' + c for c in COLUMNS)}, s.hash, c.modseq
            FROM temp.stage s JOIN changes c ON c.record_id = s.id AND c.run_id = ?
            WHERE c.kind = 'created'""", [run_id])
        db.conn.executemany(
            "INSERT INTO changes (type, record_id, kind, run_id, at, dn_key, detail) "
            "VALUES ('Principal', ?, 'updated', ?, ?, ?, ?)",
            [(new["id"], run_id, now, new["dn_key"], json.dumps(field_changes(old, new)))
             for old, new in self._updated_pairs()])
        assignments = ", ".join(f"{c} = s.{c}" for c in (*RECORD_FIELDS, "hash"))
        db.execute(f"""UPDATE principals SET {assignments}, modseq = c.modseq
            FROM temp.stage s JOIN changes c ON c.record_id = s.id AND c.run_id = ?
            WHERE s.id = principals.id AND c.kind = 'updated'""", [run_id])
        db.execute(f"""INSERT INTO changes (type, record_id, kind, run_id, at, dn_key, detail)
            SELECT 'Principal', p.id, 'destroyed', ?, ?, p.dn_key, {_record_json('p')}
            {_DESTROYED} ORDER BY p.id""", [run_id, now])
        db.execute("DELETE FROM principals WHERE id NOT IN (SELECT id FROM temp.stage)")

    def close(self) -> None:
        for table in ("stage", "stage_refs", "stage_edges"):
            self._db.execute(f"DROP TABLE IF EXISTS temp.{table}")


_CREATED = "FROM temp.stage s LEFT JOIN principals p ON p.id = s.id WHERE p.id IS NULL"
_UPDATED = "FROM temp.stage s JOIN principals p ON p.id = s.id WHERE p.hash != s.hash"
_DESTROYED = "FROM principals p LEFT JOIN temp.stage s ON s.id = p.id WHERE s.id IS NULL"


def utc_now(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _insert_run(db: sqlite_utils.Database, run: dict) -> int:
    cursor = db.execute(
        "INSERT INTO sync_runs (started_at, finished_at, mode, outcome, seen, skipped, warnings, "
        "detail) VALUES (?, ?, ?, 'ok', ?, ?, ?, ?)",
        [utc_now(run["started"]), utc_now(), run["mode"], run["seen"], run["skipped"],
         run["warnings"], json.dumps(run.get("detail", {}))])
    return cursor.lastrowid


def _finish_run(db: sqlite_utils.Database, run_id: int, run: dict, plan: Plan, modseq: int) -> None:
    db.execute("UPDATE sync_runs SET finished_at = ?, created = ?, updated = ?, destroyed = ?, "
               "modseq = ?, duration = ? WHERE id = ?",
               [utc_now(), plan.total("created"), plan.total("updated"), plan.total("destroyed"),
                modseq, round(time.time() - run["started"], 3), run_id])


def _recompute_effective_members(db: sqlite_utils.Database) -> None:
    """Nested membership closure; UNION (not UNION ALL) makes it end on cycles."""
    db.execute("DELETE FROM effective_members")
    db.execute("DROP TABLE IF EXISTS temp.edges")
    db.execute("""CREATE TEMP TABLE edges AS SELECT p.id AS g, j.value AS m
                  FROM principals p, json_each(p.members) j WHERE p.members != '[]'""")
    db.execute("CREATE INDEX temp.edges_g ON edges (g)")
    db.execute("""INSERT INTO effective_members (group_id, member_id)
        WITH RECURSIVE closure (g, m) AS (
            SELECT g, m FROM temp.edges
            UNION
            SELECT c.g, e.m FROM closure c JOIN temp.edges e ON e.g = c.m)
        SELECT g, m FROM closure WHERE g != m""")
    db.execute("DROP TABLE temp.edges")
