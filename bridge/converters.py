"""Option converters: each turns a TOML value (or an environment string) into a checked
Python value, or raises ValueError with a message saying what was expected."""

from __future__ import annotations

import ipaddress
import os
import re
import string
import tomllib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bridge.dn import InvalidDN, dn_key

Converter = Callable[[Any], Any]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def required_text(value: Any) -> str:
    if not text(value).strip():
        raise ValueError("must not be empty")
    return value


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


def integer(minimum: int = 0) -> Converter:
    def convert(value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number ≥ {minimum}")
        if value < minimum:
            raise ValueError(f"must be ≥ {minimum}")
        return value
    return convert


def ratio(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError("expected a number between 0 and 1") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError("expected a number between 0 and 1")
    return float(value)


def duration(value: Any) -> float:
    """Seconds, from ``90``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"30d"``, ``"2w"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        compact = value.replace(" ", "").lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", compact):
            return float(compact)
        if compact and _DURATION_PART.sub("", compact) == "":
            return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(compact))
    raise ValueError('expected a duration such as "30s", "15m", "2h" or "30d"')


def positive_duration(value: Any) -> float:
    seconds = duration(value)
    if seconds <= 0:
        raise ValueError("must be longer than 0s")
    return seconds


def choice(*allowed: str) -> Converter:
    def convert(value: Any) -> str:
        if value not in allowed:
            raise ValueError("expected one of " + ", ".join(repr(a) for a in allowed))
        return value
    return convert


def string_list(item: Converter = text) -> Converter:
    """A TOML array; from the environment also ``a,b`` or a TOML array literal."""
    def convert(value: Any) -> tuple:
        if isinstance(value, str):
            value = _parse_list_string(value)
        if not isinstance(value, list | tuple):
            raise ValueError("expected a list")
        converted = []
        for position, element in enumerate(value, 1):
            try:
                converted.append(item(element))
            except ValueError as exc:
                raise ValueError(f"item {position} ({element!r}): {exc}") from None
        return tuple(converted)
    return convert


def _parse_list_string(value: str) -> list:
    stripped = value.strip()
    if stripped.startswith("["):
        try:
            return tomllib.loads(f"v = {stripped}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"not a valid list: {exc}") from None
    return [part.strip() for part in stripped.split(",") if part.strip()]


def non_empty(convert: Converter) -> Converter:
    def checked(value: Any) -> Any:
        result = convert(value)
        if not result:
            raise ValueError("must not be empty")
        return result
    return checked


def ldap_url(value: Any) -> str:
    url = text(value).strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("ldap", "ldaps"):
        raise ValueError("expected an ldap:// or ldaps:// URL")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError("the port is not a number between 1 and 65535")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError("give only scheme, host and port (search bases belong in [sources])")
    return url


def host_port(value: Any) -> str:
    """``host:port`` (``[::1]:8080`` for IPv6) to listen on."""
    address = text(value).strip()
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('expected host:port, e.g. "127.0.0.1:8080" or "[::]:8443"')
    return address


def http_url(value: Any) -> str:
    url = text(value).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("the URL may not have a query or fragment")
    return url


def ip_network(value: Any) -> str:
    """An IP address or network (``10.0.0.0/8``), as uvicorn's proxy middleware takes it."""
    address = text(value).strip()
    try:
        ipaddress.ip_network(address, strict=False)
    except ValueError:
        raise ValueError("expected an IP address or network such as 10.0.0.0/8") from None
    return address


def template(*fields: str) -> Converter:
    """A string with ``{field}`` placeholders among ``fields`` ("" for none)."""
    def convert(value: Any) -> str:
        pattern = text(value)
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
        except ValueError as exc:
            raise ValueError(f"not a template: {exc}") from None
        unknown = names - set(fields)
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; use "
                             + ", ".join(f"{{{f}}}" for f in fields))
        return pattern
    return convert


def ldap_filter(value: Any) -> str:
    """An RFC 4515 filter: parenthesised, balanced; the server checks the rest."""
    filt = text(value).strip()
    if not (filt.startswith("(") and filt.endswith(")")):
        raise ValueError("an LDAP filter starts with '(' and ends with ')'")
    depth = 0
    for position, char in enumerate(filt):
        if char == "(" and (position == 0 or filt[position - 1] != "\\"):
            depth += 1
        elif char == ")" and filt[position - 1] != "\\":
            depth -= 1
            if depth == 0 and position != len(filt) - 1:
                raise ValueError("text after the closing ')'; combine filters with (&...)")
        if depth < 0:
            raise ValueError("unbalanced parentheses")
    if depth:
        raise ValueError("unbalanced parentheses")
    return filt


def optional_filter(value: Any) -> str:
    return ldap_filter(value) if text(value).strip() else ""


def distinguished_name(value: Any) -> str:
    dn = text(value).strip()
    try:
        dn_key(dn)
    except InvalidDN as exc:
        raise ValueError(f"not a distinguished name ({exc})") from None
    return dn


_UPN = re.compile(r"^[^\s@=,]+@[^\s@=,]+$")
_DOWN_LEVEL = re.compile(r"^[^\s\\/=,]+\\[^\s\\=,]+$")


def bind_name(value: Any) -> str:
    """A DN, or the two other names Active Directory binds by: user@domain (UPN) and
    DOMAIN\\user."""
    name = text(value).strip()
    if _UPN.match(name) or _DOWN_LEVEL.match(name):
        return name
    try:
        return distinguished_name(name)
    except ValueError as exc:
        raise ValueError(f"{exc}; Active Directory also takes user@domain or DOMAIN\\user") from None


def required_dn(value: Any) -> str:
    return distinguished_name(required_text(value))


def attribute(value: Any) -> str:
    name = text(value).strip()
    if not _ATTRIBUTE.match(name):
        raise ValueError("not an LDAP attribute name")
    return name


def optional_attribute(value: Any) -> str:
    return attribute(value) if text(value).strip() else ""


def file_path(value: Any) -> str:
    """A path to a file that must exist and be readable, or "" for none."""
    path = text(value).strip()
    if path:
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise ValueError("no such file")
        if not os.access(path, os.R_OK):
            raise ValueError("file is not readable")
    return path


def store_path(value: Any) -> str:
    return os.path.expanduser(required_text(value).strip())
