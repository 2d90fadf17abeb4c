"""bridge.validation: RFC 9670 §2 wants email as an RFC 5322 addr-spec and timeZone as an
IANA time zone name."""

from __future__ import annotations

import pytest

from bridge.validation import is_addr_spec, is_time_zone


@pytest.mark.parametrize("address", [
    "jane@example.org",
    "jane.doe@example.org",
    "jane+calendar@example.org",
    "o'brien@example.org",
    "!#$%&'*+-/=?^_`{|}~@example.org",
    "root@localhost",
    '"john doe"@example.org',             # quoted local part
    '"john@home"@example.org',
    '"say \\"hi\\""@example.org',         # quoted-pair inside the quotes
    "jane@[192.0.2.1]",                   # domain literal
    "jane@[IPv6:2001:db8::1]",
    "jösé@example.org",                   # RFC 6532 UTF-8 local part
    "用户@例子.广告",
])
def test_rfc5322_addr_spec_is_valid(address):
    assert is_addr_spec(address)


@pytest.mark.parametrize("address", [
    "",
    "jane",                               # missing @
    "jane.example.org",
    "@example.org",
    "jane@",
    "jane@doe@example.org",               # two @
    "john doe@example.org",               # space in an atom
    " jane@example.org",
    "jane@example.org ",
    "jane@example .org",
    "jane@example.org.",                  # trailing dot
    "jane.@example.org",
    ".jane@example.org",
    "jane..doe@example.org",
    "jane@example..org",
    "bob(at)example.org",
    "Jane Doe <jane@example.org>",        # a name-addr, not an addr-spec
    "jane@example.org\n",
    '"unterminated@example.org',
    '"a"b"@example.org',
    "jane@[192.0.2.1",
    "jane@[a[b]",
])
def test_not_an_addr_spec_is_invalid(address):
    assert not is_addr_spec(address)


@pytest.mark.parametrize("zone", ["Europe/Paris", "UTC", "America/Argentina/Buenos_Aires",
                                  "Etc/GMT+5"])
def test_iana_zone_names_are_time_zones(zone):
    assert is_time_zone(zone)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "europe/paris", " Europe/Paris",
                                  "+02:00", "CEST", "../../etc/passwd"])
def test_other_strings_are_not_time_zones(zone):
    assert not is_time_zone(zone)
