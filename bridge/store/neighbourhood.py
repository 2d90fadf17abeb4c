"""What completes a delta into a snapshot: the stored principals it removes (``stage_gone``)
and the stored principals it touches, copied into the staging area beside it.

A delta (some entries read again, some deletions) changes more than its own rows: a group
that lists a renamed or deleted entry gets other members, and an entry that joins or
leaves a group gets another ``member_of``. Narrow completion copies in exactly those:

- ``group`` rows: stored groups whose member references name a key (DN key or login) that
  a staged or removed principal has or had; they are resolved again, so they come with
  their stored references;
- ``target`` rows: stored principals that a staged group's references name (so that every
  reference resolves as it would against the whole directory), and the stored members of
  staged or removed groups (their ``member_of`` may lose a group). Their own references
  are not read again: their ``members`` stay as stored.

Every other stored principal keeps its row, members and member_of, so the diff that
follows need only look at the staging area and ``stage_gone``. Wide completion copies
the whole store instead (every row a ``group``), for when memberships must be resolved
over everything (the server's in-chain rule over nested groups outside every source).
"""

from __future__ import annotations

import json

import sqlite_utils

from bridge.store.records import COLUMNS

_STORED = ", ".join("p." + c for c in COLUMNS) + ", casefold(p.login)"
_SCOPED = "(d.source IS NULL OR d.source = p.source)"
_NOT_STAGED = "p.id NOT IN (SELECT id FROM temp.stage) AND p.id NOT IN (SELECT id FROM temp.stage_gone)"


def mark_gone(db: sqlite_utils.Database, present_sources: set[str]) -> None:
    """``stage_gone``: stored principals that a deletion removed, or that a source naming
    its present entries did not name (and that were not staged again)."""
    db.execute("CREATE TEMP TABLE stage_gone (id TEXT PRIMARY KEY) WITHOUT ROWID")
    db.execute(f"""INSERT OR IGNORE INTO temp.stage_gone
        SELECT p.id FROM temp.stage_deleted d JOIN principals p ON p.id = d.id AND {_SCOPED}
        WHERE p.id NOT IN (SELECT id FROM temp.stage)""")
    db.execute("""INSERT OR IGNORE INTO temp.stage_gone
        SELECT p.id FROM principals p WHERE p.source IN (SELECT value FROM json_each(?))
          AND p.id NOT IN (SELECT id FROM temp.stage)
          AND NOT EXISTS (SELECT 1 FROM temp.stage_present s WHERE s.source = p.source AND s.id = p.id)""",
               [json.dumps(sorted(present_sources))])


def carry_rest(db: sqlite_utils.Database, columns: str) -> None:
    """Wide completion: every stored principal neither staged nor gone, with its references."""
    _carry(db, columns, "group", "true")


def carry_touched(db: sqlite_utils.Database, columns: str) -> None:
    """Narrow completion: the groups whose references may resolve differently now, then
    the principals whose membership may change (see the module docstring)."""
    db.execute("CREATE TEMP TABLE stage_keys (kind TEXT, ref TEXT, PRIMARY KEY (kind, ref)) WITHOUT ROWID")
    changed = "(SELECT id FROM temp.stage UNION ALL SELECT id FROM temp.stage_gone)"
    # a staged entry's keys, where they are new: a group naming an entry by the same key
    # as before resolves as before
    db.execute("""INSERT OR IGNORE INTO temp.stage_keys
        SELECT 'dn', s.dn_key FROM temp.stage s
        WHERE NOT EXISTS (SELECT 1 FROM principals p WHERE p.id = s.id AND p.dn_key = s.dn_key)
        UNION ALL SELECT 'login', s.login_key FROM temp.stage s
        WHERE s.type = 'individual' AND s.login_key IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM principals p WHERE p.id = s.id AND p.type = 'individual'
                          AND casefold(p.login) = s.login_key)""")
    # and the keys they had, where those are gone
    db.execute(f"""INSERT OR IGNORE INTO temp.stage_keys
        SELECT 'dn', p.dn_key FROM principals p WHERE p.id IN {changed}
        AND NOT EXISTS (SELECT 1 FROM temp.stage s WHERE s.id = p.id AND s.dn_key = p.dn_key)
        UNION ALL SELECT 'login', casefold(p.login) FROM principals p
        WHERE p.id IN {changed} AND p.type = 'individual' AND p.login IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM temp.stage s WHERE s.id = p.id AND s.type = 'individual'
                          AND s.login_key = casefold(p.login))""")
    _carry(db, columns, "group", """p.id IN (SELECT r.group_id FROM temp.stage_keys k
        CROSS JOIN member_refs r ON r.ref = k.ref AND r.kind = k.kind)""")
    # every reference of a staged group resolves against staged rows only, so what they
    # name comes in; so do the old members of changed groups, whose member_of may shrink
    _carry(db, columns, "target", "p.dn_key IN (SELECT ref FROM temp.stage_refs WHERE kind = 'dn')")
    _carry(db, columns, "target", """p.type = 'individual' AND p.id IN (
        SELECT v.id FROM principal_view v
        WHERE v.login_fold IN (SELECT ref FROM temp.stage_refs WHERE kind = 'login'))""")
    _carry(db, columns, "target", """p.id IN (SELECT j.value FROM principals g, json_each(g.members) j
        WHERE g.id IN (SELECT id FROM temp.stage WHERE origin IS NOT 'target'
                       UNION ALL SELECT id FROM temp.stage_gone))""")


def _carry(db: sqlite_utils.Database, columns: str, origin: str, where: str) -> None:
    last_seq = db.execute("SELECT coalesce(max(seq), 0) FROM temp.stage").fetchone()[0]
    db.execute(f"""INSERT INTO temp.stage ({columns}, hash, origin)
        SELECT {_STORED}, p.hash, ? FROM principals p WHERE {where} AND {_NOT_STAGED}""", [origin])
    if origin == "group":
        db.execute("""INSERT INTO temp.stage_refs (seq, kind, ref)
            SELECT s.seq, r.kind, r.ref FROM member_refs r JOIN temp.stage s ON s.id = r.group_id
            WHERE s.seq > ?""", [last_seq])


#: member_of of a staged row in a narrow snapshot: the staged groups that list it now, and
#: the stored groups that listed it and are neither resolved again nor gone
NARROW_MEMBER_OF = """(SELECT json_group_array(group_id) FROM (
    SELECT group_id FROM temp.stage_edges e WHERE e.member_id = stage.id
    UNION
    SELECT j.value FROM principals p, json_each(p.member_of) j
    WHERE p.id = stage.id
      AND j.value NOT IN (SELECT id FROM temp.stage WHERE origin IS NOT 'target')
      AND j.value NOT IN (SELECT id FROM temp.stage_gone)
    ORDER BY 1))"""
