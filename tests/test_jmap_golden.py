"""Golden request/response pairs, shaped after the RFC 8620 §5 examples (Foo/get, /changes,
/query, /queryChanges, /set) with Principals: every member of every response is pinned,
so an extra, missing or misspelt field fails. States are the only values read back."""

from __future__ import annotations

import pytest

from bridge.model import MappedEntry, Principal, PrincipalType
from tests.support.jmap import ACCOUNT

P1, P2, P3 = (f"p{n:032x}" for n in (1, 2, 3))


def principal(pid: str, name: str, kind: str = "individual", **fields) -> MappedEntry:
    return MappedEntry(Principal(id=pid, source="s", type=PrincipalType(kind), dn=f"cn={pid}",
                                 dn_key=f"cn={pid}", name=name, login=name.lower(), **fields))


@pytest.fixture
def api(store_api):
    store_api.apply([principal(P1, "Ada", email="ada@example.org", time_zone="Europe/London"),
                     principal(P2, "Boardroom", "location", description="Seats 12")])
    return store_api


def state(api) -> str:
    return api.jmap.one("Principal/get", ids=[])["state"]


def test_rfc8620_5_1_get(api):
    result = api.jmap.one("Principal/get", ids=[P1, "pmissing"], properties=["name", "email", "timeZone"])
    assert result == {"accountId": ACCOUNT, "state": state(api), "notFound": ["pmissing"], "list": [
        {"id": P1, "name": "Ada", "email": "ada@example.org", "timeZone": "Europe/London"}]}


def test_rfc8620_5_2_changes(api):
    before = state(api)
    api.apply([principal(P1, "Ada King", email="ada@example.org", time_zone="Europe/London"),
               principal(P3, "Projector", "resource")])

    result = api.jmap.one("Principal/changes", sinceState=before, maxChanges=10)

    assert result == {"accountId": ACCOUNT, "oldState": before, "newState": state(api),
                      "hasMoreChanges": False, "created": [P3], "updated": [P1], "destroyed": [P2]}


def test_rfc8620_5_5_query(api):
    result = api.jmap.one("Principal/query", filter={"operator": "OR", "conditions": [
        {"type": "location"}, {"email": "ADA@"}]}, sort=[{"property": "name", "isAscending": False}],
        position=0, limit=10, calculateTotal=True)

    assert result == {"accountId": ACCOUNT, "queryState": state(api), "canCalculateChanges": True,
                      "position": 0, "ids": [P2, P1], "total": 2}


def test_rfc8620_5_6_query_changes(api):
    query = {"filter": {"type": "individual"}, "sort": [{"property": "name"}]}
    before = api.jmap.one("Principal/query", **query)["queryState"]
    api.apply([principal(P1, "Ada", email="ada@example.org", time_zone="Europe/London"),
               principal(P2, "Boardroom", "location", description="Seats 12"),
               principal(P3, "Aaron")])

    result = api.jmap.one("Principal/queryChanges", sinceQueryState=before, calculateTotal=True, **query)

    assert result == {"accountId": ACCOUNT, "oldQueryState": before, "newQueryState": state(api),
                      "removed": [], "added": [{"id": P3, "index": 0}], "total": 2}


def test_rfc8620_5_3_set_refusals(api):
    before = state(api)
    result = api.jmap.one("Principal/set", ifInState=before, create={"k1": {"name": "Eve"}},
                          update={P1: {"name": "Ada L."}}, destroy=[P2])
    forbidden = "only your own principal can be changed"  # a service client owns no principal

    assert result == {
        "accountId": ACCOUNT, "oldState": before, "newState": before, "created": None,
        "updated": None, "destroyed": None,
        "notCreated": {"k1": {"type": "forbidden", "description": "principals come from the "
                              "directory; they cannot be created through JMAP"}},
        "notUpdated": {P1: {"type": "forbidden", "description": forbidden}},
        "notDestroyed": {P2: {"type": "forbidden", "description": "principals are removed in the "
                              "directory, not through JMAP"}}}


def test_rfc8620_3_6_2_error_response(api):
    (response,) = api.jmap.call(("Principal/get", {"accountId": "nope", "ids": []}))
    assert response == ["error", {"type": "accountNotFound", "description": "no account 'nope'"}, "0"]
