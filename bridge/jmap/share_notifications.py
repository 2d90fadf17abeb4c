"""ShareNotification/get, /changes, /query, /queryChanges and /set (RFC 9670 §3).

Each user sees only their own notifications, in the directory account; the state is per
recipient. Notifications are immutable and few per user (a cap), so filters and sorts are
evaluated in Python over the recipient's set, and /queryChanges compares the old result
(rebuilt from the log) with the new one. /set only destroys, and only one's own: create
and update are ``forbidden``, another user's notification is ``notFound``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.jmap import paging
from bridge.jmap.args import Args, FilterSize, is_id
from bridge.jmap.core import PRINCIPALS, Context
from bridge.jmap.errors import MethodError, invalid_arguments, set_error
from bridge.store import Notification

PROPERTIES = ("id", "created", "changedBy", "objectType", "objectAccountId", "objectId",
              "oldRights", "newRights", "name")
FILTER_KEYS = {"after", "before", "objectType", "objectAccountId"}
SORT_PROPERTIES = {"created", "id"}


def recipient_of(context: Context) -> str:
    """Whose notifications these are; a service client (no principal) has none."""
    return context.caller.principal_id or f"service:{context.caller.username}"


def state_of(context: Context, modseq: int | None = None) -> str:
    """The caller's state: a token of their own, foreign to anyone else and to Principal."""
    return context.store.notification_state(recipient_of(context), context.view_key, modseq)


def parse_state(context: Context, token: str) -> int | None:
    """The modseq of one of the caller's states; None for any other token."""
    try:
        return context.store.parse_notification_state(recipient_of(context), token, context.view_key)
    except ValueError:
        raise invalid_arguments(f"{token!r} is not a state of this server") from None


def render(notification: Notification, properties: list[str] | None = None) -> dict:
    by = notification.changed_by
    full = {"id": notification.id, "created": notification.created,
            "changedBy": {"name": by["name"], "email": by.get("email"),
                          "principalId": by.get("principal_id")},
            "objectType": notification.object_type, "objectAccountId": notification.object_account_id,
            "objectId": notification.object_id, "oldRights": notification.old_rights,
            "newRights": notification.new_rights, "name": notification.name}
    return full if properties is None else {p: full[p] for p in ("id", *properties)}


# -- /get and /changes ------------------------------------------------------------------------


def notification_get(raw: Any, context: Context) -> dict:
    args = Args(raw, {"accountId", "ids", "properties"})
    account = args.id("accountId")
    context.check_account(account, PRINCIPALS)
    ids = args.ids("ids", None)
    properties = args.strings("properties")
    if properties is not None and any(p not in PROPERTIES for p in properties):
        raise invalid_arguments(f"ShareNotification has no property "
                                f"{next(p for p in properties if p not in PROPERTIES)!r}")
    limit, store, recipient = context.settings.jmap.max_objects_in_get, context.store, recipient_of(context)
    if ids is not None and len(ids) > limit:
        raise MethodError("requestTooLarge", f"more than maxObjectsInGet ({limit}) ids")
    with store.reading():
        state = state_of(context)
        if ids is None:
            found = {n.id: n for n in store.notifications_of(recipient)}
            if len(found) > limit:
                raise MethodError("requestTooLarge", f"more than maxObjectsInGet ({limit}) "
                                  "notifications; ask for ids")
            wanted = list(found)
        else:
            wanted = list(dict.fromkeys(ids))
            found = store.notifications_by_ids(recipient, wanted)
    return {"accountId": account, "state": state,
            "list": [render(found[i], properties) for i in wanted if i in found],
            "notFound": [i for i in wanted if i not in found]}


