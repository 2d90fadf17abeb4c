"""Incremental readers: what changed in a source since its cursor, chosen from what the
server advertises.

- ``syncrepl``: RFC 4533 refreshOnly (OpenLDAP's syncprov, 389-ds), for sources keyed
  by entryUUID. Deletions come from the server's delete messages (a session log) or its
  present phase (everything unchanged is named; what is not named is gone).
- ``dirsync``: Active Directory's DirSync control, where the account holds the
  Replicating Directory Changes right (else it goes on as ``usn``): objects whose read
  or filtered attributes changed, tombstones included, each read again whole.
- ``usn``: Active Directory's uSNChanged, pinned to one domain controller (its
  invocationId; another DC or a restored one means a full read). Entries changed since
  the uSN are read again; every object changed in the naming context (tombstones too,
  through the Show Deleted control) that no longer matches the source is gone from it.
  An account that may not see tombstones enumerates the source's identifiers instead.
  Accounts whose accountExpires passed since the last run count as changed.
- ``timestamp``: any other server: entries whose modifyTimestamp is at or after the last
  run (less an overlap for clock skew), and a cheap enumeration of the identifiers still
  there for deletions.

Each reader gives a starting position before a full read (a change during that read is
read again next time, never lost) and, from a position, feeds a Delta and returns the
next position. A reader that cannot go on from a position raises RefreshRequired, and
the run reads everything instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Protocol

from bridge.account_state import ExpiredFiletime, epoch_to_filetime
from bridge.directory import Directory, ServerInfo, dirsync, syncrepl
from bridge.dn import InvalidDN, dn_key, is_within
from bridge.errors import DirectorySearchError
from bridge.mapper import SourceMap, identifier_uuid, principal_id
from bridge.model import RawEntry, SearchQuery

#: a change to what the bridge makes of entries invalidates every cursor
MAPPING_VERSION = 1
_NOTHING = "(!(objectClass=*))"


class RefreshRequired(Exception):
    """This reader cannot go on from the stored position: read the source completely."""


class Delta(Protocol):
    """Where a reader puts what it found (sync's staging of one source)."""

    def changed(self, entry: RawEntry) -> None: ...
    def deleted(self, principal_id: str) -> None: ...
    def present(self, principal_ids: list[str]) -> None: ...
    def only_present(self) -> None: ...


class Reader(Protocol):
    name: str

    def start(self, directory: Directory, smap: SourceMap, now: float) -> dict: ...
    def changes(self, directory: Directory, smap: SourceMap, position: dict, delta: Delta,
                now: float) -> dict: ...


def fingerprint(reader: str, smap: SourceMap) -> str:
    """What a cursor was taken for: another search (or mapping) starts over."""
    shape = [MAPPING_VERSION, reader, dn_key(smap.base), smap.scope, smap.filter, smap.disabled_filter,
             smap.type, list(smap.attributes())]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def reader_for(info: ServerInfo, smap: SourceMap, timestamp_overlap: float) -> Reader:
    if info.flavor == "ad":
        return DirSyncReader() if info.supports_dirsync else UsnReader()
    if info.supports_syncrepl and smap.id_attribute.lower() == "entryuuid":
        return SyncreplReader()
    return TimestampReader(timestamp_overlap)


def _pid(smap: SourceMap, value: str | bytes) -> str:
    return principal_id(identifier_uuid(smap.id_attribute, value))


# -- RFC 4533 ------------------------------------------------------------------------------------

class SyncreplReader:
    name = "syncrepl"

    def start(self, directory: Directory, smap: SourceMap, now: float) -> dict:
        """The cookie of an empty refresh: the server's state now, without reading anything."""
        empty = smap.query(_NOTHING, (smap.id_attribute,))
        try:
            done = [m for m in directory.sync_refresh(empty, None) if isinstance(m, syncrepl.Done)]
        except DirectorySearchError as exc:  # e.g. the account may not use syncrepl
            raise RefreshRequired(f"a content synchronisation was refused: {exc.message}") from exc
        if not done or not done[-1].cookie:
            raise RefreshRequired("the server gave no synchronisation cookie")
        return {"cookie": _b64(done[-1].cookie)}

    def changes(self, directory: Directory, smap: SourceMap, position: dict, delta: Delta,
                now: float) -> dict:
        cookie = base64.b64decode(position["cookie"])
        try:
            for message in directory.sync_refresh(smap.query(), cookie):
                if isinstance(message, syncrepl.Changed):
                    delta.changed(message.entry)
                elif isinstance(message, syncrepl.Present):
                    delta.present([_uuid_pid(u) for u in message.uuids])
                elif isinstance(message, syncrepl.Deleted):
                    for u in message.uuids:
                        delta.deleted(_uuid_pid(u))
                elif isinstance(message, syncrepl.Done):
                    if not message.refresh_deletes:  # a present phase: the unnamed are gone
                        delta.only_present()
                    cookie = message.cookie or cookie  # no cookie: nothing changed
        except syncrepl.SyncRefreshRequired as exc:
            raise RefreshRequired(exc.message) from exc
        return {"cookie": _b64(cookie)}


def _uuid_pid(raw: bytes) -> str:
    return principal_id(uuid.UUID(bytes=raw))


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


# -- Active Directory's uSNChanged ---------------------------------------------------------------

class UsnReader:
    name = "usn"

    def start(self, directory: Directory, smap: SourceMap, now: float) -> dict:
        return {**self._dc(directory), "at": now}

    def changes(self, directory: Directory, smap: SourceMap, position: dict, delta: Delta,
                now: float) -> dict:
        dc = self._dc(directory)
        if (dc["dc"], dc["invocation"]) != (position["dc"], position["invocation"]):
            raise RefreshRequired(f"uSNs of {position['dc']} do not apply to {dc['dc']} "
                                  "(another or a restored domain controller)")
        since = int(position["usn"]) + 1
        changed = f"(|(uSNChanged>={since}){_expiry_windows(smap, position['at'], now)})"
        matching = set()
        for entry in directory.read(smap.query(f"(&{smap.filter}{changed})")):
            delta.changed(entry)
            if values := entry.values(smap.id_attribute):
                matching.add(_pid(smap, values[0]))
        context = _naming_context(directory.info, smap.base)
        if not _tombstones_visible(directory, context, smap):
            # an ordinary account may not list CN=Deleted Objects: ask for what is there
            _enumerate(directory, smap, delta)
            return {**dc, "at": now}
        every_change = SearchQuery(context, f"(uSNChanged>={since})", (smap.id_attribute,), "sub",
                                   smap.query().binary)
        for entry in directory.read(every_change, show_deleted=True):
            values = entry.values(smap.id_attribute)
            if values and (pid := _pid(smap, values[0])) not in matching:
                delta.deleted(pid)  # deleted, moved away, or no longer matching the filter
        return {**dc, "at": now}

    @staticmethod
    def _dc(directory: Directory) -> dict:
        """This DC's identity and highest uSN, read before anything else of the run."""
        dse = directory.entry("", ("highestCommittedUSN", "dsServiceName"))
        usn = _text(dse, "highestCommittedUSN")
        service = _text(dse, "dsServiceName")
        ntds = directory.entry(service, ("invocationId",), frozenset({"invocationid"})) if service else None
        invocation = ntds.values("invocationId") if ntds else ()
        if not usn.isdigit() or not invocation or not isinstance(invocation[0], bytes):
            raise RefreshRequired("the domain controller does not tell its uSN and invocationId")
        return {"usn": int(usn), "dc": service, "invocation": invocation[0].hex()}


def _tombstones_visible(directory: Directory, context: str, smap: SourceMap) -> bool:
    """Whether this account sees tombstones in the naming context's Deleted Objects
    container (by default only administrators do; others need List Contents and Read
    Property on it). A domain without any tombstone yet counts as not visible."""
    container = SearchQuery(f"CN=Deleted Objects,{context}", "(isDeleted=TRUE)", (smap.id_attribute,),
                            "one", smap.query().binary)
    try:
        return any(True for _ in directory.read(container, limit=1, show_deleted=True))
    except DirectorySearchError as exc:
        if exc.result_code in (32, 50):  # noSuchObject (hidden), insufficientAccessRights
            return False
        raise


def _enumerate(directory: Directory, smap: SourceMap, delta: Delta) -> None:
    """Name every principal still in the source (identifiers only); the rest are gone."""
    ids = []
    for entry in directory.read(smap.query(smap.filter, (smap.id_attribute,))):
        if values := entry.values(smap.id_attribute):
            ids.append(_pid(smap, values[0]))
            if len(ids) >= 2000:
                delta.present(ids)
                ids = []
    delta.present(ids)
    delta.only_present()


def _text(entry: RawEntry | None, attribute: str) -> str:
    values = [v for v in (entry.values(attribute) if entry else ()) if isinstance(v, str)]
    return values[0] if values else ""


def _naming_context(info: ServerInfo, base: str) -> str:
    """The naming context ``base`` lies in (where its tombstones go), else the base."""
    holding = []
    for context in info.naming_contexts:
        try:
            if is_within(base, context):
                holding.append(context)
        except InvalidDN:
            continue
    return max(holding, key=len) if holding else base


# -- Active Directory's DirSync ------------------------------------------------------------------

class DirSyncReader:
    """DirSync over the source's naming context, asking for the attributes the source
    reads or filters on (and ``name``, which a move changes): an object is reported when
    one of them changed, and then read again whole, in batches, from the source's own
    search; one that no longer matches it is gone from the source, and so is a
    tombstone. An account without the Replicating Directory Changes right goes on with
    the uSNChanged reader (the position says which)."""

    name = "dirsync"
    BATCH = 100

    def __init__(self) -> None:
        self._usn = UsnReader()

    def start(self, directory: Directory, smap: SourceMap, now: float) -> dict:
        try:
            position = _last(directory.dirsync(self._query(directory, smap, _NOTHING), None))
        except DirectorySearchError as exc:
            if exc.result_code != 50:  # insufficientAccessRights: not granted the right
                raise
            return {"via": "usn", **self._usn.start(directory, smap, now)}
        return {"cookie": _b64(position.cookie), "at": now}

    def changes(self, directory: Directory, smap: SourceMap, position: dict, delta: Delta,
                now: float) -> dict:
        if position.get("via") == "usn":
            return {"via": "usn", **self._usn.changes(directory, smap, position, delta, now)}
        changed: list[bytes] = []
        try:
            for item in directory.dirsync(self._query(directory, smap, "(objectClass=*)"),
                                          base64.b64decode(position["cookie"])):
                if isinstance(item, dirsync.Position):
                    cookie = item.cookie
                elif (guids := item.values("objectguid")) and isinstance(guids[0], bytes):
                    if _text(item, "isdeleted").upper() == "TRUE":
                        delta.deleted(_pid(smap, guids[0]))
                    else:
                        changed.append(guids[0])
        except DirectorySearchError as exc:
            if exc.result_code in (2, 53):  # a cookie the DC cannot use
                raise RefreshRequired(exc.message) from exc
            raise
        for start in range(0, len(changed), self.BATCH):
            batch = changed[start:start + self.BATCH]
            wanted = "".join(f"(objectGUID={_escaped(guid)})" for guid in batch)
            found = set()
            for entry in directory.read(smap.query(f"(&{smap.filter}(|{wanted}))")):
                delta.changed(entry)
                found.update(_pid(smap, v) for v in entry.values(smap.id_attribute)[:1])
            for guid in batch:
                if (pid := _pid(smap, guid)) not in found:
                    delta.deleted(pid)  # moved away or no longer matching the filter
        for entry in _expired_since(directory, smap, position["at"], now):
            delta.changed(entry)  # expired with no change of its own
        return {"cookie": _b64(cookie), "at": now}

    @staticmethod
    def _query(directory: Directory, smap: SourceMap, search_filter: str) -> SearchQuery:
        attributes = {"objectguid", "isdeleted", "name", *(a.lower() for a in smap.attributes()),
                      *_filter_attributes(smap.filter), *_filter_attributes(smap.disabled_filter or "")}
        return SearchQuery(_naming_context(directory.info, smap.base), search_filter,
                           tuple(sorted(attributes)), "sub", smap.query().binary)


_FILTER_ATTRIBUTE = re.compile(r"\(\s*([A-Za-z][\w-]*)[^()=]*?[~<>:]?=")


def _filter_attributes(search_filter: str) -> set[str]:
    """The attribute types an LDAP filter tests."""
    return {name.lower() for name in _FILTER_ATTRIBUTE.findall(search_filter)}


def _escaped(value: bytes) -> str:
    return "".join(f"\\{byte:02x}" for byte in value)


def _last(items):
    last = None
    for last in items:  # noqa: B007 - only the final Position matters
        pass
    return last


def _expiry_windows(smap: SourceMap, since: float, now: float) -> str:
    """A filter for the entries whose expiry (AD's accountExpires) fell between two runs
    ("" if the source has no expiry rule): they changed without a change of their own."""
    return "".join(f"(&({rule.attribute}>={epoch_to_filetime(since)})"
                   f"({rule.attribute}<={epoch_to_filetime(now)}))"
                   for rule in smap.account_rules if isinstance(rule, ExpiredFiletime))


def _expired_since(directory: Directory, smap: SourceMap, since: float, now: float):
    windows = _expiry_windows(smap, since, now)
    return directory.read(smap.query(f"(&{smap.filter}(|{windows}))")) if windows else iter(())


# -- modifyTimestamp -----------------------------------------------------------------------------

class TimestampReader:
    name = "timestamp"

    def __init__(self, overlap: float = 300) -> None:
        self.overlap = overlap

    def start(self, directory: Directory, smap: SourceMap, now: float) -> dict:
        return {"since": now}

    def changes(self, directory: Directory, smap: SourceMap, position: dict, delta: Delta,
                now: float) -> dict:
        since = _generalized_time(float(position["since"]) - self.overlap)
        for entry in directory.read(smap.query(f"(&{smap.filter}(modifyTimestamp>={since}))")):
            delta.changed(entry)
        _enumerate(directory, smap, delta)
        return {"since": now}


def _generalized_time(epoch: float) -> str:
    return datetime.fromtimestamp(max(0.0, epoch), UTC).strftime("%Y%m%d%H%M%SZ")

