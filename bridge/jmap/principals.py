"""Principal/get, /changes and /set (RFC 9670 §2, RFC 8620 §5.1-5.3), and the wire form of
a Principal.

Visibility: disabled principals are hidden unless ``jmap.show_disabled`` — absent from
/get and /query, and from the ``members``/``memberOf`` lists of others. To a client a
principal that becomes disabled is destroyed, one enabled again created, and the groups
whose member lists it leaves or joins are updated. /set is the self-edit policy of
DESIGN §5: a user may change their own name, description and timeZone (as configured);
every other change is ``forbidden``, and server-set properties sent with a different
value are ``invalidProperties``.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from bridge.jmap.args import Args
from bridge.jmap.core import ACCOUNT_ID, MEMBERSHIP, PRINCIPALS, Context
from bridge.jmap.errors import MethodError, invalid_arguments, set_error
from bridge.model import Principal, PrincipalType
from bridge.query import account_id, valid_id
from bridge.store import Window
from bridge.validation import is_time_zone

PROPERTIES = ("id", "type", "name", "description", "email", "timeZone", "capabilities", "accounts")
MEMBERSHIP_PROPERTIES = ("members", "memberOf")
SERVER_SET = {"id", "capabilities", "accounts", *MEMBERSHIP_PROPERTIES}
FIELD_OF = {"name": "name", "description": "description", "timeZone": "time_zone"}
MAX_NAME, MAX_DESCRIPTION = 256, 4096


def render(principal: Principal, context: Context, properties: list[str] | None = None,
           shown: set[str] | frozenset[str] = frozenset()) -> dict:
    """The wire object; ``shown`` are the member and group ids the caller may see."""
    full = {
        "id": principal.id, "type": principal.type.value, "name": principal.name,
        "description": principal.description, "email": principal.email,
        "timeZone": principal.time_zone, "capabilities": {}, "accounts": _accounts(principal, context),
    }
    if MEMBERSHIP in context.using:
        full["members"] = [m for m in principal.members if m in shown] \
            if principal.type is PrincipalType.GROUP else None
        full["memberOf"] = [g for g in principal.member_of if g in shown]
    if properties is None:
        return full
    return {name: full[name] for name in ("id", *properties) if name in full}


def _accounts(principal: Principal, context: Context) -> dict | None:
    jmap, me = context.settings.jmap, context.caller.principal_id
    if jmap.accounts_visible == "own" and principal.id != me:
        return None
    owned = account_id(jmap.account_id_template, principal.id, principal.login)
    if owned is None:
        return None
    capabilities = {capability: {} for capability in jmap.account_capabilities}
    capabilities["urn:ietf:params:jmap:principals:owner"] = {
        "accountIdForPrincipal": ACCOUNT_ID, "principalId": principal.id}
    return {owned: {"name": principal.email or principal.name, "isPersonal": principal.id == me,
                    "isReadOnly": False, "accountCapabilities": capabilities}}


def shown_relatives(principals: list[Principal], context: Context) -> set[str]:
    """Of the ids in these principals' member lists, those the caller may see."""
    if MEMBERSHIP not in context.using:
        return set()
    related = {i for p in principals for i in (*p.members, *p.member_of)}
    return {pid for pid, p in context.store.views(sorted(related)).items() if context.visible(p)}


# -- /get -----------------------------------------------------------------------------------


