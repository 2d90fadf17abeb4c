"""The one-pass reader of plain searchResEntry messages gives what ldap3's own BER
decoder gives, and steps aside (None) for anything that is not such a message; a page
without its paged results control is an error."""

from __future__ import annotations

import pytest
from ldap3.utils.asn1 import decode_message_fast

from bridge.directory import search, wire
from bridge.directory.rootdse import PAGED_RESULTS
from bridge.errors import DirectorySearchError
from bridge.model import SearchQuery


def tlv(tag: int, content: bytes) -> bytes:
    """One BER element, with a long-form length from 128 bytes on."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    digits = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(digits)]) + digits + content


def entry_message(message_id: int, dn: str, attributes: dict[str, list[bytes]],
                  controls: bytes = b"") -> bytes:
    partials = b"".join(
        tlv(0x30, tlv(0x04, name.encode()) + tlv(0x31, b"".join(tlv(0x04, v) for v in values)))
        for name, values in attributes.items())
    operation = tlv(0x64, tlv(0x04, dn.encode()) + tlv(0x30, partials))
    return tlv(0x30, tlv(0x02, message_id.to_bytes(2, "big", signed=True)) + operation + controls)


GUID = bytes.fromhex("8a2b3c4d5e6f708192a3b4c5d6e7f801")
ATTRIBUTES = {"cn": [b"J\xc3\xa9r\xc3\xb4me"], "objectGUID": [GUID],
              "member;range=0-1499": [b"x" * 300] * 3, "description": [b""],
              "jpegPhoto": [b"\xff\xd8\xff"], "mail": [b"a@b", b"c@d"]}


@pytest.mark.parametrize("message_id", [1, 127, 128, 300, 32767])
def test_a_plain_entry_reads_as_ldap3_decodes_it(message_id):
    raw = entry_message(message_id, "CN=J\xe9r\xf4me,OU=People,DC=example,DC=test", ATTRIBUTES)
    binary = frozenset({"objectguid"})

    fast = wire._plain_entry(raw, message_id, binary)

    assert fast == wire._entry(decode_message_fast(raw)["payload"], binary)
    assert fast.dn == "CN=J\xe9r\xf4me,OU=People,DC=example,DC=test"
    assert fast.attributes["objectguid"] == (GUID,)
    assert fast.attributes["jpegphoto"] == (b"\xff\xd8\xff",)  # not UTF-8: kept as bytes
    assert fast.attributes["member;range=0-1499"] == ("x" * 300,) * 3
    assert fast.attributes["description"] == ("",)


def test_anything_else_is_left_to_ldap3():
    raw = entry_message(5, "cn=a,dc=b", {"cn": [b"a"]})
    assert wire._plain_entry(raw, 6, frozenset()) is None  # another request's answer
    controls = tlv(0xA0, tlv(0x30, tlv(0x04, b"1.3.6.1.4.1.4203.1.9.1.2")))
    assert wire._plain_entry(entry_message(5, "cn=a,dc=b", {"cn": [b"a"]}, controls), 5, frozenset()) is None
    done = tlv(0x30, tlv(0x02, b"\x05") + tlv(0x65, tlv(0x0A, b"\x00") + tlv(0x04, b"") + tlv(0x04, b"")))
    assert wire._plain_entry(done, 5, frozenset()) is None
    for broken in (raw[:-1], raw + b"\x00", raw[:10]):
        assert wire._plain_entry(broken, 5, frozenset()) is None


def test_a_page_without_the_paged_results_control_is_an_error_not_the_last_page():
    """AD and others may drop a non-critical control; an answer without it must never
    be taken for the last page (the first 1,000 entries passed off as everything)."""
    query = SearchQuery("ou=people,dc=example,dc=org", "(objectClass=*)", ("cn",), "sub", frozenset())
    with pytest.raises(DirectorySearchError, match="did not return the paged results control"):
        search._next_cookie({"result": 0, "type": "searchResDone"}, "ldap://x", query)
    assert search._next_cookie({"controls": {PAGED_RESULTS: {"value": {"cookie": b"more"}}}},
                               "ldap://x", query) == b"more"