def notification_changes(raw: Any, context: Context) -> dict:
    args = Args(raw, {"accountId", "sinceState", "maxChanges"})
    account = args.id("accountId")
    context.check_account(account, PRINCIPALS)
    since_state = args.string("sinceState")
    max_changes = args.integer("maxChanges", None, minimum=1, nullable=True)
    since, store, recipient = parse_state(context, since_state), context.store, recipient_of(context)
    cap = max_changes or context.settings.jmap.max_changes
    with store.reading():
        window = store.notification_window(recipient, since, cap) if since is not None else None
        if window is None:
            raise MethodError("cannotCalculateChanges", "that state is too old, or not a state of "
                              "your notifications; fetch them again")
        rows = store.notification_changes(recipient, window.since, window.until) or []
    created = [i for i, first, last, _ in rows if first == "created" and last != "destroyed"]
    destroyed = [i for i, first, last, _ in rows if first != "created" and last == "destroyed"]
    return {"accountId": account, "oldState": since_state, "newState": state_of(context, window.until),
            "hasMoreChanges": window.has_more, "created": created, "updated": [], "destroyed": destroyed}


# -- /query and /queryChanges -------------------------------------------------------------------


def notification_query(raw: Any, context: Context) -> dict:
    args = Args(raw, paging.QUERY_ARGUMENTS)
    account = args.id("accountId")
    context.check_account(account, PRINCIPALS)
    condition, keys = _filter(args.object("filter")), _sort(args.list("sort"))
    wanted = paging.window_arguments(args)
    with context.store.reading():
        state = state_of(context)
        ids = _result(context.store.notifications_of(recipient_of(context)), condition, keys, context)
    start, page = paging.window(ids, wanted.position, wanted.anchor, wanted.anchor_offset, wanted.limit)
    response = {"accountId": account, "queryState": state, "canCalculateChanges": True,
                "position": start, "ids": page}
    if wanted.calculate_total:
        response["total"] = len(ids)
    return response


def notification_query_changes(raw: Any, context: Context) -> dict:
    args = Args(raw, paging.QUERY_CHANGES_ARGUMENTS)
    account = args.id("accountId")
    context.check_account(account, PRINCIPALS)
    condition, keys = _filter(args.object("filter")), _sort(args.list("sort"))
    wanted = paging.since_arguments(args)
    since, store, recipient = parse_state(context, wanted.query_state), context.store, recipient_of(context)
    with store.reading():
        state = state_of(context)
        if since is None or store.notification_changes(recipient, since) is None:
            raise MethodError("cannotCalculateChanges", "that query state is too old, or not a "
                              "state of your notifications; run the query again")
        new = _result(store.notifications_of(recipient), condition, keys, context)
        old = _result(store.notifications_as_of(recipient, since), condition, keys, context)
    removed, added = paging.result_changes(old, new, wanted.up_to_id, wanted.max_changes)
    response = {"accountId": account, "oldQueryState": wanted.query_state, "newQueryState": state,
                "removed": removed, "added": added}
    if wanted.calculate_total:
        response["total"] = len(new)
    return response


def _result(notifications: list[Notification], condition: dict | None,
            keys: list[tuple[str, bool]], context: Context) -> list[str]:
    chosen = []
    for n, notification in enumerate(notifications):
        if n % 64 == 0:
            context.check_time()
        if _matches(condition, notification):
            chosen.append(notification)
    chosen.sort(key=lambda n: n.id)
    for field, ascending in reversed(keys):
        chosen.sort(key=lambda n, f=field: _when(n.created) if f == "created" else n.id,
                    reverse=not ascending)
    return [n.id for n in chosen]


def _matches(condition: dict | None, notification: Notification) -> bool:
    if condition is None:
        return True
    if "operator" in condition:
        results = [_matches(c, notification) for c in condition["conditions"]]
        return {"AND": all, "OR": any}.get(condition["operator"], lambda r: not any(r))(results)
    created = _when(notification.created)
    return ((condition.get("after") is None or created >= condition["after"])
            and (condition.get("before") is None or created < condition["before"])
            and condition.get("objectType", notification.object_type) == notification.object_type
            and condition.get("objectAccountId", notification.object_account_id)
            == notification.object_account_id)