def principal_get(raw: Any, context: Context) -> dict:
    args = Args(raw, {"accountId", "ids", "properties"})
    account = args.id("accountId")
    context.check_account(account, PRINCIPALS)
    ids = args.ids("ids", None)
    properties = args.strings("properties")
    known = PROPERTIES + (MEMBERSHIP_PROPERTIES if MEMBERSHIP in context.using else ())
    if properties is not None:
        unknown = [p for p in properties if p not in known]
        if unknown:
            raise invalid_arguments(f"Principal has no property {unknown[0]!r}")
    limit, store = context.settings.jmap.max_objects_in_get, context.store
    if ids is not None and len(ids) > limit:
        raise MethodError("requestTooLarge", f"more than maxObjectsInGet ({limit}) ids")
    with store.reading():
        state = context.state()
        if ids is None:
            ids = store.query(None, (), context.settings.jmap.show_disabled, limit=limit + 1)
            if len(ids) > limit:
                raise MethodError("requestTooLarge", f"the directory holds more than maxObjectsInGet "
                                  f"({limit}) principals; ask for ids (Principal/query finds them)")
        wanted = list(dict.fromkeys(ids))
        found = {pid: p for pid, p in store.views(wanted).items() if context.visible(p)}
        shown = shown_relatives(list(found.values()), context)
    return {"accountId": account, "state": state,
            "list": [render(found[pid], context, properties, shown) for pid in wanted if pid in found],
            "notFound": [pid for pid in wanted if pid not in found]}


# -- /changes -----------------------------------------------------------------------------


def principal_changes(raw: Any, context: Context) -> dict:
    args = Args(raw, {"accountId", "sinceState", "maxChanges"})
    account = args.id("accountId")
    context.check_account(account, PRINCIPALS)
    since_state = args.string("sinceState")
    max_changes = args.integer("maxChanges", None, minimum=1, nullable=True)
    since = context.parse_state(since_state)
    limit = max_changes or context.settings.jmap.max_changes
    budget = limit
    with context.store.reading():
        while True:
            window = context.store.window(since, budget) if since is not None else None
            if window is None:
                raise MethodError("cannotCalculateChanges", "that state is too old, from another "
                                  "database or from other settings; fetch the principals again")
            created, updated, destroyed = _classify(window, context)
            excess = len(created) + len(updated) + len(destroyed) - limit
            if excess <= 0:
                break
            if budget == 1:  # one change alone affects more principals than allowed
                raise MethodError("cannotCalculateChanges", "a single change touches more than "
                                  "maxChanges principals; fetch the principals again")
            budget = max(1, budget - excess)  # a shorter stretch of the log
    return {"accountId": account, "oldState": since_state,
            "newState": context.state(window.until),
            "hasMoreChanges": window.has_more,
            "created": created, "updated": updated, "destroyed": destroyed}


def _classify(window: Window, context: Context) -> tuple[list[str], list[str], list[str]]:
    """Collapse a window by what clients saw at both ends; a principal that became hidden or
    shown again also changes the member lists of its groups and members."""
    store, ids = context.store, list(window.ids)
    before, after = store.states_at(ids, window.since), store.states_at(ids, window.until)
    created, updated, destroyed = [], [], []
    for pid in ids:
        was, now = context.visible(before[pid]), context.visible(after[pid])
        if was and now:
            updated.append(pid)
        elif now:
            created.append(pid)
        elif was:
            destroyed.append(pid)
    flipped = [pid for pid in ids if context.visible(before[pid]) != context.visible(after[pid])]
    related = {r for pid in flipped for state in (before[pid], after[pid]) if state
               for r in (*state.members, *state.member_of)} - set(ids)
    if related:
        ordered = sorted(related)
        related_before = store.states_at(ordered, window.since)
        related_after = store.states_at(ordered, window.until)
        updated += [r for r in ordered
                    if context.visible(related_before[r]) and context.visible(related_after[r])]
    return created, updated, destroyed


# -- /set ---------------------------------------------------------------------------------


