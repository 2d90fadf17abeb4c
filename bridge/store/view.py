"""What clients see of each principal: the directory record with the user's own edits laid
over it (``overrides``), materialised in ``principal_view`` with casefolded text for the
trigram index (``principal_text``, FTS5) and collation keys for sorting; and the SQL that
answers Principal/query from it.
"""

from __future__ import annotations

import json
from typing import Any

from bridge.query import AccountIn, Contains, Equals, Filter, IdIn, Operator, SortKey

#: principal fields a user may override (record field names)
OVERRIDABLE = ("name", "description", "time_zone")
_VIEW_COLUMNS = ("id", "type", "name", "description", "email", "time_zone", "login", "disabled",
                 "name_key", "email_key", "name_fold", "email_fold", "description_fold", "text_fold",
                 "login_fold")
#: separates name, email and description in text_fold; a needle without it cannot match
#: across two fields, so one indexed column answers the `text` filter
TEXT_SEPARATOR = "\x1f"

SCHEMA = """
CREATE TABLE overrides (
    principal_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (principal_id, field)
) WITHOUT ROWID;

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    field TEXT NOT NULL,
    old TEXT,
    new TEXT,
    remote TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_principal ON audit_log (principal_id, id);

CREATE TABLE principal_view (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    email TEXT,
    time_zone TEXT,
    login TEXT,
    disabled INTEGER NOT NULL,
    name_key TEXT NOT NULL,
    email_key TEXT,
    name_fold TEXT NOT NULL,
    email_fold TEXT,
    description_fold TEXT,
    text_fold TEXT NOT NULL,
    login_fold TEXT
);
CREATE INDEX principal_view_login_fold ON principal_view (login_fold);
CREATE INDEX principal_view_name ON principal_view (name_key, id);
CREATE INDEX principal_view_email ON principal_view (email_key, id);
CREATE INDEX principal_view_type ON principal_view (type, id);
CREATE INDEX principal_view_login ON principal_view (login);

CREATE VIRTUAL TABLE principal_text USING fts5 (
    name_fold, email_fold, text_fold,
    content = 'principal_view', content_rowid = 'num',
    tokenize = 'trigram case_sensitive 1', detail = 'none'
);
CREATE TRIGGER principal_view_insert AFTER INSERT ON principal_view BEGIN
    INSERT INTO principal_text (rowid, name_fold, email_fold, text_fold)
    VALUES (new.num, new.name_fold, new.email_fold, new.text_fold);
END;
CREATE TRIGGER principal_view_delete AFTER DELETE ON principal_view BEGIN
    INSERT INTO principal_text (principal_text, rowid, name_fold, email_fold, text_fold)
    VALUES ('delete', old.num, old.name_fold, old.email_fold, old.text_fold);
END;
CREATE TRIGGER principal_view_update AFTER UPDATE ON principal_view BEGIN
    INSERT INTO principal_text (principal_text, rowid, name_fold, email_fold, text_fold)
    VALUES ('delete', old.num, old.name_fold, old.email_fold, old.text_fold);
    INSERT INTO principal_text (rowid, name_fold, email_fold, text_fold)
    VALUES (new.num, new.name_fold, new.email_fold, new.text_fold);
END;
"""


def _effective(field: str) -> str:
    return (f"CASE WHEN o_{field}.field IS NULL THEN p.{field} ELSE o_{field}.value END")


_EFFECTIVE = f"""
    SELECT p.id, p.type, {_effective('name')} AS name, {_effective('description')} AS description,
           p.email, {_effective('time_zone')} AS time_zone, p.login, p.disabled
    FROM principals p
    {' '.join(f"LEFT JOIN overrides o_{f} ON o_{f}.principal_id = p.id AND o_{f}.field = '{f}'"
              for f in OVERRIDABLE)}"""


