"""Principal queries as plain data, and their meaning in Python.

The JMAP layer parses wire filters and comparators into these trees; the store compiles
them to SQL; ``matches`` and ``sort`` here give the same answers in Python, for records
the store reconstructs as they were at an older state (/queryChanges, /changes). A
property test keeps the two evaluations equal.

Text conditions are case-insensitive substrings under Unicode case folding; a null field
never matches. Sorting compares collation keys as code points (what SQLite's BINARY does
with UTF-8); a null sorts after every value, and ties are broken by id, ascending.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bridge.model import Principal

TextField = Literal["name", "email", "text"]  # text: name, email or description
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("name",), "email": ("email",), "text": ("name", "email", "description")}
SORT_FIELDS = ("name", "email", "type", "id")
COLLATIONS = ("i;ascii-casemap", "i;octet", "i;unicode-casemap")
DEFAULT_COLLATION = "i;unicode-casemap"


@dataclass(frozen=True)
class Contains:
    field: TextField
    value: str  # already case folded

    @staticmethod
    def of(field: TextField, value: str) -> Contains:
        return Contains(field, value.casefold())


@dataclass(frozen=True)
class Equals:
    field: Literal["type", "time_zone"]
    value: str


@dataclass(frozen=True)
class IdIn:
    ids: frozenset[str]


@dataclass(frozen=True)
class AccountIn:
    """Principals whose account id (``template`` filled with their id, login or uuid) is one
    of ``account_ids``; only ``owner``'s own when set (accounts visible to their owner)."""

    template: str
    account_ids: frozenset[str]
    owner: str | None = None


@dataclass(frozen=True)
class Operator:
    op: Literal["AND", "OR", "NOT"]
    conditions: tuple[Filter, ...]


Filter = Contains | Equals | IdIn | AccountIn | Operator


@dataclass(frozen=True)
class SortKey:
    field: str  # one of SORT_FIELDS
    ascending: bool = True
    collation: str = DEFAULT_COLLATION


def matches(condition: Filter | None, principal: Principal) -> bool:
    match condition:
        case None:
            return True
        case Contains(field, value):
            return any(value in fold(getattr(principal, name))
                       for name in TEXT_FIELDS[field] if getattr(principal, name) is not None)
        case Equals(field, value):
            return getattr(principal, field) == value
        case IdIn(ids):
            return principal.id in ids
        case AccountIn(template, account_ids, owner):
            return (owner is None or principal.id == owner) and \
                account_id(template, principal.id, principal.login) in account_ids
        case Operator("AND", conditions):
            return all(matches(c, principal) for c in conditions)
        case Operator("OR", conditions):
            return any(matches(c, principal) for c in conditions)
        case Operator("NOT", conditions):
            return not any(matches(c, principal) for c in conditions)
    raise ValueError(f"not a filter: {condition!r}")


_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_PLACEHOLDER = re.compile(r"\{(id|login|uuid)\}")


def valid_id(value: object) -> bool:
    """A JMAP Id (RFC 8620 §1.2): 1-255 characters of the base64url alphabet."""
    return isinstance(value, str) and _ID.match(value) is not None


def account_id(template: str, principal_id: str, login: str | None) -> str | None:
    """A principal's account id from the configured template, or None when a placeholder
    it uses is empty or the result is not a valid Id."""
    if not template:
        return None
    fields = {"id": principal_id, "login": login or "",
              "uuid": _uuid_text(principal_id)}
    if any(not fields[name] for name in _PLACEHOLDER.findall(template)):
        return None
    result = _PLACEHOLDER.sub(lambda found: fields[found.group(1)], template)
    return result if valid_id(result) else None


def _uuid_text(principal_id: str) -> str:
    digits = principal_id[1:]
    if len(digits) != 32 or not all(c in "0123456789abcdef" for c in digits):
        return ""
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def fold(text: str) -> str:
    """Case folding for substring matches."""
    return text.casefold()


def unicode_casemap(text: str) -> str:
    """RFC 5051 i;unicode-casemap key: titlecase each character, then NFKD."""
    if text.isascii():  # the same key, without a call per character
        return text.upper()
    return unicodedata.normalize("NFKD", "".join(char.title() for char in text))


def ascii_casemap(text: str) -> str:
    """RFC 4790 i;ascii-casemap key: a-z mapped to upper case, nothing else (as SQLite's
    upper()); so '_' sorts after the letters."""
    return text.translate(_ASCII_UPPER)


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_COLLATE = {"i;unicode-casemap": unicode_casemap, "i;ascii-casemap": ascii_casemap,
            "i;octet": lambda text: text}


def collation_key(collation: str, text: str | None) -> tuple[bool, str]:
    """Nulls after all values in ascending order."""
    return (True, "") if text is None else (False, _COLLATE[collation](text))


def sort(principals: Iterable[Principal], keys: tuple[SortKey, ...]) -> list[Principal]:
    """Order as the store's SQL does: by each key in turn, then by id ascending."""
    ordered = sorted(principals, key=lambda p: p.id)
    for key in reversed(keys):
        ordered.sort(key=lambda p, k=key: collation_key(k.collation, getattr(p, k.field)),
                     reverse=not key.ascending)
    return ordered


def sort_position(principal: Principal, keys: tuple[SortKey, ...]) -> tuple:
    """What decides where a principal sorts (equal tuples sort at the same place)."""
    return tuple(collation_key(k.collation, getattr(principal, k.field)) for k in keys)