def principal_set(raw: Any, context: Context) -> dict:
    args = Args(raw, {"accountId", "ifInState", "create", "update", "destroy"})
    account = args.id("accountId")
    context.check_account(account, PRINCIPALS)
    if_in_state = args.string("ifInState", None, nullable=True)
    create = args.object("create") or {}
    update = args.object("update") or {}
    destroy = args.list("destroy") or []
    if not all(isinstance(key, str) and _is_reference(key) for key in [*update, *destroy]):
        raise invalid_arguments("update keys and destroy entries are Ids or #creationIds")
    limit, store = context.settings.jmap.max_objects_in_set, context.store
    if len(create) + len(update) + len(destroy) > limit:
        raise MethodError("requestTooLarge", f"more than maxObjectsInSet ({limit}) operations")
    with store.writing():  # the state check, the edits and both states: one transaction
        old_state = context.state()
        if if_in_state is not None and if_in_state != old_state:
            raise MethodError("stateMismatch", f"the state is {old_state}, not {if_in_state}")
        real = {key: context.created_ids.get(key[1:]) if key.startswith("#") else key
                for key in [*update, *destroy]}
        existing = {pid: p for pid, p in store.views([r for r in real.values() if r]).items()
                    if context.visible(p)}
        not_created = {cid: set_error("forbidden", "principals come from the directory; they "
                                      "cannot be created through JMAP") for cid in create}
        not_destroyed = {key: set_error("forbidden", "principals are removed in the directory, not "
                                        "through JMAP") if real[key] in existing else set_error("notFound")
                         for key in destroy}
        updated, not_updated = {}, {}
        for key, patch in update.items():
            error = _update(real[key], patch, existing.get(real[key]), context)
            if error:
                not_updated[key] = error
            else:
                updated[real[key]] = None
        new_state = context.state()
    return {"accountId": account, "oldState": old_state, "newState": new_state,
            "created": None, "updated": updated or None, "destroyed": None,
            "notCreated": not_created or None, "notUpdated": not_updated or None,
            "notDestroyed": not_destroyed or None}


def _is_reference(key: str) -> bool:
    return valid_id(key[1:]) if key.startswith("#") else valid_id(key)


def _update(pid: str | None, patch: Any, principal: Principal | None, context: Context) -> dict | None:
    """Apply one PatchObject; returns a SetError or None."""
    if principal is None:
        return set_error("notFound")
    if pid != context.caller.principal_id:
        return set_error("forbidden", "only your own principal can be changed")
    if not isinstance(patch, dict):
        return set_error("invalidPatch", "a PatchObject is an object")
    current = render(principal, context, shown=set((*principal.members, *principal.member_of)))
    editable = set(context.settings.jmap.editable_properties)
    values, invalid, refused, problems = {}, [], [], []
    for key, value in patch.items():
        name = key.split("/", 1)[0]
        if name not in current or (name in SERVER_SET and ("/" in key or value != current[name])):
            invalid.append(name)
            problems.append(f"{name} is not a property that can be set")
        elif "/" in key:
            return set_error("invalidPatch", f"{key}: {name} has no parts to patch")
        elif value == current[name]:
            continue  # setting the current value changes nothing and is allowed
        elif name not in editable:
            refused.append(name)
        elif problem := _check(name, value):
            invalid.append(name)
            problems.append(problem)
        else:
            values[FIELD_OF[name]] = value
    if refused:
        return set_error("forbidden", f"{', '.join(refused)} cannot be changed here", properties=refused)
    if invalid:
        return set_error("invalidProperties", "; ".join(problems), properties=invalid)
    if values:
        context.store.edit(pid, values, actor=context.caller.username, remote=context.caller.remote)
    return None


def _check(name: str, value: Any) -> str:
    """Why a new value is refused, or "" if it is acceptable."""
    if name == "name":
        if not isinstance(value, str) or not value.strip():
            return "name must be a non-empty string"
        if len(value) > MAX_NAME or _has_controls(value, allowed=""):
            return f"name must be at most {MAX_NAME} characters without control characters"
    elif name == "description":
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > MAX_DESCRIPTION or _has_controls(value, "\n\t"):
            return f"description must be null or text of at most {MAX_DESCRIPTION} characters"
    elif name == "timeZone" and value is not None and not (isinstance(value, str) and is_time_zone(value)):
        return "timeZone must be null or an IANA time zone name"
    return ""


def _has_controls(text: str, allowed: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf") and char not in allowed for char in text)