def refresh(db: Any, where: str = "", params: list | tuple = (), drop_gone: bool = True) -> None:
    """Rewrite the view rows of the principals selected by ``where`` (SQL on ``p``, the
    principals table; empty: all), and (``drop_gone``) drop rows of principals that are
    gone."""
    assignments = ", ".join(f"{c} = excluded.{c}" for c in _VIEW_COLUMNS[1:])
    # a row that comes out the same is left alone: its full-text entry is not rewritten
    # (most principals a run touches changed only their memberships, which are not here)
    changed = " OR ".join(f"principal_view.{c} IS NOT excluded.{c}" for c in _VIEW_COLUMNS[1:])
    db.execute(f"""INSERT INTO principal_view ({', '.join(_VIEW_COLUMNS)})
        SELECT e.id, e.type, e.name, e.description, e.email, e.time_zone, e.login, e.disabled,
               casemap_key(e.name), casemap_key(e.email),
               casefold(e.name), casefold(e.email), casefold(e.description),
               casefold(e.name) || char(31) || coalesce(casefold(e.email), '') || char(31)
                   || coalesce(casefold(e.description), ''),
               casefold(e.login)
        FROM ({_EFFECTIVE} {'WHERE ' + where if where else ''}) e
        WHERE true
        ON CONFLICT (id) DO UPDATE SET {assignments} WHERE {changed}""", list(params))
    if drop_gone:
        db.execute("DELETE FROM principal_view WHERE id NOT IN (SELECT id FROM principals)")


def drop(db: Any, ids_sql: str, params: list | tuple = ()) -> None:
    """Drop the view rows of the principals ``ids_sql`` selects (ids that are gone)."""
    db.execute(f"DELETE FROM principal_view WHERE id IN ({ids_sql})", list(params))


def overrides_of(db: Any, ids: list[str]) -> dict[str, dict[str, str | None]]:
    found: dict[str, dict[str, str | None]] = {pid: {} for pid in ids}
    rows = db.execute("SELECT principal_id, field, value FROM overrides WHERE principal_id IN "
                      "(SELECT value FROM json_each(?))", [json.dumps(ids)]).fetchall()
    for principal_id, field, value in rows:
        found[principal_id][field] = value
    return found


# -- Principal/query in SQL -----------------------------------------------------------------

_GLOB_SPECIALS = str.maketrans({"*": "[*]", "?": "[?]", "[": "[[]"})
_SORT_COLUMNS = {
    ("name", "i;unicode-casemap"): "v.name_key", ("name", "i;ascii-casemap"): "upper(v.name)",
    ("name", "i;octet"): "v.name",
    ("email", "i;unicode-casemap"): "v.email_key", ("email", "i;ascii-casemap"): "upper(v.email)",
    ("email", "i;octet"): "v.email",
}


def where_sql(condition: Filter | None, params: list, indexed: bool = True) -> str:
    """SQL over ``principal_view v`` that is true exactly where query.matches is; every
    atom is 0 or 1, never NULL, so NOT agrees with Python's ``not``. ``indexed=False``
    tests text conditions row by row instead of asking the trigram index."""
    match condition:
        case None:
            return "1"
        case Contains(field, value):
            return _contains(field, value, params, indexed)
        case Equals(field, value):
            params.append(value)
            return f"v.{field} IS ?"  # IS: a null column is false, not NULL
        case IdIn(ids):
            params.append(json.dumps(sorted(ids)))
            return "v.id IN (SELECT value FROM json_each(?))"
        case AccountIn(template, account_ids, owner):
            own = ""
            if owner is not None:
                params.append(owner)
                own = "v.id = ? AND "
            params.extend([template, json.dumps(sorted(account_ids))])
            return (f"({own}coalesce(account_id(?, v.id, v.login) IN "
                    "(SELECT value FROM json_each(?)), 0))")
        case Operator("OR", conditions) if indexed and conditions and all(_indexed(c) for c in conditions):
            # one IN over a UNION of index lookups; "IN (...) OR IN (...)" scans every row
            subqueries = [_trigram_subquery(c, params) for c in conditions]
            return f"v.num IN ({' UNION '.join(subqueries)})"
        case Operator(op, conditions):
            parts = [where_sql(c, params, indexed) for c in conditions]
            if op == "AND":
                return "(" + (" AND ".join(parts) or "1") + ")"
            either = "(" + (" OR ".join(parts) or "0") + ")"
            return either if op == "OR" else f"(NOT {either})"
    raise ValueError(f"not a filter: {condition!r}")


def _columns(field: str, value: str) -> tuple[str, ...]:
    if field == "text" and TEXT_SEPARATOR in value:  # could span two fields in text_fold
        return ("name_fold", "email_fold", "description_fold")
    return ({"name": "name_fold", "email": "email_fold", "text": "text_fold"}[field],)


