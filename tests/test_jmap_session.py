"""RFC 8620 §2 and RFC 9670 §1.5: the Session resource."""

from __future__ import annotations

from tests.support.jmap import ACCOUNT, CORE, MEMBERSHIP, PRINCIPALS, Jmap

LIMITS = {"maxSizeUpload", "maxConcurrentUpload", "maxSizeRequest", "maxConcurrentRequests",
          "maxCallsInRequest", "maxObjectsInGet", "maxObjectsInSet", "collationAlgorithms"}


def alice_id(alice: Jmap) -> str:
    return alice.one("Principal/query", filter={"email": "alice@example.org"})["ids"][0]


def test_rfc8620_2_session_has_every_field(alice):
    session = alice.session()

    assert set(session) == {"capabilities", "accounts", "primaryAccounts", "username", "apiUrl",
                            "downloadUrl", "uploadUrl", "eventSourceUrl", "state"}
    assert set(session["capabilities"][CORE]) == LIMITS
    assert session["capabilities"][CORE]["collationAlgorithms"] == \
        ["i;ascii-casemap", "i;octet", "i;unicode-casemap"]
    assert session["capabilities"][PRINCIPALS] == {}
    assert session["username"] == "alice"


def test_urls_are_absolute_and_built_from_public_url(alice):
    session = alice.session()

    assert session["apiUrl"] == "http://127.0.0.1:8080/jmap"
    for name, variables in (("downloadUrl", ("{accountId}", "{blobId}", "{type}", "{name}")),
                            ("uploadUrl", ("{accountId}",)),
                            ("eventSourceUrl", ("{types}", "{closeafter}", "{ping}"))):
        assert session[name].startswith("http://127.0.0.1:8080/"), name
        assert all(variable in session[name] for variable in variables), name


def test_rfc9670_1_5_the_directory_account_names_the_current_user(alice):
    session = alice.session()

    account = session["accounts"][ACCOUNT]
    assert (account["isPersonal"], account["isReadOnly"]) == (False, False)
    assert account["accountCapabilities"][PRINCIPALS] == {"currentUserPrincipalId": alice_id(alice)}
    assert session["primaryAccounts"][PRINCIPALS] == ACCOUNT
    assert CORE not in session["primaryAccounts"]  # RFC 8620: SHOULD NOT
    assert MEMBERSHIP in session["capabilities"]


def test_well_known_and_session_urls_answer_alike_and_are_not_cached(alice):
    well_known = alice.client.get("/.well-known/jmap", headers=alice.headers)

    assert well_known.status_code == 200
    assert well_known.json() == alice.session()
    assert "no-store" in well_known.headers["cache-control"]


def test_state_is_stable_and_changes_with_the_content(alice, bob):
    assert alice.session()["state"] == alice.session()["state"]
    assert alice.session()["state"] != bob.session()["state"]  # username, currentUserPrincipalId


def test_session_needs_authentication(client):
    response = client.get("/.well-known/jmap")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.headers["content-type"] == "application/problem+json"


def test_blobs_are_not_held_here(alice):
    response = alice.client.get("/jmap/download/directory/b1/x?type=text/plain", headers=alice.headers)
    assert response.status_code == 404 and "no blobs" in response.json()["detail"]
