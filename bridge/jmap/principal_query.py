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

import re
import uuid
from typing import Any

from bridge import query
from bridge.jmap.args import Args, is_id
from bridge.jmap.core import PRINCIPALS, Context
from bridge.jmap.errors import MethodError, invalid_arguments
from bridge.model import Principal
from bridge.query import Contains, Equals, Filter, IdIn, Operator, SortKey

FILTER_KEYS = {"accountIds", "email", "name", "text", "type", "timeZone"}
SORT_PROPERTIES = set(query.SORT_FIELDS)


def principal_query(raw: Any, context: Context) -> dict:
    args = Args(raw, {"accountId", "filter", "sort", "position", "anchor", "anchorOffset", "limit",
                      "calculateTotal"})
    account_id = args.id("accountId")
    context.check_account(account_id, PRINCIPALS)
    condition = parse_filter(args.object("filter"), context)
    keys = parse_sort(args.list("sort"))
    position = args.integer("position", 0)
    anchor = args.string("anchor", None, nullable=True)
    if anchor is not None and not is_id(anchor):
        raise invalid_arguments("anchor must be an Id or null")
    anchor_offset = args.integer("anchorOffset", 0)
    limit = args.integer("limit", None, minimum=0, nullable=True)
    calculate_total = args.boolean("calculateTotal", False)
    store, everyone = context.store, context.settings.jmap.show_disabled
    with store.reading():
        state = store.state()
        total = None
        if anchor is not None or (calculate_total and condition is not None):
            # the whole result is needed anyway (anchor), or is cheaper than counting by a
            # second evaluation of the filter
            ids = store.query(condition, keys, everyone)
            total = len(ids)
            if anchor is None:
                start = max(0, total + position) if position < 0 else position
            elif anchor in ids:
                start = max(0, ids.index(anchor) + anchor_offset)
            else:
                raise MethodError("anchorNotFound", f"{anchor} is not in the results")
            page = ids[start:] if limit is None else ids[start:start + limit]
        else:
            if position < 0 or calculate_total:
                total = store.count(condition, everyone)
            start = max(0, total + position) if position < 0 else position
            page = store.query(condition, keys, everyone, offset=start, limit=limit)
    response = {"accountId": account_id, "queryState": state, "canCalculateChanges": True,
                "position": start, "ids": page}
    if calculate_total:
        response["total"] = total
    return response


def principal_query_changes(raw: Any, context: Context) -> dict:
    args = Args(raw, {"accountId", "filter", "sort", "sinceQueryState", "maxChanges", "upToId",
                      "calculateTotal"})
    account_id = args.id("accountId")
    context.check_account(account_id, PRINCIPALS)
    condition = parse_filter(args.object("filter"), context)
    keys = parse_sort(args.list("sort"))
    since_state = args.string("sinceQueryState")
    max_changes = args.integer("maxChanges", None, minimum=1, nullable=True)
    up_to_id = args.string("upToId", None, nullable=True)
    calculate_total = args.boolean("calculateTotal", False)
    store, everyone = context.store, context.settings.jmap.show_disabled
    try:
        since = store.parse_state(since_state)
    except ValueError:
        raise invalid_arguments("sinceQueryState is not a queryState of this server") from None
    with store.reading():
        state = store.state()
        new_ids = store.query(condition, keys, everyone)
        changed = store.changed_since(since) if since is not None else None
        if changed is None:
            raise MethodError("cannotCalculateChanges", "that query state is too old or from "
                              "another database; run the query again")
        before = store.states_at(changed, since)
        after = store.views(changed)
    index = {pid: n for n, pid in enumerate(new_ids)}
    removed, added = [], []
    for pid in changed:
        was = _visible(before[pid], everyone) and query.matches(condition, before[pid])
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


def _visible(principal: Principal | None, everyone: bool) -> bool:
    return principal is not None and (everyone or not principal.disabled)


# -- filters and sorts --------------------------------------------------------------------


def parse_filter(value: dict | None, context: Context) -> Filter | None:
    if value is None:
        return None
    if "operator" in value:
        if set(value) != {"operator", "conditions"} or value["operator"] not in ("AND", "OR", "NOT") \
                or not isinstance(value["conditions"], list):
            raise invalid_arguments("a FilterOperator is {operator: AND|OR|NOT, conditions: [...]}")
        children = []
        for child in value["conditions"]:
            if not isinstance(child, dict):
                raise invalid_arguments("each condition is an object")
            children.append(parse_filter(child, context))
        return Operator(value["operator"], tuple(children))
    unknown = sorted(set(value) - FILTER_KEYS)
    if unknown:
        raise MethodError("unsupportedFilter", f"Principal has no filter {unknown[0]!r}")
    atoms: list[Filter] = []
    for key, given in value.items():
        if key == "accountIds":
            if not isinstance(given, list) or not all(isinstance(i, str) for i in given):
                raise invalid_arguments("accountIds must be a list of strings")
            atoms.append(IdIn(frozenset(owners_of_accounts(given, context))))
            continue
        if not isinstance(given, str):
            raise invalid_arguments(f"{key} must be a string")
        if key in ("email", "name", "text"):
            atoms.append(Contains.of(key, given))
        else:
            atoms.append(Equals("type" if key == "type" else "time_zone", given))
    return atoms[0] if len(atoms) == 1 else Operator("AND", tuple(atoms))


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


# -- Principal.accounts ------------------------------------------------------------------------


def account_id_of(principal: Principal, template: str) -> str:
    return template.format(id=principal.id, login=principal.login or "",
                           uuid=str(uuid.UUID(hex=principal.id[1:])))


def owners_of_accounts(account_ids: list[str], context: Context) -> set[str]:
    """The principals whose ``accounts`` (as this caller sees them) hold one of the ids."""
    jmap = context.settings.jmap
    if not jmap.account_id_template:
        return set()
    pattern = _template_pattern(jmap.account_id_template)
    wanted_ids, wanted_logins = set(), []
    for account_id in account_ids:
        found = pattern.fullmatch(account_id)
        if not found:
            continue
        fields = found.groupdict()
        if fields.get("id"):
            wanted_ids.add(fields["id"])
        elif fields.get("uuid"):
            try:
                wanted_ids.add("p" + uuid.UUID(fields["uuid"]).hex)
            except ValueError:
                continue
        elif fields.get("login"):
            wanted_logins.append(fields["login"])
    owners = wanted_ids | set(context.store.ids_of_logins(wanted_logins).values())
    if jmap.accounts_visible == "own":
        owners &= {context.caller.principal_id}
    # the account id must come out of the template exactly (a login may hold other text)
    found = context.store.views(sorted(owners))
    return {pid for pid, p in found.items() if account_id_of(p, jmap.account_id_template) in account_ids}


def _template_pattern(template: str) -> re.Pattern:
    """A regex that takes an account id apart along the template's placeholders."""
    regex, named = "", set()
    for n, part in enumerate(re.split(r"\{(id|login|uuid)\}", template)):
        if n % 2 == 0:
            regex += re.escape(part)
        else:
            regex += f"(?P={part})" if part in named else f"(?P<{part}>.+?)"
            named.add(part)
    return re.compile(regex)