def _indexed(condition: Filter) -> bool:
    """A text condition the trigram index answers: three characters or more, one column."""
    return isinstance(condition, Contains) and len(condition.value) >= 3 \
        and len(_columns(condition.field, condition.value)) == 1


def _trigram_subquery(condition: Contains, params: list) -> str:
    params.append("*" + condition.value.translate(_GLOB_SPECIALS) + "*")
    column = _columns(condition.field, condition.value)[0]
    return f"SELECT rowid FROM principal_text WHERE {column} GLOB ?"


def _contains(field: str, value: str, params: list, indexed: bool = True) -> str:
    if indexed and _indexed(Contains(field, value)):
        return f"v.num IN ({_trigram_subquery(Contains(field, value), params)})"
    columns = _columns(field, value)
    params.extend([value] * len(columns))
    return "(" + " OR ".join(f"coalesce(instr(v.{c}, ?) > 0, 0)" for c in columns) + ")"


_NULLABLE = {"email"}


def order_sql(keys: tuple[SortKey, ...]) -> str:
    """ORDER BY terms in query.sort's order: nulls after values ascending, id last."""
    terms = []
    for key in keys:
        column = _SORT_COLUMNS.get((key.field, key.collation), f"v.{key.field}")
        direction = "ASC" if key.ascending else "DESC"
        if key.field in _NULLABLE:
            terms.append(f"({column} IS NULL) {direction}")
        terms.append(f"{column} {direction}")
    return ", ".join([*terms, "v.id ASC"])


#: a first page is looked for among the first rows in sort order before the trigram index
#: is asked for every match: a common name matches thousands of rows, which the index
#: returns unordered, while its first matches in order are near the top
PROBE_ROWS = 2000
PROBE_PAGE = 200


def query_ids(db: Any, condition: Filter | None, keys: tuple[SortKey, ...], visible: str,
              offset: int = 0, limit: int | None = None) -> list[str]:
    if limit is not None and offset + limit <= PROBE_PAGE and keys in _INDEX_ORDERS \
            and _uses_text_index(condition):
        found = _probe(db, condition, keys, visible, offset + limit)
        if found is not None:
            return found[offset:]
    params: list = []
    where = where_sql(condition, params)
    sql = f"SELECT v.id FROM principal_view v WHERE {visible} AND {where} ORDER BY {order_sql(keys)}"
    if limit is not None or offset:
        sql += " LIMIT ? OFFSET ?"
        params += [-1 if limit is None else limit, offset]
    return [row[0] for row in db.execute(sql, params).fetchall()]


def _probe(db: Any, condition: Filter | None, keys: tuple[SortKey, ...], visible: str,
           wanted: int) -> list[str] | None:
    """The first ``wanted`` matches in order if they lie within the first PROBE_ROWS rows
    in that order (then no row before them was left out), else None. The scan walks the
    order's index and stops at the last match wanted."""
    columns = _INDEX_ORDERS[keys]
    order = order_sql(keys)
    bound = db.execute(f"SELECT {', '.join(columns)} FROM principal_view v ORDER BY {order} "
                       "LIMIT 1 OFFSET ?", [PROBE_ROWS - 1]).fetchone()
    params: list = [*bound] if bound else []
    within = f"({', '.join(columns)}) <= ({', '.join('?' * len(columns))}) AND " if bound else ""
    where = where_sql(condition, params, indexed=False)
    ids = [row[0] for row in db.execute(
        f"SELECT v.id FROM principal_view v WHERE {within}{visible} AND {where} ORDER BY {order} LIMIT ?",
        [*params, wanted]).fetchall()]
    return ids if len(ids) == wanted or bound is None else None


#: the orders an index of principal_view gives, with the columns it is ordered by
_INDEX_ORDERS = {(): ("v.id",), (SortKey("name", True, "i;unicode-casemap"),): ("v.name_key", "v.id")}


def _uses_text_index(condition: Filter | None) -> bool:
    if isinstance(condition, Contains):
        return _indexed(condition)
    if isinstance(condition, Operator):
        return any(_uses_text_index(c) for c in condition.conditions)
    return False


def count(db: Any, condition: Filter | None, visible: str) -> int:
    params: list = []
    where = where_sql(condition, params)
    return db.execute(f"SELECT count(*) FROM principal_view v WHERE {visible} AND {where}",
                      params).fetchone()[0]
