"""Normalised keys for distinguished names, so that a member value and an entry's DN compare
equal however the server spaced, cased or escaped them.

RFC 4514 syntax with the tolerance real servers need: spaces around separators, ``;`` as
a legacy separator, ``\\XX`` hex escapes of UTF-8 bytes, multi-valued RDNs in any order.
Values compare case-insensitively (caseIgnoreMatch, which almost every naming attribute
uses), with runs of spaces collapsed. The key is for comparison only; show users the DN
the server sent.
"""

from __future__ import annotations

import re

_HEX = frozenset("0123456789abcdefABCDEF")
_OPTIONAL_UID = re.compile(r"#'[01]*'B$")
_SPECIAL = re.compile(r'[\\"+;]')


class InvalidDN(ValueError):
    """The string is not a distinguished name."""


def dn_key(dn: str) -> str:
    """The comparison key of ``dn``: ``cn=jane doe,ou=people,dc=example,dc=org``.

    Raises InvalidDN for a string that is not a DN. The empty DN (the root) is ``""``.
    """
    rdns = [sorted(_key_of(t, v) for t, v in rdn) for rdn in _parse(dn)]
    return ",".join("+".join(parts) for parts in rdns)


def is_within(dn: str, ancestor: str) -> bool:
    """Whether ``dn`` is ``ancestor`` or lies below it (compared RDN by RDN)."""
    inner = [sorted(_key_of(t, v) for t, v in rdn) for rdn in _parse(dn)]
    outer = [sorted(_key_of(t, v) for t, v in rdn) for rdn in _parse(ancestor)]
    return len(inner) >= len(outer) and inner[len(inner) - len(outer):] == outer


def leaf_rdn(dn: str) -> tuple[tuple[str, str], ...]:
    """The (type, unescaped value) pairs of the first RDN: ``(("cn", "Smith, Jane"),)``."""
    rdns = _parse(dn)
    return tuple(rdns[0]) if rdns else ()


def strip_optional_uid(value: str) -> str:
    """The DN part of a ``nameAndOptionalUID`` value (uniqueMember): drops ``#'0101'B``."""
    return _OPTIONAL_UID.sub("", value)


def _key_of(attr_type: str, value: str) -> str:
    value = " ".join(value.split()).casefold()
    escaped = value.replace("\\", "\\\\").replace(",", "\\,").replace("+", "\\+")
    return f"{attr_type.lower()}={escaped}"


def _parse(dn: str) -> list[list[tuple[str, str]]]:
    """Split a DN into RDNs, each a list of (type, unescaped value) pairs."""
    if not dn.strip():
        return []
    if not _SPECIAL.search(dn):  # most DNs: nothing escaped, quoted or multi-valued
        return [[_plain_pair(part, dn)] for part in dn.split(",")]
    rdns: list[list[tuple[str, str]]] = []
    rdn: list[tuple[str, str]] = []
    pos = 0
    while True:
        attr_type, pos = _read_type(dn, pos)
        value, pos = _read_value(dn, pos)
        rdn.append((attr_type, value))
        if pos >= len(dn):
            rdns.append(rdn)
            return rdns
        if dn[pos] in ",;":
            rdns.append(rdn)
            rdn = []
        pos += 1  # past the separator (',' ';' or '+')


def _plain_pair(part: str, dn: str) -> tuple[str, str]:
    """``type=value`` of an RDN without escapes, quotes, ``+`` or ``;`` (as _read_type and
    _read_value would read it)."""
    attr_type, equals, value = part.partition("=")
    attr_type = attr_type.strip()
    if not equals:
        raise InvalidDN(f"missing '=' in {dn!r}")
    if not attr_type or " " in attr_type:
        raise InvalidDN(f"bad attribute type {attr_type!r} in {dn!r}")
    return attr_type, value.strip(" ")


def _read_type(dn: str, pos: int) -> tuple[str, int]:
    end = dn.find("=", pos)
    if end < 0:
        raise InvalidDN(f"missing '=' in {dn!r}")
    attr_type = dn[pos:end].strip()
    if not attr_type or any(c in attr_type for c in ",+;\\\" "):
        raise InvalidDN(f"bad attribute type {attr_type!r} in {dn!r}")
    return attr_type, end + 1


def _read_value(dn: str, pos: int) -> tuple[str, int]:
    """Read an attribute value up to an unescaped separator; returns (value, position)."""
    while pos < len(dn) and dn[pos] == " ":
        pos += 1
    if pos < len(dn) and dn[pos] == '"':  # RFC 2253 quoted value, still sent by some servers
        out, pos, _ = _scan(dn, pos + 1, stop='"')
        if pos >= len(dn):
            raise InvalidDN(f"unterminated quote in {dn!r}")
        pos += 1
        while pos < len(dn) and dn[pos] == " ":
            pos += 1
        if pos < len(dn) and dn[pos] not in ",;+":
            raise InvalidDN(f"text after a quoted value in {dn!r}")
        return _decoded(out, dn), pos
    out, pos, trailing_spaces = _scan(dn, pos, stop=",;+")
    if trailing_spaces:
        del out[-trailing_spaces:]
    return _decoded(out, dn), pos


def _scan(dn: str, pos: int, stop: str) -> tuple[bytearray, int, int]:
    """Collect value bytes until a character of ``stop``, resolving ``\\c`` and ``\\XX``.
    Returns the bytes, the position reached and the number of unescaped trailing spaces."""
    out = bytearray()
    trailing_spaces = 0
    while pos < len(dn) and dn[pos] not in stop:
        char = dn[pos]
        if char == "\\":
            pair = dn[pos + 1:pos + 3]
            if len(pair) == 2 and all(c in _HEX for c in pair):
                out.append(int(pair, 16))
                pos += 3
            elif pos + 1 < len(dn):
                out += dn[pos + 1].encode()
                pos += 2
            else:
                raise InvalidDN(f"dangling escape at the end of {dn!r}")
            trailing_spaces = 0
            continue
        out += char.encode()
        trailing_spaces = trailing_spaces + 1 if char == " " else 0
        pos += 1
    return out, pos, trailing_spaces


def _decoded(out: bytearray, dn: str) -> str:
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidDN(f"escaped bytes are not UTF-8 in {dn!r}") from exc
