"""The directory reader against a real slapd: rootDSE probing, streaming pages, bytes."""

from __future__ import annotations

from bridge.directory import open_directory
from bridge.model import SearchQuery
from tests.support import ldif


def test_root_dse_identifies_openldap_and_its_controls(slapd, settings):
    with open_directory(settings.directory) as directory:
        info = directory.info

    assert (info.flavor, info.vendor) == ("openldap", "OpenLDAP")
    assert info.naming_contexts == ("dc=example,dc=org",)
    assert info.supports_paging and not info.supports_dirsync


def test_pages_stream_every_entry_and_limit_stops_early(slapd, settings):
    query = SearchQuery(ldif.PEOPLE, "(objectClass=inetOrgPerson)", ("uid",))
    with open_directory(settings.directory) as directory:
        everyone = [entry.values("uid")[0] for entry in directory.read(query)]
        first_three = list(directory.read(query, limit=3))
        again = list(directory.read(query))  # the abandoned search left nothing behind

    assert len(everyone) == len(set(everyone)) == 25
    assert len(first_three) == 3 and len(again) == 25


def test_binary_attributes_stay_bytes_even_when_they_decode_as_text(slapd, settings):
    query = SearchQuery(ldif.PEOPLE, "(uid=alice)", ("uid", "cn"), binary=frozenset({"cn"}))
    with open_directory(settings.directory) as directory:
        (alice,) = directory.read(query)

    assert alice.values("cn") == (b"Alice Liddell",)
    assert alice.values("uid") == ("alice",)
