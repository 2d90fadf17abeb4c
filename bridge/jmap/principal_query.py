"""Principal/query and Principal/queryChanges (RFC 8620 §5.5-5.6, RFC 9670 §2.3).

Filters: the six FilterCondition keys with AND/OR/NOT; a key the spec does not define is
``unsupportedFilter``, a value of the wrong type ``invalidArguments``. Sorts: name, email,
type and id under i;unicode-casemap (default), i;ascii-casemap or i;octet, ties by id.

/queryChanges works for any filter and sort: the log says which principals changed since
the old state, the store rebuilds each as it was then, and each changed principal that
matched then is removed and each that matches now is added at its new index, unless it
kept both its match and its sort position. Every other result kept its relative order,
so applying ``removed`` then ``added`` to the old result gives the new one.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from bridge import query
from bridge.jmap import paging
from bridge.jmap.args import Args, FilterSize
from bridge.jmap.core import PRINCIPALS, Context
from bridge.jmap.errors import MethodError, invalid_arguments
from bridge.jmap.query_cache import Answer
from bridge.query import AccountIn, Contains, Equals, Filter, Operator, SortKey

FILTER_KEYS = {"accountIds", "email", "name", "text", "type", "timeZone"}
SORT_PROPERTIES = set(query.SORT_FIELDS)


def principal_query(raw: Any, context: Context) -> dict:
    args = Args(raw, paging.QUERY_ARGUMENTS)
    account_id = args.id("accountId")
    context.check_account(account_id, PRINCIPALS)
    raw_filter, raw_sort = args.object("filter"), args.list("sort")
    condition, keys = parse_filter(raw_filter, context), parse_sort(raw_sort)
    wanted = paging.window_arguments(args)
    if wanted.anchor is None and wanted.anchor_offset:
        wanted = dataclasses.replace(wanted, anchor_offset=0)  # ignored without an anchor
    # the state names the settings that shape answers; the filter names the caller where
    # an answer depends on them (accountIds)
    cache, state = context.query_cache, context.state()
    answer = cache.get((state, condition, keys, wanted)) if cache is not None else None
    if answer is None:
        with context.store.reading():
            state = context.state()  # this snapshot's: a sync may have committed meanwhile
            answer = _answer(condition, keys, wanted, context)
        if cache is not None:  # a key is as big as the filter and sort it holds
            cache.put((state, condition, keys, wanted), answer,
                      key_size=len(json.dumps([raw_filter, raw_sort], ensure_ascii=False)))
    response = {"accountId": account_id, "queryState": state, "canCalculateChanges": True,
                "position": answer.position, "ids": list(answer.ids)}
    if wanted.calculate_total:
        response["total"] = answer.total
    return response


def _answer(condition: Filter | None, keys: tuple[SortKey, ...], wanted: paging.Window,
            context: Context) -> Answer:
    """The window of the result, and its total when asked or needed for the window."""
    store, everyone = context.store, context.settings.jmap.show_disabled
    position, anchor, limit = wanted.position, wanted.anchor, wanted.limit
    total = None
    if anchor is not None or (wanted.calculate_total and condition is not None):
        # the whole result is needed anyway (anchor), or is cheaper than counting by a
        # second evaluation of the filter
        ids = store.query(condition, keys, everyone)
        total = len(ids)
        start, page = paging.window(ids, position, anchor, wanted.anchor_offset, limit)
    else:
        if position < 0 or wanted.calculate_total:
            total = store.count(condition, everyone)
        start = max(0, total + position) if position < 0 else position
        page = store.query(condition, keys, everyone, offset=start, limit=limit)
    return Answer(start, tuple(page), total)


def principal_query_changes(raw: Any, context: Context) -> dict:
    args = Args(raw, paging.QUERY_CHANGES_ARGUMENTS)
    account_id = args.id("accountId")
    context.check_account(account_id, PRINCIPALS)
    condition = parse_filter(args.object("filter"), context)
    keys = parse_sort(args.list("sort"))
    since_args = paging.since_arguments(args)
    since_state, max_changes = since_args.query_state, since_args.max_changes
    up_to_id, calculate_total = since_args.up_to_id, since_args.calculate_total
    store, everyone = context.store, context.settings.jmap.show_disabled
    since = context.parse_state(since_state)
    with store.reading():
        state = context.state()
        new_ids = store.query(condition, keys, everyone)
        changed = store.changed_since(since) if since is not None else None
        if changed is None:
            raise MethodError("cannotCalculateChanges", "that query state is too old, from "
                              "another database or from other settings; run the query again")
        if len(changed) > context.settings.jmap.max_changes:
            raise MethodError("cannotCalculateChanges", f"{len(changed)} principals changed since "
                              "then; run the query again")
        before = store.states_at(changed, since)
        after = store.views(changed)
    index = {pid: n for n, pid in enumerate(new_ids)}
    removed, added = [], []
    for pid in changed:
        was = context.visible(before[pid]) and query.matches(condition, before[pid])
        now = pid in index
        if was and now and query.sort_position(before[pid], keys) == query.sort_position(after[pid], keys):
            continue  # same place among the unchanged results: nothing to tell
        if was:
            removed.append(pid)
        if now:
            added.append((index[pid], pid))
    added.sort()
    if up_to_id is not None and up_to_id in index and up_to_id not in changed:
        added = [(n, pid) for n, pid in added if n <= index[up_to_id]]
    if max_changes is not None and len(removed) + len(added) > max_changes:
        raise MethodError("tooManyChanges", f"{len(removed) + len(added)} changes, more than "
                          f"maxChanges {max_changes}")
    response = {"accountId": account_id, "oldQueryState": since_state, "newQueryState": state,
                "removed": removed, "added": [{"id": pid, "index": n} for n, pid in added]}
    if calculate_total:
        response["total"] = len(new_ids)
    return response


# -- filters and sorts --------------------------------------------------------------------


def parse_filter(value: dict | None, context: Context) -> Filter | None:
    if value is None:
        return None
    return _parse(value, context, FilterSize(), depth=1)


def _parse(value: dict, context: Context, size: FilterSize, depth: int) -> Filter:
    size.count(depth)
    if "operator" in value:
        if set(value) != {"operator", "conditions"} or value["operator"] not in ("AND", "OR", "NOT") \
                or not isinstance(value["conditions"], list):
            raise invalid_arguments("a FilterOperator is {operator: AND|OR|NOT, conditions: [...]}")
        children = []
        for child in value["conditions"]:
            if not isinstance(child, dict):
                raise invalid_arguments("each condition is an object")
            children.append(_parse(child, context, size, depth + 1))
        return Operator(value["operator"], tuple(children))
    unknown = sorted(set(value) - FILTER_KEYS)
    if unknown:
        raise MethodError("unsupportedFilter", f"Principal has no filter {unknown[0]!r}")
    atoms: list[Filter] = []
    for key, given in value.items():
        if key == "accountIds":
            if not isinstance(given, list) or not all(isinstance(i, str) for i in given):
                raise invalid_arguments("accountIds must be a list of strings")
            atoms.append(_accounts_filter(given, context))
            continue
        if not isinstance(given, str):
            raise invalid_arguments(f"{key} must be a string")
        if key in ("email", "name", "text"):
            atoms.append(Contains.of(key, given))
        else:
            atoms.append(Equals("type" if key == "type" else "time_zone", given))
    return atoms[0] if len(atoms) == 1 else Operator("AND", tuple(atoms))


def _accounts_filter(account_ids: list[str], context: Context) -> Filter:
    """The principals whose ``accounts``, as this caller sees them, hold one of the ids."""
    jmap = context.settings.jmap
    if not jmap.account_id_template:
        return Operator("OR", ())  # nobody has accounts: matches nothing
    owner = context.caller.principal_id if jmap.accounts_visible == "own" else None
    if jmap.accounts_visible == "own" and owner is None:
        return Operator("OR", ())
    return AccountIn(jmap.account_id_template, frozenset(account_ids), owner)


def parse_sort(value: list | None) -> tuple[SortKey, ...]:
    if value is None:
        return ()
    keys = []
    for comparator in value:
        # other members are ignored: RFC 8620 lets types add some, and clients in the wild
        # (jmapc) send query arguments inside every Comparator
        if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str):
            raise invalid_arguments("a Comparator is {property, isAscending, collation}")
        ascending = comparator.get("isAscending", True)
        collation = comparator.get("collation", query.DEFAULT_COLLATION)
        if not isinstance(ascending, bool) or not isinstance(collation, str):
            raise invalid_arguments("isAscending is a boolean and collation a string")
        if comparator["property"] not in SORT_PROPERTIES:
            raise MethodError("unsupportedSort", f"cannot sort by {comparator['property']!r}; "
                              "by name, email, type or id")
        if collation not in query.COLLATIONS:
            raise MethodError("unsupportedSort", f"unknown collation {collation!r}")
        keys.append(SortKey(comparator["property"], ascending, collation))
    return tuple(keys)
