"""bridge.dn: comparison keys for DNs (RFC 4514, with the tolerance real servers need)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.dn import InvalidDN, dn_key, leaf_rdn, strip_optional_uid

JANE = "cn=jane doe,ou=people,dc=example,dc=org"


@pytest.mark.parametrize("dn", [
    "cn=Jane Doe,ou=People,dc=Example,dc=Org",
    "CN=JANE DOE,OU=PEOPLE,DC=EXAMPLE,DC=ORG",
    "cn=Jane Doe, ou=people, dc=example, dc=org",
    "cn = Jane Doe , ou = people , dc = example , dc = org",
    "  cn=Jane Doe,ou=people,dc=example,dc=org  ",
    "cn=Jane    Doe,ou=people,dc=example,dc=org",
    "cn=Jane Doe;ou=people;dc=example;dc=org",
    'cn="Jane Doe",ou=people,dc=example,dc=org',
    "cn=Jane\\20Doe,ou=people,dc=example,dc=org",
    "cn=\\4Aane Doe,ou=people,dc=example,dc=org",
])
def test_rfc4514_spellings_of_one_dn_share_a_key(dn):
    assert dn_key(dn) == JANE


def test_key_is_lower_cased_with_single_spaces():
    assert dn_key("CN=Jane  Doe , OU=People") == "cn=jane doe,ou=people"


@pytest.mark.parametrize("a, b", [
    ("cn=Smith\\, Jane,dc=org", "cn=Smith\\2C Jane,dc=org"),
    ('cn="Smith, Jane",dc=org', "cn=Smith\\, Jane,dc=org"),
    ("cn=Ren\\C3\\A9,dc=org", "cn=René,dc=org"),
    ("cn=ren\\c3\\a9,dc=org", "cn=RENÉ,dc=org"),
    ("cn=a+uid=b,dc=org", "uid=b+cn=a,dc=org"),
    ("cn=a + uid=b,dc=org", "UID=B+CN=A,dc=org"),
    ('cn="a+b",dc=org', "cn=a\\+b,dc=org"),
    ('cn="x;y",dc=org', "cn=x\\;y,dc=org"),
])
def test_equivalent_escapes_share_a_key(a, b):
    assert dn_key(a) == dn_key(b)


@pytest.mark.parametrize("quoted, value", [
    ('cn="Smith \\"JJ\\" Jane",dc=org', 'Smith "JJ" Jane'),
    ('cn="back\\\\slash",dc=org', "back\\slash"),
])
def test_rfc2253_quoted_value_may_contain_escaped_pairs(quoted, value):
    """RFC 2253 §3: quotation *( quotechar / pair ) quotation."""
    assert leaf_rdn(quoted) == (("cn", value),)


@pytest.mark.parametrize("a, b", [
    ("cn=a\\,ou=b", "cn=a,ou=b"),           # escaped comma is not a separator
    ("cn=a\\+uid=b", "cn=a+uid=b"),         # escaped plus is not a multi-valued RDN
    ("cn=a\\;ou=b", "cn=a;ou=b"),
    ("cn=a\\\\,ou=b", "cn=a,ou=b"),         # an escaped backslash stays in the value
    ("cn=a,ou=b", "ou=b,cn=a"),             # RDN order matters
    ("cn=a,dc=org", "uid=a,dc=org"),        # so does the attribute type
])
def test_distinct_dns_have_distinct_keys(a, b):
    assert dn_key(a) != dn_key(b)


def test_empty_dn_is_the_root():
    assert dn_key("") == ""
    assert dn_key("   ") == ""


@pytest.mark.parametrize("garbage", [
    "no equals sign",
    "cn=a,garbage",
    "cn=a\\",            # dangling backslash
    "cn=a,",             # trailing separator
    "cn=a,,dc=org",
    "cn=a+",
    "=value",
    "c n=a",
    'cn="unterminated,dc=org',
    "cn=\\FF,dc=org",    # escaped bytes that are not UTF-8
])
def test_garbage_is_invalid_dn(garbage):
    with pytest.raises(InvalidDN):
        dn_key(garbage)


def test_invalid_dn_is_a_value_error():
    assert issubclass(InvalidDN, ValueError)


@pytest.mark.parametrize("dn, expected", [
    ("cn=Jane Doe,ou=people,dc=org", (("cn", "Jane Doe"),)),
    ("cn=Smith\\, Jane,ou=people", (("cn", "Smith, Jane"),)),
    ('cn="Smith, Jane",ou=people', (("cn", "Smith, Jane"),)),
    ("cn=Ren\\C3\\A9", (("cn", "René"),)),
    ("cn=a+uid=b,dc=org", (("cn", "a"), ("uid", "b"))),
    (" uid = jdoe , dc=org", (("uid", "jdoe"),)),
    ("cn=trailing\\ ,dc=org", (("cn", "trailing "),)),  # an escaped space is kept
    ("", ()),
])
def test_leaf_rdn_gives_unescaped_type_value_pairs(dn, expected):
    assert leaf_rdn(dn) == expected


@pytest.mark.parametrize("value, expected", [
    ("uid=x,dc=y#'0101'B", "uid=x,dc=y"),
    ("uid=x,dc=y#''B", "uid=x,dc=y"),
    ("uid=x,dc=y", "uid=x,dc=y"),
    ("uid=x#'01'B,dc=y", "uid=x#'01'B,dc=y"),  # only a suffix is an optional UID
    ("uid=x,dc=y#'012'B", "uid=x,dc=y#'012'B"),  # not a bit string
])
def test_strip_optional_uid_drops_the_bit_string_suffix(value, expected):
    assert strip_optional_uid(value) == expected


def _rfc4514_escape(value: str) -> str:
    """Minimal RFC 4514 §2.4 escaping of an attribute value."""
    out = []
    for position, char in enumerate(value):
        if char in '"+,;<>\\=' or (position == 0 and char in "# ") \
                or (position == len(value) - 1 and char == " "):
            out.append("\\" + char)
        elif char == "\0":
            out.append("\\00")
        else:
            out.append(char)
    return "".join(out)


def _hex_escape(value: str) -> str:
    return "".join(f"\\{byte:02X}" for byte in value.encode())


_VALUES = st.text(st.characters(exclude_categories=("Cs",)), min_size=1)


@given(_VALUES)
def test_any_escaped_value_round_trips_through_leaf_rdn(value):
    assert leaf_rdn(f"cn={_rfc4514_escape(value)},dc=org") == (("cn", value),)
    assert leaf_rdn(f"cn={_hex_escape(value)},dc=org") == (("cn", value),)


@given(_VALUES)
def test_minimal_and_hex_escaping_share_a_key(value):
    assert dn_key(f"cn={_rfc4514_escape(value)},dc=org") == dn_key(f"CN={_hex_escape(value)},DC=org")
