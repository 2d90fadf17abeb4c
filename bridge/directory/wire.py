"""One search request, its answers read message by message off the connection.

ldap3's ``Connection.search`` turns every answer into two dictionaries per entry (values
decoded by the schema, and raw), looking up its configuration for every value; for a
directory of 100k entries that is most of the read. Here an entry without controls is
read straight from its BER into a RawEntry (one pass, no intermediate tree), an entry
with controls (RFC 4533's sync state) through ldap3's fast decoder, and nothing of a
search is collected: the caller consumes entries as they arrive. Other answers (the
final result, references, intermediate messages) go through ldap3's own decoding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import ldap3
from ldap3.operation.search import search_operation
from ldap3.utils.asn1 import decode_message_fast

from bridge.directory.connection import translated
from bridge.errors import DirectorySearchError
from bridge.model import RawEntry, SearchQuery

SCOPES = {"sub": ldap3.SUBTREE, "one": ldap3.LEVEL, "base": ldap3.BASE}
_ENTRY = 4  # searchResEntry's protocolOp
_DONE = 5  # searchResDone


@dataclass(frozen=True, slots=True)
class Entry:
    entry: RawEntry
    controls: dict  # oid → ldap3's decoded control (RFC 4533 puts the sync state here)


def search(connection: ldap3.Connection, url: str, query: SearchQuery, controls: list,
           time_limit: float = 0) -> Iterator[Entry | dict]:
    """Send one search of ``query`` and yield its answers: an Entry per entry, ldap3's
    dictionary for anything else; the searchResDone dictionary comes last."""
    with translated(url, f"searching {query.base}"):
        request = search_operation(query.base, query.filter, SCOPES[query.scope], ldap3.DEREF_NEVER,
                                   list(query.attributes), 0, math.ceil(time_limit), False,
                                   connection.auto_escape, connection.auto_encode, None,
                                   connection.server.custom_validator, False)
        message_id = connection.strategy.send("searchRequest", request, controls)
    strategy = connection.strategy
    try:
        while True:
            with translated(url, f"searching {query.base}"):
                messages = strategy.receiving()
            if not messages:
                raise DirectorySearchError(f"searching {query.base}: the server closed the connection",
                                           url=url, base=query.base)
            for raw in messages:
                with translated(url, f"decoding the answer to a search of {query.base}"):
                    plain = _plain_entry(raw, message_id, query.binary)
                    if plain is not None:
                        yield Entry(plain, {})
                        continue
                    message = decode_message_fast(raw)
                    if message["messageID"] != message_id:
                        raise DirectorySearchError(
                            f"searching {query.base}: an answer to another request "
                            f"(message {message['messageID']})", url=url, base=query.base)
                    if message["protocolOp"] == _ENTRY:
                        yield Entry(_entry(message["payload"], query.binary), _controls(strategy, message))
                        continue
                    response = strategy.decode_response_fast(message)
                yield response
                if message["protocolOp"] == _DONE:
                    return
    finally:
        strategy._outstanding.pop(message_id, None)


def _entry(payload: list, binary: frozenset[str]) -> RawEntry:
    """A searchResEntry's (dn, attributes) as decoded by ldap3's BER reader, as RawEntry:
    values are UTF-8 text, except those of ``binary`` attributes and invalid UTF-8."""
    attributes = {}
    for attribute in payload[1][3]:
        name_and_values = attribute[3]
        key = bytes(name_and_values[0][3]).decode("utf-8").lower()
        raw_values = [bytes(value[3]) for value in name_and_values[1][3]]
        # a 16-byte GUID may happen to be valid UTF-8: binary attributes are never decoded
        attributes[key] = (tuple(raw_values) if key.split(";")[0] in binary
                           else tuple(map(decode_value, raw_values)))
    return RawEntry(dn=bytes(payload[0][3]).decode("utf-8"), attributes=attributes)


def _plain_entry(raw: bytes, message_id: int, binary: frozenset[str]) -> RawEntry | None:
    """The entry in ``raw`` if it is a searchResEntry without controls answering
    ``message_id`` (nearly every message of a search), read straight from its BER; None
    for anything else, which ldap3 then decodes. Lengths that do not add up are None too."""
    try:
        end, position = _header(raw, 0, 0x30)
        if end != len(raw):
            return None
        end_id, position = _header(raw, position, 0x02)
        if int.from_bytes(raw[position:end_id], "big", signed=True) != message_id:
            return None
        end_op, position = _header(raw, end_id, 0x64)  # [APPLICATION 4] searchResEntry
        if end_op != end:  # controls follow
            return None
        end_dn, position = _header(raw, position, 0x04)
        dn = raw[position:end_dn].decode("utf-8")
        end_attributes, position = _header(raw, end_dn, 0x30)
        attributes = {}
        while position < end_attributes:
            end_attribute, position = _header(raw, position, 0x30)
            end_name, position = _header(raw, position, 0x04)
            key = raw[position:end_name].decode("utf-8").lower()
            end_values, position = _header(raw, end_name, 0x31)
            values = []
            while position < end_values:
                end_value, position = _header(raw, position, 0x04)
                values.append(raw[position:end_value])
                position = end_value
            if position != end_attribute:
                return None
            attributes[key] = (tuple(values) if key.split(";")[0] in binary
                               else tuple(map(decode_value, values)))
        return RawEntry(dn=dn, attributes=attributes) if position == end_attributes == end_op else None
    except (IndexError, UnicodeDecodeError, _NotThisTag):
        return None


class _NotThisTag(Exception):
    pass


def _header(raw: bytes, position: int, tag: int) -> tuple[int, int]:
    """(end of the element, start of its content) for the BER element at ``position``."""
    if raw[position] != tag:
        raise _NotThisTag
    length = raw[position + 1]
    position += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(raw[position:position + count], "big")
        position += count
    return position + length, position


def decode_value(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _controls(strategy, message: dict) -> dict:
    if not message["controls"]:
        return {}
    decoded = (strategy.decode_control_fast(control[3]) for control in message["controls"])
    return {oid: value for oid, value in decoded}
