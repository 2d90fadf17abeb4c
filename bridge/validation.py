"""Checks RFC 9670 puts on Principal values: email is an RFC 5322 addr-spec, timeZone an
IANA zone name."""

from __future__ import annotations

import re
import zoneinfo
from functools import cache

# RFC 5322 §3.4.1 addr-spec without comments, folding whitespace or obsolete forms, with
# RFC 6532's UTF-8 in atoms and quoted strings.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010FFFF]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010FFFF]|\\[\x20-\x7e])*"'
_DOMAIN_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]*\]"
_ADDR_SPEC = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOT_ATOM}|{_DOMAIN_LITERAL})")


def is_addr_spec(value: str) -> bool:
    return _ADDR_SPEC.fullmatch(value) is not None


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_time_zone(value: str) -> bool:
    """True for a name in the IANA time zone database (``Europe/Paris``, ``UTC``)."""
    return value in _zones()
