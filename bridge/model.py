"""Plain immutable records that flow between directory, mapper, sync and store."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class PrincipalType(StrEnum):
    """RFC 9670 §2 Principal ``type`` values."""

    INDIVIDUAL = "individual"
    GROUP = "group"
    LOCATION = "location"
    RESOURCE = "resource"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One directory entry as a reader delivers it: its DN and its attribute values.

    Attribute names are lower-cased; values are ``str`` when they decode as UTF-8 and
    ``bytes`` otherwise (objectGUID, jpegPhoto).
    """

    dn: str
    attributes: Mapping[str, tuple[str | bytes, ...]]

    def values(self, name: str) -> tuple[str | bytes, ...]:
        return self.attributes.get(name.lower(), ())


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """One search a reader runs: base, filter, the attributes to return, scope (sub | one
    | base), and the lower-cased names of attributes whose values must stay bytes."""

    base: str
    filter: str
    attributes: tuple[str, ...]
    scope: str = "sub"
    binary: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A group member as the directory names it: by DN (member, uniqueMember) or by
    login (memberUid). ``value`` is already normalised (see bridge.dn)."""

    kind: Literal["dn", "login"]
    value: str


@dataclass(frozen=True, slots=True)
class Principal:
    """The stored record of one directory entry; ``id`` derives from its immutable
    identifier. ``members`` and ``member_of`` hold direct memberships as sorted ids."""

    id: str
    source: str
    type: PrincipalType
    dn: str
    dn_key: str
    name: str
    description: str | None = None
    email: str | None = None
    time_zone: str | None = None
    login: str | None = None
    disabled: bool = False
    members: tuple[str, ...] = ()
    member_of: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes an API request: a directory user (with their principal id, if synced),
    or a service client holding a bearer token."""

    username: str
    principal_id: str | None = None
    is_service: bool = False
    remote: str = ""


#: Every stored field of a Principal except its id, in a fixed order (hashing, history).
RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Principal))[1:]


@dataclass(frozen=True, slots=True)
class MappedEntry:
    """What the mapper makes of one entry: the principal (memberships not yet resolved)
    and the member references still to be resolved against the whole snapshot."""

    principal: Principal
    member_refs: tuple[MemberRef, ...] = ()
    warnings: tuple[str, ...] = field(default=())
