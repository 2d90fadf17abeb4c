"""Share events from a groupware server, turned into ShareNotifications.

A batch is a JSON array (or ``{"events": [...]}``) of events; each one is checked on its
own and answered on its own — created (with the new ids, and the ids that retention or
coalescing replaced) or rejected with a reason — so a bad item never fails the batch.

    {"recipient": "alice",                 principal id, login or email
     "changedBy": {"name": "Bob", "email": "bob@example.org", "principalId": null},
     "objectType": "Calendar", "objectAccountId": "a1", "objectId": "c7",
     "oldRights": null, "newRights": {"mayRead": true}, "name": "Team calendar"}

A group recipient is refused unless ``notifications.expand_groups``; then each enabled
individual in it (nested) gets one, up to ``notifications.max_group_size`` members.

A request holds at most ``notifications.max_events`` events (`bridge notify` splits a
larger file into such batches); they are stored a chunk at a time, so that a big batch
never holds the store's write lock for long.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from bridge.config import Settings
from bridge.model import PrincipalType
from bridge.query import valid_id
from bridge.store import Retention, Store
from bridge.validation import is_addr_spec

FIELDS = {"recipient", "changedBy", "objectType", "objectAccountId", "objectId", "oldRights",
          "newRights", "name"}
_TYPE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")
_RIGHT_NAME = _TYPE_NAME  # mayRead, mayWrite, mayAdmin…
MAX_RIGHTS, MAX_NAME = 64, 1024
CHUNK = 200  # notifications per write transaction
#: format characters that belong in names: zero-width (non-)joiner in emoji sequences and
#: Persian or Indic words, the soft hyphen, and the tag characters of emoji flags; other
#: format characters (bidi overrides) can disguise a name
_FORMAT_ALLOWED = frozenset({"\u200c", "\u200d", "\u00ad", *map(chr, range(0xE0020, 0xE0080))})


class Rejected(Exception):
    """One event cannot be used; the message says why."""


@dataclass
class Outcome:
    index: int
    status: str  # created | rejected
    reason: str = ""
    ids: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)

    def wire(self) -> dict:
        body: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.status == "rejected":
            body["reason"] = self.reason
        else:
            body.update(ids=self.ids, replaced=self.replaced)
        return body


def events_of(body: Any) -> list:
    """The list of events in a request body; ValueError when there is none."""
    if isinstance(body, dict) and set(body) == {"events"}:
        body = body["events"]
    if not isinstance(body, list):
        raise ValueError('expected a JSON array of share events, or {"events": [...]}')
    return body


def ingest(events: list, store: Store, settings: Settings) -> list[Outcome]:
    """Check every event, store the good ones (a chunk per transaction), answer each."""
    outcomes, items, owners = [], [], []
    for index, event in enumerate(events):
        try:
            recipients, fields = _check(event, store, settings)
        except Rejected as refusal:
            outcomes.append(Outcome(index, "rejected", str(refusal)))
            continue
        outcomes.append(Outcome(index, "created"))
        for recipient in recipients:
            items.append((recipient, fields))
            owners.append(outcomes[-1])
    notifications = settings.notifications
    store.expire_notifications(notifications.max_age)
    retention = Retention(notifications.max_per_recipient, notifications.coalesce_window)
    for start in range(0, len(items), CHUNK):
        results = store.add_notifications(items[start:start + CHUNK], retention)
        for outcome, (new_id, replaced) in zip(owners[start:start + CHUNK], results, strict=True):
            outcome.ids += [new_id] if new_id else []
            outcome.replaced += replaced
    return outcomes


def ingest_in_batches(events: list, store: Store, settings: Settings) -> list[Outcome]:
    """``ingest`` in batches of ``notifications.max_events`` (a file of any length)."""
    size, outcomes = settings.notifications.max_events, []
    for start in range(0, len(events), size):
        for outcome in ingest(events[start:start + size], store, settings):
            outcome.index += start
            outcomes.append(outcome)
    return outcomes


def _check(event: Any, store: Store, settings: Settings) -> tuple[list[str], dict]:
    if not isinstance(event, dict):
        raise Rejected("an event is a JSON object")
    if _has_surrogate(event):
        raise Rejected("text contains a lone surrogate (\\ud800-\\udfff), which is not a character")
    unknown = sorted(set(event) - FIELDS)
    if unknown:
        raise Rejected(f"unknown field {unknown[0]!r}")
    missing = sorted(FIELDS - set(event) - {"oldRights", "newRights"})
    if missing:
        raise Rejected(f"{missing[0]} is required")
    fields = {
        "changed_by": _changed_by(event["changedBy"], store),
        "object_type": _matching(event["objectType"], _TYPE_NAME, "objectType",
                                 "a data type name such as Calendar"),
        "object_account_id": _id(event["objectAccountId"], "objectAccountId"),
        "object_id": _id(event["objectId"], "objectId"),
        "old_rights": _rights(event.get("oldRights"), "oldRights"),
        "new_rights": _rights(event.get("newRights"), "newRights"),
        "name": _text(event["name"], "name", MAX_NAME, empty=True),
    }
    if fields["old_rights"] == fields["new_rights"]:
        raise Rejected("oldRights and newRights are the same: nothing changed")
    return _recipients(event["recipient"], store, settings), fields


def _recipients(value: Any, store: Store, settings: Settings) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        raise Rejected("recipient must be a principal id, a login or an email")
    value = value.strip()
    candidates = [value] if valid_id(value) and store.views([value]) else []
    candidates = candidates or store.ids_of_login(value) or store.ids_of_emails(value)
    if not candidates:
        raise Rejected(f"no principal has the id, login or email {value!r}")
    if len(candidates) > 1:
        raise Rejected(f"{value!r} names {len(candidates)} principals")
    principal = store.views(candidates)[candidates[0]]
    if principal.disabled:
        raise Rejected(f"recipient {value!r} is disabled")
    if principal.type is not PrincipalType.GROUP:
        return [principal.id]
    notifications = settings.notifications
    if not notifications.expand_groups:
        raise Rejected(f"recipient {value!r} is a group, and groups are not expanded "
                       "(notifications.expand_groups)")
    members = sorted(store.members_of(principal.id))
    if len(members) > notifications.max_group_size:
        raise Rejected(f"group {value!r} has {len(members)} members, more than "
                       f"notifications.max_group_size ({notifications.max_group_size})")
    return members


def _changed_by(value: Any, store: Store) -> dict:
    if not isinstance(value, dict) or not set(value) <= {"name", "email", "principalId"}:
        raise Rejected("changedBy is {name, email, principalId}")
    email, principal = value.get("email"), value.get("principalId")
    if email is not None and not (isinstance(email, str) and is_addr_spec(email)):
        raise Rejected("changedBy.email must be null or an email address")
    if principal is not None and not (valid_id(principal) and store.views([principal])):
        raise Rejected("changedBy.principalId must be null or the id of a principal")
    return {"name": _text(value.get("name"), "changedBy.name", 256), "email": email,
            "principal_id": principal}


def _rights(value: Any, name: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_RIGHTS or not all(
            isinstance(k, str) and _RIGHT_NAME.match(k) and isinstance(v, bool) for k, v in value.items()):
        raise Rejected(f"{name} must be null or an object of at most {MAX_RIGHTS} rights names "
                       "(such as mayRead) to true/false")
    return value


def _id(value: Any, name: str) -> str:
    if not valid_id(value):
        raise Rejected(f"{name} must be a JMAP Id")
    return value


def _matching(value: Any, pattern: re.Pattern, name: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise Rejected(f"{name} must be {what}")
    return value


def _text(value: Any, name: str, longest: int, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()) or len(value) > longest \
            or not all(_allowed(c) for c in value):
        raise Rejected(f"{name} must be text of at most {longest} characters without control "
                       "characters" + ("" if empty else ", not empty"))
    return value


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return isinstance(value, list) and any(map(_has_surrogate, value))


def _allowed(character: str) -> bool:
    category = unicodedata.category(character)
    return category not in ("Cc", "Cs") and (category != "Cf" or character in _FORMAT_ALLOWED)
