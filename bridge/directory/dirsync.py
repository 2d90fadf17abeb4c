"""Active Directory's DirSync control (MS-ADTS 3.1.1.3.4.1.3): the objects of a naming
context whose requested attributes changed since a cookie, tombstones included.

A DirSync search must start at the root of a naming context, cannot be paged, and needs
the Replicating Directory Changes right (without it the DC answers insufficientAccess-
Rights, and the caller falls back to another reader). The answer comes in chunks of at
most ``MAX_BYTES``; each ends with a cookie and a flag saying whether more follow. An
object is returned when one of the requested attributes changed, with only those
attributes (and objectGUID, parentGUID, instanceType): a caller that needs the whole
entry reads it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import ldap3
from ldap3.protocol.microsoft import dir_sync_control

from bridge.directory import wire
from bridge.directory.rootdse import DIRSYNC
from bridge.errors import DirectorySearchError
from bridge.model import RawEntry, SearchQuery

MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Position:
    cookie: bytes


def changes(connection: ldap3.Connection, url: str, query: SearchQuery, cookie: bytes | None,
            time_limit: float = 0) -> Iterator[RawEntry | Position]:
    """The changed objects of ``query`` (base: a naming context's root) since ``cookie``
    (None: the server's state now, as a filter that matches nothing gives), chunk by
    chunk; the last item is the Position to go on from."""
    while True:
        control = dir_sync_control(criticality=True, object_security=False, ancestors_first=True,
                                   public_data_only=False, incremental_values=False,
                                   max_length=MAX_BYTES, cookie=cookie)
        result: dict = {}
        for answer in wire.search(connection, url, query, [control], time_limit):
            if isinstance(answer, wire.Entry):
                yield answer.entry
            elif answer.get("type") == "searchResDone":
                result = answer
            elif answer.get("type") == "searchResRef":
                continue  # other naming contexts: DirSync covers one
        code = result.get("result")
        if code != 0:
            detail = result.get("message") or result.get("description") or ""
            raise DirectorySearchError(f"DirSync of {query.base}: result {code} {detail}".rstrip(),
                                       url=url, result_code=code or 0, base=query.base)
        value = ((result.get("controls") or {}).get(DIRSYNC) or {}).get("value")
        if not value or value.get("cookie") is None:
            raise DirectorySearchError(f"DirSync of {query.base}: the answer has no DirSync cookie",
                                       url=url, base=query.base)
        cookie = bytes(value["cookie"])
        if not value.get("more_results"):
            yield Position(cookie)
            return
