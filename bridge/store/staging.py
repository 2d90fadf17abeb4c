"""The staging area of one run: temporary tables that take mapped entries as they stream in,
then resolve member references, fill ``members`` / ``member_of`` and hash every record.

A complete read stages every entry. A delta (what an incremental reader delivers: some
entries and some deletions) is completed from the store before resolving
(neighbourhood.py): narrowly, with the stored principals whose members or member_of it may
change, or widely, with every stored principal it neither replaced nor deleted. Either way
each staged row ends as a whole snapshot would have it, and the diff treats every stored
principal neither staged nor gone as unchanged, so full and incremental runs produce the
same store; a narrow delta costs what it touches, not what the store holds.

A deletion may be scoped to one source (it then never touches another source's entries),
and a source may instead name the entries still present (a present phase, or an
identifier enumeration): then only those of its stored principals are carried over.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from bridge.model import RECORD_FIELDS, MappedEntry
from bridge.store import neighbourhood
from bridge.store.records import COLUMNS, record_hash, to_row

BATCH = 2000
_FIELDS = ", ".join(RECORD_FIELDS)
_STAGE_COLUMNS = (*COLUMNS, "login_key")


@dataclass(frozen=True)
class Resolution:
    duplicates: tuple[str, ...]  # DNs dropped because an earlier source had the same id
    unresolved_members: int  # member values that name no principal
    ambiguous_members: int  # memberUid values that name several individuals (first id wins)
    principals: int = 0  # resolved: all of a complete read, what a narrow delta touches
    # (a narrow delta counts unresolved and ambiguous members of the groups it resolved)


def _casefold(text: str | None) -> str | None:
    """Logins compare like uid does, without regard to case (memberUid → login)."""
    return text.casefold() if text is not None else None


class Staging:
    """Temporary tables on the store's connection; ``close()`` drops them."""

    def __init__(self, db: sqlite_utils.Database, complete: bool) -> None:
        self._db = db
        self.complete = complete
        self.narrow = not complete  # a delta completed with only what it touches
        self._resolved = False
        self._rows: list[tuple] = []
        self._refs: list[tuple] = []
        self._deleted: list[tuple] = []
        self._present: list[tuple] = []
        self._present_sources: set[str] = set()
        self._seq = 0
        self.close()
        db.execute(f"CREATE TEMP TABLE stage (seq INTEGER PRIMARY KEY, {', '.join(_STAGE_COLUMNS)}, "
                   "hash TEXT, origin TEXT)")  # origin: NULL (read), or see neighbourhood.py
        db.execute("CREATE TEMP TABLE stage_refs (seq INTEGER, kind TEXT, ref TEXT)")
        db.execute("CREATE TEMP TABLE stage_deleted (seq INTEGER, id TEXT, source TEXT)")
        db.execute("CREATE TEMP TABLE stage_present (source TEXT, id TEXT, PRIMARY KEY (source, id)) "
                   "WITHOUT ROWID")
        db.conn.create_function("record_hash", len(RECORD_FIELDS), record_hash, deterministic=True)

    def add(self, mapped: MappedEntry) -> None:
        self._seq += 1
        row = to_row(mapped.principal)
        self._rows.append((self._seq, *(row[c] for c in COLUMNS), _casefold(row["login"])))
        self._refs.extend((self._seq, ref.kind, ref.value) for ref in mapped.member_refs)
        if len(self._rows) >= BATCH:
            self.flush()

    def delete(self, principal_id: str, source: str | None = None) -> None:
        """A deletion reported by an incremental reader (only in a delta); with ``source``
        it removes only that source's principal."""
        self._delta_only()
        self._seq += 1
        self._deleted.append((self._seq, principal_id, source))
        if len(self._deleted) >= BATCH:
            self.flush()

    def present(self, source: str, principal_ids: list[str]) -> None:
        """These principals of ``source`` are still there, unchanged or not; once a source
        names any (``only_present``), its stored principals not named are gone."""
        self._delta_only()
        self._present.extend((source, principal_id) for principal_id in principal_ids)
        if len(self._present) >= BATCH:
            self.flush()

    def only_present(self, source: str) -> None:
        """Carry over only the stored principals of ``source`` that were named present."""
        self._delta_only()
        self._present_sources.add(source)

    def _delta_only(self) -> None:
        if self.complete:
            raise ValueError("a complete snapshot has no deletions; absence is deletion")

    def flush(self) -> None:
        marks = ", ".join("?" * (len(_STAGE_COLUMNS) + 1))
        self._db.conn.executemany(f"INSERT INTO temp.stage (seq, {', '.join(_STAGE_COLUMNS)}) "
                                  f"VALUES ({marks})", self._rows)
        self._db.conn.executemany("INSERT INTO temp.stage_refs VALUES (?, ?, ?)", self._refs)
        self._db.conn.executemany("INSERT INTO temp.stage_deleted VALUES (?, ?, ?)", self._deleted)
        self._db.conn.executemany("INSERT OR IGNORE INTO temp.stage_present VALUES (?, ?)", self._present)
        self._rows.clear()
        self._refs.clear()
        self._deleted.clear()
        self._present.clear()

    def widen(self) -> None:
        """Complete this delta with the whole store rather than what it touches (before or
        after resolving: a resolved narrow completion is undone, to be resolved again)."""
        if not self.narrow:
            return
        self.narrow = False
        if self._resolved:
            for table in ("stage_edges", "stage_chain", "stage_gone", "stage_keys"):
                self._db.execute(f"DROP TABLE IF EXISTS temp.{table}")
            for index in ("stage_id", "stage_dn_key", "stage_login", "stage_refs_seq"):
                self._db.execute(f"DROP INDEX IF EXISTS temp.{index}")
            self._db.execute("DELETE FROM temp.stage WHERE origin IS NOT NULL")  # carried rows
            _drop_orphan_refs(self._db)
            self._db.execute("UPDATE temp.stage SET hash = NULL")  # hashed again, from scratch
            self._resolved = False

    def resolve(self) -> Resolution:
        self.flush()
        db = self._db
        duplicates = tuple(row[0] for row in db.execute(
            "SELECT dn FROM temp.stage WHERE seq NOT IN (SELECT min(seq) FROM temp.stage GROUP BY id) "
            "ORDER BY seq").fetchall())
        if duplicates:
            db.execute("DELETE FROM temp.stage WHERE seq NOT IN "
                       "(SELECT min(seq) FROM temp.stage GROUP BY id)")
            _drop_orphan_refs(db)
        self._resolved = True
        if not self.complete:
            self._complete_from_store()
        else:
            db.execute("CREATE UNIQUE INDEX temp.stage_id ON stage (id)")
        db.execute("CREATE INDEX temp.stage_dn_key ON stage (dn_key)")
        db.execute("CREATE INDEX temp.stage_login ON stage (login_key, id) WHERE type = 'individual'")
        db.execute("CREATE INDEX temp.stage_refs_seq ON stage_refs (seq)")
        self._resolve_edges()
        unresolved, ambiguous = db.execute(
            """SELECT count(*) FILTER (WHERE matches = 0), count(*) FILTER (WHERE matches > 1) FROM (
                 SELECT CASE r.kind
                   WHEN 'dn' THEN (SELECT count(*) FROM temp.stage m WHERE m.dn_key = r.ref)
                   ELSE (SELECT count(*) FROM temp.stage m
                         WHERE m.type = 'individual' AND m.login_key = r.ref) END AS matches
                 FROM temp.stage_refs r JOIN temp.stage g ON g.seq = r.seq)""").fetchone()
        # a target row's references were not read again: its members stay as stored
        db.execute("""UPDATE temp.stage SET members = (SELECT json_group_array(member_id) FROM
                (SELECT member_id FROM temp.stage_edges e WHERE e.group_id = stage.id ORDER BY member_id))
            WHERE origin IS NOT 'target'""")
        member_of = neighbourhood.NARROW_MEMBER_OF if self.narrow else """(SELECT json_group_array(group_id)
            FROM (SELECT group_id FROM temp.stage_edges e WHERE e.member_id = stage.id ORDER BY group_id))"""
        db.execute(f"UPDATE temp.stage SET member_of = {member_of}")
        # a row carried over from the store keeps its hash unless its memberships moved
        db.execute(f"""UPDATE temp.stage SET hash = record_hash({_FIELDS}) WHERE hash IS NULL
            OR NOT EXISTS (SELECT 1 FROM principals p WHERE p.id = stage.id
                           AND p.members = stage.members AND p.member_of = stage.member_of)""")
        staged = db.execute("SELECT count(*) FROM temp.stage").fetchone()[0]
        return Resolution(duplicates, unresolved, ambiguous, staged)

    def unresolved_member_refs(self) -> dict[str, list[str]]:
        """DN member references that name nothing staged (a member outside every source,
        perhaps a nested group), each with the ids of the groups listing it."""
        groups: dict[str, list[str]] = {}
        for ref, group_id in self._db.execute("""
                SELECT r.ref, g.id FROM temp.stage_refs r JOIN temp.stage g ON g.seq = r.seq
                WHERE r.kind = 'dn' AND NOT EXISTS (SELECT 1 FROM temp.stage m WHERE m.dn_key = r.ref)
                ORDER BY r.ref, g.id"""):
            groups.setdefault(ref, []).append(group_id)
        return groups

    def member_pairs(self, limit: int) -> list[tuple[str, str]]:
        """(group DN, member DN) of up to ``limit`` direct memberships given by DN, to probe
        the server with: synced members first, then members outside every source (their
        DN key stands for the DN). A narrow delta that stages none asks the store."""
        pairs = self._db.execute("""
            SELECT g.dn, coalesce(m.dn, r.ref) FROM temp.stage_refs r JOIN temp.stage g ON g.seq = r.seq
            LEFT JOIN temp.stage m ON m.dn_key = r.ref WHERE r.kind = 'dn' AND m.id IS NOT g.id
            ORDER BY m.id IS NULL, g.id, r.ref LIMIT ?""", [limit]).fetchall()
        if pairs or not self.narrow:
            return pairs
        return self._db.execute("""
            SELECT g.dn, m.dn FROM member_refs r JOIN principals g ON g.id = r.group_id
            JOIN principals m ON m.dn_key = r.ref WHERE r.kind = 'dn' AND m.id != g.id LIMIT ?""",
                                [limit]).fetchall() or self._db.execute("""
            SELECT g.dn, r.ref FROM member_refs r JOIN principals g ON g.id = r.group_id
            WHERE r.kind = 'dn' LIMIT ?""", [limit]).fetchall()

    def add_chain_edges(self, edges: list[tuple[str, str]]) -> None:
        """Effective memberships the server computed (in-chain): (group id, member id),
        kept where both are staged."""
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS stage_chain (group_id TEXT, member_id TEXT)")
        self._db.conn.executemany("""INSERT INTO temp.stage_chain SELECT ?1, ?2
            WHERE ?1 != ?2 AND EXISTS (SELECT 1 FROM temp.stage WHERE id = ?1)
            AND EXISTS (SELECT 1 FROM temp.stage WHERE id = ?2)""", edges)

    def _complete_from_store(self) -> None:
        """Turn a delta into a snapshot: drop staged entries a later deletion removed, mark
        the stored principals that are gone, and copy in the rest of the store (wide) or
        what the delta touches (narrow)."""
        db = self._db
        db.execute("DELETE FROM temp.stage WHERE EXISTS (SELECT 1 FROM temp.stage_deleted d "
                   "WHERE d.id = stage.id AND d.seq > stage.seq "
                   "AND (d.source IS NULL OR d.source = stage.source))")
        _drop_orphan_refs(db)
        db.execute("CREATE UNIQUE INDEX temp.stage_id ON stage (id)")
        neighbourhood.mark_gone(db, self._present_sources)
        columns = ", ".join(_STAGE_COLUMNS)
        if self.narrow:
            neighbourhood.carry_touched(db, columns)
        else:
            neighbourhood.carry_rest(db, columns)

    def _resolve_edges(self) -> None:
        """Direct memberships as (group, member) ids: DN references by DN key, memberUid by
        the login of an individual (case-insensitively, the first id if several match)."""
        self._db.execute("""CREATE TEMP TABLE stage_edges AS
            SELECT DISTINCT g.id AS group_id, m.id AS member_id
            FROM temp.stage_refs r JOIN temp.stage g ON g.seq = r.seq
            JOIN temp.stage m ON r.kind = 'dn' AND m.dn_key = r.ref
            WHERE g.id != m.id
            UNION
            SELECT g.id, (SELECT min(m.id) FROM temp.stage m
                          WHERE m.type = 'individual' AND m.login_key = r.ref)
            FROM temp.stage_refs r JOIN temp.stage g ON g.seq = r.seq
            WHERE r.kind = 'login' AND EXISTS (SELECT 1 FROM temp.stage m WHERE
                m.type = 'individual' AND m.login_key = r.ref AND m.id != g.id)""")
        self._db.execute("CREATE INDEX temp.stage_edges_group ON stage_edges (group_id, member_id)")
        self._db.execute("CREATE INDEX temp.stage_edges_member ON stage_edges (member_id, group_id)")

    def close(self) -> None:
        for table in ("stage", "stage_refs", "stage_deleted", "stage_present", "stage_edges",
                      "stage_chain", "stage_gone", "stage_keys"):
            self._db.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _drop_orphan_refs(db: sqlite_utils.Database) -> None:
    """The references of staged rows that were dropped (duplicates, later deletions)."""
    db.execute("DELETE FROM temp.stage_refs WHERE seq NOT IN (SELECT seq FROM temp.stage)")
