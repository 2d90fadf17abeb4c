"""Streaming searches with the simple paged results control (RFC 2696).

Pages are fetched one at a time and their entries yielded as RawEntry, so memory holds
one page, never the whole result. Every result code other than success is an error, and
so is a continuation reference: a size or time limit, a missing base, a refused control
or a subtree held by another server means the read is incomplete, and an incomplete read
must never be taken for a complete one (no silent first page, no missing branch).

Two things are completed rather than refused: ranged attributes (AD's ``member;range=``,
see ranges.py), and continuation references to naming contexts the same server holds
(AD refers a search of the domain root to its Configuration partition, which holds no
users or groups of the domain; a reference anywhere else is still an error).
"""

from __future__ import annotations

from collections.abc import Iterator

import ldap3
from ldap3.protocol.rfc2696 import paged_search_control
from ldap3.utils.uri import parse_uri

from bridge.directory import wire
from bridge.directory.connection import translated
from bridge.directory.ranges import complete_ranges
from bridge.directory.rootdse import PAGED_RESULTS
from bridge.dn import InvalidDN, dn_key
from bridge.errors import DirectorySearchError
from bridge.model import RawEntry, SearchQuery

_HINTS = {
    3: "the server's time limit was reached before the search finished",
    4: "the server's size limit was reached; raise the limit for the bridge's account "
       "(OpenLDAP: limits ... size.prtotal=unlimited)",
    10: "the server answered with a referral; point the source at the server that holds it",
    11: "the server's administrative limit was reached",
    12: "the server does not support the paged results control",
    32: "the search base does not exist",
    50: "the bridge's account may not read this part of the directory",
}


def paged_search(connection: ldap3.Connection, url: str, query: SearchQuery,
                 page_size: int, time_limit: float = 0, limit: int = 0,
                 own_contexts: frozenset[str] = frozenset(),
                 controls: tuple = ()) -> Iterator[RawEntry]:
    """Yield every entry matching ``query``, page by page; at most ``limit`` if non-zero.
    ``own_contexts``: DN keys of the naming contexts this server holds (its rootDSE);
    ``controls``: further (oid, criticality, value) request controls."""
    cookie: bytes | None = None
    yielded = 0
    size = min(page_size, limit) if limit else page_size
    while True:
        result, entries = _page(connection, url, query, size, cookie, time_limit, own_contexts, controls)
        for entry in entries:
            yield entry
            yielded += 1
            if limit and yielded >= limit:
                _abandon(connection, url, query, result)
                return
        cookie = _next_cookie(result, url, query)
        if not cookie:
            return


def _page(connection: ldap3.Connection, url: str, query: SearchQuery, size: int,
          cookie: bytes | None, time_limit: float, own_contexts: frozenset[str],
          controls: tuple) -> tuple[dict, list[RawEntry]]:
    request_controls = [paged_search_control(True, size, cookie), *controls]
    entries: list[RawEntry] = []
    references: list[str] = []
    result: dict = {}
    for answer in wire.search(connection, url, query, request_controls, time_limit):
        if isinstance(answer, wire.Entry):
            entries.append(answer.entry)
        elif answer.get("type") == "searchResRef":
            references += [uri for uri in answer.get("uri") or () if _referred_dn(uri) not in own_contexts]
        elif answer.get("type") == "searchResDone":
            result = answer
    code = result.get("result")
    if code != 0:
        hint = _HINTS.get(code, "the search failed")
        detail = result.get("message") or result.get("description") or ""
        raise DirectorySearchError(
            f"search of {query.base} {query.filter}: {hint} (result {code} {detail})".rstrip(),
            url=url, result_code=code or 0, base=query.base)
    if references:
        raise DirectorySearchError(
            f"search of {query.base}: the server refers part of this subtree to "
            f"{', '.join(references)}; the read would be incomplete, so it is refused (narrow "
            "the base, or configure a source on that server)", url=url, base=query.base)
    page_result = result

    def read_slice(dn: str, attribute: str) -> RawEntry | None:
        return read_entry(connection, url, dn, (attribute,), query.binary)

    return page_result, [complete_ranges(entry, read_slice, url) for entry in entries]


def _referred_dn(uri: str) -> str | None:
    """The DN key a continuation reference points at (None if it names none)."""
    try:
        return dn_key((parse_uri(uri) or {}).get("base") or "")
    except (InvalidDN, ValueError, TypeError):
        return None


def _next_cookie(result: dict, url: str, query: SearchQuery) -> bytes:
    control = (result.get("controls") or {}).get(PAGED_RESULTS)
    if control is None:
        raise DirectorySearchError(
            f"search of {query.base}: the server did not return the paged results control, "
            "so the result may be incomplete", url=url, base=query.base)
    return control["value"]["cookie"]


def _abandon(connection: ldap3.Connection, url: str, query: SearchQuery, result: dict) -> None:
    """Tell the server we stop early (page size 0 with the cookie, RFC 2696 §3)."""
    control = (result.get("controls") or {}).get(PAGED_RESULTS)
    cookie = control["value"]["cookie"] if control else b""
    if cookie:
        with translated(url, f"ending the search of {query.base}"):
            connection.search(query.base, query.filter, wire.SCOPES[query.scope], attributes=["1.1"],
                              paged_size=0, paged_cookie=cookie)


def raw_entry(item: dict, binary: frozenset[str] = frozenset()) -> RawEntry:
    """An entry of ldap3's ``Connection.search`` response as RawEntry (see wire._entry)."""
    attributes = {}
    for name, values in item["raw_attributes"].items():
        key = name.lower()
        binary_value = key.split(";")[0] in binary
        attributes[key] = tuple(values) if binary_value else tuple(map(wire.decode_value, values))
    return RawEntry(dn=item["dn"], attributes=attributes)


def read_entry(connection: ldap3.Connection, url: str, dn: str, attributes: tuple[str, ...],
               binary: frozenset[str] = frozenset(),
               search_filter: str = "(objectClass=*)") -> RawEntry | None:
    """One entry by DN (base scope, no paging); None if it does not exist or does not
    match ``search_filter``."""
    with translated(url, f"reading {dn or 'the rootDSE'}"):
        connection.search(dn, search_filter, ldap3.BASE, attributes=list(attributes))
    result = connection.result or {}
    if result.get("result") == 32:
        return None
    if result.get("result") != 0:
        raise DirectorySearchError(f"reading {dn or 'the rootDSE'}: {result.get('description')}",
                                   url=url, result_code=result.get("result") or 0, base=dn)
    entries = [item for item in connection.response or () if item.get("type") == "searchResEntry"]
    return raw_entry(entries[0], binary) if entries else None
