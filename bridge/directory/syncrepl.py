"""RFC 4533 content synchronisation (syncrepl), refreshOnly: what changed since a cookie.

ldap3 has no helper for it, so the controls and the syncInfo message are spelt here in
pyasn1 (which ships with ldap3), and the search is read message by message, never
collected whole: a refresh can carry every entry of a source.

A refresh yields, in the server's order:

- ``Changed(uuid, entry)``: an entry added or modified since the cookie (state add or
  modify), with the requested attributes;
- ``Present(uuids)``: entries unchanged since the cookie (the present phase: state
  present, or a syncIdSet with refreshDeletes FALSE);
- ``Deleted(uuids)``: entries deleted (state delete, or a syncIdSet with refreshDeletes
  TRUE);
- ``Done(cookie, refresh_deletes)``: the end. With ``refresh_deletes`` FALSE the server
  ran a present phase, so every entry neither changed nor present is gone.

A server that cannot serve the cookie answers e-syncRefreshRequired (4096), or (OpenLDAP)
unwillingToPerform when the cookie is newer than its own state (a server restored from a
backup), or sends everything with an empty cookie: in each case the caller must fall back
to a full read, and gets SyncRefreshRequired. (OpenLDAP 2.5 treats a cookie it cannot
parse as none and sends everything without deletions, which no client can tell from a
refresh; cookies are only ever stored as the server gave them, and the scheduled full
run reconciles whatever slips through.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import ldap3
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import namedtype, namedval, tag, univ

from bridge.directory import wire
from bridge.errors import DirectorySearchError
from bridge.model import RawEntry, SearchQuery

SYNC_REQUEST = "1.3.6.1.4.1.4203.1.9.1.1"
SYNC_STATE = "1.3.6.1.4.1.4203.1.9.1.2"
SYNC_DONE = "1.3.6.1.4.1.4203.1.9.1.3"
SYNC_INFO = "1.3.6.1.4.1.4203.1.9.1.4"
REFRESH_REQUIRED = 4096  # e-syncRefreshRequired
UNWILLING = 53


class SyncRefreshRequired(DirectorySearchError):
    """The server cannot tell what changed since this cookie: read everything again."""


# -- the ASN.1 of RFC 4533 --------------------------------------------------------------------

class _SyncRequestValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("mode", univ.Enumerated(
            namedValues=namedval.NamedValues(("refreshOnly", 1), ("refreshAndPersist", 3)))),
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("reloadHint", univ.Boolean(False)))


class _SyncStateValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("state", univ.Enumerated(namedValues=namedval.NamedValues(
            ("present", 0), ("add", 1), ("modify", 2), ("delete", 3)))),
        namedtype.NamedType("entryUUID", univ.OctetString()),
        namedtype.OptionalNamedType("cookie", univ.OctetString()))


class _SyncDoneValue(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)))


def _tagged(number: int, component):
    return component.subtype(implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, number))


class _RefreshPhase(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDone", univ.Boolean(True)))


class _SyncIdSet(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("cookie", univ.OctetString()),
        namedtype.DefaultedNamedType("refreshDeletes", univ.Boolean(False)),
        namedtype.NamedType("syncUUIDs", univ.SetOf(componentType=univ.OctetString())))


class _SyncInfoValue(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("newcookie", univ.OctetString().subtype(
            implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 0))),
        namedtype.NamedType("refreshDelete", _tagged(1, _RefreshPhase())),
        namedtype.NamedType("refreshPresent", _tagged(2, _RefreshPhase())),
        namedtype.NamedType("syncIdSet", _tagged(3, _SyncIdSet())))


def request_control(cookie: bytes | None) -> tuple[str, bool, bytes]:
    """The critical Sync Request control of a refreshOnly search from ``cookie``."""
    value = _SyncRequestValue()
    value["mode"] = "refreshOnly"
    if cookie:
        value["cookie"] = cookie
    return SYNC_REQUEST, True, encoder.encode(value)


# -- what a refresh yields --------------------------------------------------------------------

@dataclass(frozen=True)
class Changed:
    uuid: bytes
    entry: RawEntry


@dataclass(frozen=True)
class Present:
    uuids: tuple[bytes, ...]


@dataclass(frozen=True)
class Deleted:
    uuids: tuple[bytes, ...]


@dataclass(frozen=True)
class Done:
    cookie: bytes | None
    refresh_deletes: bool


Message = Changed | Present | Deleted | Done


def refresh(connection: ldap3.Connection, url: str, query: SearchQuery, cookie: bytes | None,
            time_limit: float = 0) -> Iterator[Message]:
    """One refreshOnly search of ``query`` from ``cookie`` (None: everything), streamed."""
    for answer in wire.search(connection, url, query, [request_control(cookie)], time_limit):
        done = yield from _interpret(url, query, answer, bool(cookie))
        if done:
            return


def _interpret(url: str, query: SearchQuery, answer: wire.Entry | dict,
               from_cookie: bool) -> Iterator[Message]:
    """Yield what one answer says; returns True at the end of the search."""
    if isinstance(answer, wire.Entry):
        state = _decode(_SyncStateValue(), answer.controls, SYNC_STATE, url, query)
        uuid = bytes(state["entryUUID"])
        name = str(state["state"])
        if name == "present":
            yield Present((uuid,))
        elif name == "delete":
            yield Deleted((uuid,))
        else:
            yield Changed(uuid, answer.entry)
        return False
    kind, controls = answer["type"], answer.get("controls") or {}
    if kind == "intermediateResponse":
        if answer.get("responseName") == SYNC_INFO:
            yield from _sync_info(answer.get("responseValue") or b"")
    elif kind == "searchResRef":
        raise DirectorySearchError(f"synchronising {query.base}: the server refers part of it to "
                                   f"{', '.join(answer.get('uri') or ())}; the read would be "
                                   "incomplete", url=url, base=query.base)
    elif kind == "searchResDone":
        code = answer.get("result")
        detail = answer.get("message") or answer.get("description") or ""
        if code == REFRESH_REQUIRED or (code == UNWILLING and from_cookie):
            raise SyncRefreshRequired(f"synchronising {query.base}: the server cannot go on from "
                                      f"the stored cookie ({detail or code})", url=url, result_code=code,
                                      base=query.base)
        if code != 0:
            raise DirectorySearchError(f"synchronising {query.base}: result {code} {detail}".rstrip(),
                                       url=url, result_code=code or 0, base=query.base)
        done = _decode(_SyncDoneValue(), controls, SYNC_DONE, url, query, required=False)
        cookie = bytes(done["cookie"]) if done is not None and done["cookie"].hasValue() else None
        if from_cookie and cookie == b"":
            raise SyncRefreshRequired(f"synchronising {query.base}: the server did not recognise "
                                      "the stored cookie and sent everything", url=url, base=query.base)
        yield Done(cookie, bool(done["refreshDeletes"]) if done is not None else False)
        return True
    return False


def _decode(spec, controls: dict, oid: str, url: str, query: SearchQuery, required: bool = True):
    control = controls.get(oid)
    if control is None or control.get("value") is None:
        if not required:
            return None
        raise DirectorySearchError(f"synchronising {query.base}: an entry came without its sync "
                                   "state; the server does not speak RFC 4533 properly", url=url)
    try:
        value, _ = decoder.decode(bytes(control["value"]), asn1Spec=spec)
    except Exception as exc:  # pyasn1 raises its own error tree
        raise DirectorySearchError(f"synchronising {query.base}: undecodable {oid} control: {exc}",
                                   url=url) from exc
    return value


def _sync_info(value: bytes) -> Iterator[Message]:
    info, _ = decoder.decode(value, asn1Spec=_SyncInfoValue())
    name = info.getName()
    if name == "syncIdSet":
        idset = info["syncIdSet"]
        uuids = tuple(bytes(uuid) for uuid in idset["syncUUIDs"])
        yield Deleted(uuids) if bool(idset["refreshDeletes"]) else Present(uuids)
    # newcookie, refreshDelete and refreshPresent only mark phases: in refreshOnly mode the
    # searchResDone's syncDone control carries the cookie and whether deletes were sent
