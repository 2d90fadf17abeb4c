"""/query's window over a whole result (RFC 8620 §5.5: position, anchor, anchorOffset,
limit) and /queryChanges between two whole results (§5.6)."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.jmap.args import Args, is_id
from bridge.jmap.errors import MethodError, invalid_arguments

QUERY_ARGUMENTS = {"accountId", "filter", "sort", "position", "anchor", "anchorOffset", "limit",
                   "calculateTotal"}
QUERY_CHANGES_ARGUMENTS = {"accountId", "filter", "sort", "sinceQueryState", "maxChanges", "upToId",
                           "calculateTotal"}


@dataclass(frozen=True)
class Window:
    """The arguments of /query beyond filter and sort."""

    position: int
    anchor: str | None
    anchor_offset: int
    limit: int | None
    calculate_total: bool


@dataclass(frozen=True)
class Since:
    """The arguments of /queryChanges beyond filter and sort."""

    query_state: str
    max_changes: int | None
    up_to_id: str | None
    calculate_total: bool


def window_arguments(args: Args) -> Window:
    anchor = args.string("anchor", None, nullable=True)
    if anchor is not None and not is_id(anchor):
        raise invalid_arguments("anchor must be an Id or null")
    return Window(position=args.integer("position", 0), anchor=anchor,
                  anchor_offset=args.integer("anchorOffset", 0),
                  limit=args.integer("limit", None, minimum=0, nullable=True),
                  calculate_total=args.boolean("calculateTotal", False))


def since_arguments(args: Args) -> Since:
    return Since(query_state=args.string("sinceQueryState"),
                 max_changes=args.integer("maxChanges", None, minimum=1, nullable=True),
                 up_to_id=args.string("upToId", None, nullable=True),
                 calculate_total=args.boolean("calculateTotal", False))


def window(ids: list[str], position: int, anchor: str | None, anchor_offset: int,
           limit: int | None) -> tuple[int, list[str]]:
    """The start index and the ids from there, as /query returns them."""
    if anchor is not None:
        if anchor not in ids:
            raise MethodError("anchorNotFound", f"{anchor} is not in the results")
        start = max(0, ids.index(anchor) + anchor_offset)
    else:
        start = max(0, len(ids) + position) if position < 0 else position
    return start, ids[start:] if limit is None else ids[start:start + limit]


def result_changes(old: list[str], new: list[str], up_to_id: str | None,
                   max_changes: int | None) -> tuple[list[str], list[dict]]:
    """``removed`` and ``added`` between two results of records that never change (their
    relative order is kept): what left, what came, each cut at ``upToId``."""
    old_set, new_set = set(old), set(new)
    removed = [(n, i) for n, i in enumerate(old) if i not in new_set]
    added = [(n, i) for n, i in enumerate(new) if i not in old_set]
    if up_to_id is not None and up_to_id in old_set:
        removed = [(n, i) for n, i in removed if n <= old.index(up_to_id)]
    if up_to_id is not None and up_to_id in new_set:
        added = [(n, i) for n, i in added if n <= new.index(up_to_id)]
    if max_changes is not None and len(removed) + len(added) > max_changes:
        raise MethodError("tooManyChanges", f"{len(removed) + len(added)} changes, more than "
                          f"maxChanges {max_changes}")
    return [i for _, i in removed], [{"id": i, "index": n} for n, i in added]
