"""Range retrieval of large multi-valued attributes (Active Directory's ``member;range=``).

AD returns at most MaxValRange values (1,500 by default) of an attribute per entry and
names the slice in the attribute: ``member;range=0-1499``, with no plain ``member`` at
all. A client that reads ``member`` sees an empty group. Here every ranged attribute of
an entry is completed by asking for the following slices (``member;range=1500-*``) until
the server answers with an open end (``*``), and the values are joined under the plain
name. A slice that is missing, does not start where the previous one ended, or an error
on the way makes the whole read fail: a partial member list is never taken for a whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bridge.errors import DirectorySearchError
from bridge.model import RawEntry

RANGED = re.compile(r"^(?P<name>[^;]+)(?P<options>(?:;(?!range=)[^;]+)*)"
                    r";range=(?P<low>\d+)-(?P<high>\d+|\*)$", re.IGNORECASE)
#: More slices than this for one attribute means the server is not making progress.
MAX_SLICES = 100_000

ReadSlice = Callable[[str, str], RawEntry | None]  # (dn, "member;range=1500-*") → the entry


def is_ranged(attribute: str) -> bool:
    return RANGED.match(attribute) is not None


def complete_ranges(entry: RawEntry, read_slice: ReadSlice, url: str = "") -> RawEntry:
    """``entry`` with every ranged attribute completed and renamed to its plain name.

    ``read_slice(dn, attribute)`` reads one entry by DN asking for one attribute (a base
    search). DirSync's ``;range=1-1`` / ``;range=0-0`` deltas are not slices of a list and
    must not reach this function."""
    ranged = {key: match for key in entry.attributes if (match := RANGED.match(key))}
    if not ranged:
        return entry
    attributes = {key: values for key, values in entry.attributes.items() if key not in ranged}
    for key, match in ranged.items():
        plain = (match["name"] + match["options"]).lower()
        if plain in attributes:
            raise _partial(entry.dn, plain, f"both {plain} and {key} came back", url)
        if int(match["low"]) != 0:
            raise _partial(entry.dn, plain, f"the first slice {key} does not start at 0", url)
        attributes[plain] = _all_slices(entry, key, match, read_slice, url)
    return RawEntry(entry.dn, attributes)


def _all_slices(entry: RawEntry, key: str, match: re.Match, read_slice: ReadSlice,
                url: str) -> tuple[str | bytes, ...]:
    plain = match["name"] + match["options"]
    values = list(entry.attributes[key])
    high = match["high"]
    for _ in range(MAX_SLICES):
        if high == "*":
            return tuple(values)
        start = int(high) + 1
        if len(values) != start:
            raise _partial(entry.dn, plain, f"{len(values)} values where the slices ending at "
                           f"{high} promise {start}", url)
        page = read_slice(entry.dn, f"{plain};range={start}-*")
        if page is None:
            raise _partial(entry.dn, plain, "the entry vanished while its values were read", url)
        found = [(k, m) for k in page.attributes if (m := RANGED.match(k))
                 and (m["name"] + m["options"]).lower() == plain.lower()]
        if len(found) != 1 or int(found[0][1]["low"]) != start:
            got = ", ".join(page.attributes) or "no values"
            raise _partial(entry.dn, plain, f"asked for values from {start} on, got {got}", url)
        next_key, next_match = found[0]
        values.extend(page.attributes[next_key])
        high = next_match["high"]
    raise _partial(entry.dn, plain, f"more than {MAX_SLICES} slices", url)


def _partial(dn: str, attribute: str, why: str, url: str) -> DirectorySearchError:
    return DirectorySearchError(
        f"reading {attribute} of {dn} by range retrieval: {why}; the values would be "
        "incomplete, so the read is refused", url=url, base=dn)