def _filter(value: dict | None, depth: int = 1, size: FilterSize | None = None) -> dict | None:
    """Check a filter and turn its dates into datetimes."""
    if value is None:
        return None
    size = FilterSize() if size is None else size
    size.count(depth)
    if "operator" in value:
        if set(value) != {"operator", "conditions"} or value["operator"] not in ("AND", "OR", "NOT") \
                or not isinstance(value["conditions"], list) \
                or not all(isinstance(c, dict) for c in value["conditions"]):
            raise invalid_arguments("a FilterOperator is {operator: AND|OR|NOT, conditions: [...]}")
        return {"operator": value["operator"],
                "conditions": [_filter(c, depth + 1, size) for c in value["conditions"]]}
    unknown = sorted(set(value) - FILTER_KEYS)
    if unknown:
        raise MethodError("unsupportedFilter", f"ShareNotification has no filter {unknown[0]!r}")
    checked = dict(value)
    for key in ("after", "before"):
        if checked.get(key) is not None:
            checked[key] = _utc_date(checked[key], key)
    for key in ("objectType", "objectAccountId"):
        if key in checked and not isinstance(checked[key], str):
            raise invalid_arguments(f"{key} must be a string")
    return checked


def _utc_date(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or not value.endswith("Z"):
        raise invalid_arguments(f"{name} must be a UTCDate such as 2026-01-31T12:00:00Z")
    try:
        return _when(value)
    except ValueError:
        raise invalid_arguments(f"{name} must be a UTCDate such as 2026-01-31T12:00:00Z") from None


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sort(value: list | None) -> list[tuple[str, bool]]:
    keys = []
    for comparator in value or ():
        if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str) \
                or not isinstance(comparator.get("isAscending", True), bool):
            raise invalid_arguments("a Comparator is {property, isAscending, collation}")
        if comparator["property"] not in SORT_PROPERTIES:
            raise MethodError("unsupportedSort", f"notifications sort by created or id, not "
                              f"{comparator['property']!r}")
        keys.append((comparator["property"], comparator.get("isAscending", True)))
    return keys


# -- /set ---------------------------------------------------------------------------------------


def notification_set(raw: Any, context: Context) -> dict:
    args = Args(raw, {"accountId", "ifInState", "create", "update", "destroy"})
    account = args.id("accountId")
    context.check_account(account, PRINCIPALS)
    if_in_state = args.string("ifInState", None, nullable=True)
    create, update = args.object("create") or {}, args.object("update") or {}
    destroy = args.list("destroy") or []
    if not all(isinstance(key, str) and is_id(key.removeprefix("#")) for key in [*update, *destroy]):
        raise invalid_arguments("update keys and destroy entries are Ids or #creationIds")
    limit, store = context.settings.jmap.max_objects_in_set, context.store
    if len(create) + len(update) + len(destroy) > limit:
        raise MethodError("requestTooLarge", f"more than maxObjectsInSet ({limit}) operations")
    with store.writing():
        old_state = state_of(context)
        if if_in_state is not None and if_in_state != old_state:
            raise MethodError("stateMismatch", f"the state is {old_state}, not {if_in_state}")
        real = {key: context.created_ids.get(key[1:]) if key.startswith("#") else key for key in destroy}
        mine = store.notifications_by_ids(recipient_of(context), [r for r in real.values() if r])
        gone = [mine[real[key]] for key in dict.fromkeys(destroy) if real[key] in mine]
        store.destroy_notifications(gone)
        new_state = state_of(context)
    forbidden = "share notifications are made by the server and never change"
    return {"accountId": account, "oldState": old_state, "newState": new_state,
            "created": None, "updated": None, "destroyed": [n.id for n in gone] or None,
            "notCreated": {cid: set_error("forbidden", forbidden) for cid in create} or None,
            "notUpdated": {key: set_error("forbidden", forbidden) for key in update} or None,
            "notDestroyed": {key: set_error("notFound") for key in destroy
                             if real[key] not in mine} or None}
