"""HTTP Basic against the directory, the login cache, lockout, bearer tokens and the access
rules — through the real app against a real slapd."""

from __future__ import annotations

import hashlib

import pytest
from starlette.testclient import TestClient

from bridge import sync
from bridge.auth import Authenticator, load_tokens
from bridge.errors import ConfigError
from bridge.web import create_app
from tests.support import ldif
from tests.support.jmap import Jmap, basic, bearer

GROUPS = "ou=groups,dc=example,dc=org"


def app(settings) -> TestClient:
    sync.run(settings)
    return TestClient(create_app(settings))


def status(client: TestClient, headers: dict) -> int:
    return client.get("/jmap/session", headers=headers).status_code


def alice_headers(password: str | None = None) -> dict:
    return basic("alice", ldif.PASSWORDS["alice"] if password is None else password)


def test_a_directory_login_gets_its_own_principal(alice):
    session = alice.session()
    me = session["accounts"]["directory"]["accountCapabilities"]["urn:ietf:params:jmap:principals"]
    found = alice.one("Principal/get", ids=[me["currentUserPrincipalId"]])["list"]
    assert found[0]["email"] == "alice@example.org"


def test_a_wrong_password_is_401_with_a_challenge(client):
    response = client.get("/jmap/session", headers=alice_headers("wrong"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="JMAP", charset="UTF-8"'


@pytest.mark.parametrize("login", ["*", "alice)(uid=*", "al*", "alice\\00"])
def test_filter_syntax_in_a_login_is_escaped_not_injected(client, login):
    assert status(client, basic(login, ldif.PASSWORDS["alice"])) == 401


@pytest.mark.parametrize("header", ["Basic", "Basic !!!", "Basic " + "YWxpY2U=", "Digest abc"])
def test_malformed_credentials_are_401(client, header):
    assert status(client, {"Authorization": header}) == 401


def test_an_empty_password_is_refused_without_asking_the_directory(slapd, client):
    slapd.kill()  # were the directory asked, this would be 503
    assert status(client, alice_headers("")) == 401


def test_a_login_is_remembered_so_requests_need_not_bind(slapd, client):
    assert status(client, alice_headers()) == 200
    slapd.kill()

    assert status(client, alice_headers()) == 200  # from the cache
    assert status(client, alice_headers("another")) == 503  # a different password must bind
    assert status(client, basic("bob", ldif.PASSWORDS["bob"])) == 503


def test_with_no_cache_every_request_binds(slapd, make_settings):
    client = app(make_settings(slapd, auth={"cache_ttl": "0s"}))
    assert status(client, alice_headers()) == 200
    slapd.kill()
    assert status(client, alice_headers()) == 503


def clients(settings, *addresses: str) -> list[TestClient]:
    sync.run(settings)
    application = create_app(settings)
    return [TestClient(application, client=(address, 4711)) for address in addresses]


def test_failures_lock_the_login_out_for_the_window(slapd, make_settings):
    client, = clients(make_settings(slapd, auth={"max_failures": 3, "failure_window": "10m"}), "10.0.0.1")
    assert [status(client, alice_headers("wrong")) for _ in range(3)] == [401, 401, 401]

    locked = client.get("/jmap/session", headers=alice_headers())
    assert locked.status_code == 429 and 0 < int(locked.headers["retry-after"]) <= 600
    assert status(client, basic("bob", ldif.PASSWORDS["bob"])) == 200  # others are not affected


def test_spellings_of_one_account_share_its_lockout(slapd, make_settings):
    """LDAP ignores surrounding and repeated spaces, and the mail alias names the same entry:
    none of them buys more guesses."""
    client, = clients(make_settings(slapd, auth={"max_failures": 3},
                                    sources={"people": {"type": "individual", "base": ldif.PEOPLE,
                                                        "login_attributes": ["uid", "mail"]}}), "10.0.0.1")
    for login in ("alice", " alice", "alice@example.org"):
        assert status(client, basic(login, "wrong")) == 401

    for login in ("alice ", "alice  ", "ALICE", "alice@example.org"):
        assert status(client, basic(login, "wrong")) == 429, login


def test_a_login_with_spaces_is_the_login_without_them(alice, client):
    session = client.get("/jmap/session", headers=basic("  alice ", ldif.PASSWORDS["alice"])).json()
    assert session["username"] == "alice"


def test_a_lockout_from_one_address_does_not_lock_out_another(slapd, make_settings):
    attacker, victim = clients(make_settings(slapd, auth={"max_failures": 3}), "10.0.0.66", "10.0.0.7")
    for _ in range(3):
        status(attacker, alice_headers("wrong"))

    assert status(attacker, alice_headers()) == 429
    assert status(victim, alice_headers()) == 200


def test_a_remembered_password_still_gets_in_during_a_lockout(slapd, make_settings):
    victim, attacker = clients(make_settings(slapd, auth={"max_failures": 2}), "10.0.0.7", "10.0.0.66")
    assert status(victim, alice_headers()) == 200
    for address in ("10.0.0.66", "10.0.0.67", "10.0.0.68", "10.0.0.69"):  # 4 x 2: account locked
        other = TestClient(attacker.app, client=(address, 4711))
        status(other, alice_headers("wrong"))
        status(other, alice_headers("wrong"))
    newcomer = TestClient(attacker.app, client=("10.0.0.8", 4711))

    assert status(newcomer, alice_headers("another-guess")) == 429  # the account is locked ...
    assert status(victim, alice_headers()) == 200  # ... but a password seen recently gets in


def test_many_logins_from_one_address_lock_that_address(slapd, make_settings):
    prober, = clients(make_settings(slapd, auth={"max_failures": 1}), "10.0.0.66")
    codes = [status(prober, basic(f"nobody{n}", "guess")) for n in range(11)]

    assert codes == [401] * 10 + [429]
    assert status(prober, alice_headers()) == 429


def test_an_overlong_login_is_refused_without_a_directory_call(slapd, client):
    slapd.kill()
    assert status(client, basic("a" * 300, "x")) == 401


def test_a_disabled_account_may_not_use_jmap(client):
    # dave matches the source's disabled_filter; the directory itself lets him bind
    response = client.get("/jmap/session", headers=basic("dave", ldif.PASSWORDS["dave"]))
    assert response.status_code == 403 and "disabled" in response.json()["detail"]


def test_jmap_can_be_switched_off_for_everyone(slapd, make_settings):
    client = app(make_settings(slapd, server={"jmap_enabled": False}))
    response = client.get("/jmap/session", headers=alice_headers())
    assert response.status_code == 403


def test_allow_groups_admit_nested_members_only(slapd, make_settings):
    # outer contains inner, which contains alice; erin is directly in outer; bob is in neither
    client = app(make_settings(slapd, server={"allow_groups": [f"cn=outer,{GROUPS}"]}))
    assert status(client, alice_headers()) == 200
    assert status(client, basic("bob", ldif.PASSWORDS["bob"])) == 403


def test_group_rules_refuse_an_account_not_synced_yet(slapd, make_settings):
    client = app(make_settings(slapd, server={"deny_groups": [f"cn=admins,{GROUPS}"]}))
    slapd.admin().add(ldif.person_dn("newbie"), ["inetOrgPerson"], {
        "cn": "New", "sn": "New", "uid": "newbie", "userPassword": "newbie-secret-pw"})

    response = client.get("/jmap/session", headers=basic("newbie", "newbie-secret-pw"))

    assert response.status_code == 403 and "not been synced yet" in response.json()["detail"]


def test_deny_groups_win(slapd, make_settings):
    client = app(make_settings(slapd, server={"allow_groups": [f"cn=outer,{GROUPS}"],
                                              "deny_groups": [f"cn=admins,{GROUPS}"]}))
    assert status(client, alice_headers()) == 403  # alice is an admin


def token_settings(slapd, make_settings, tmp_path, body: str):
    path = tmp_path / "tokens.toml"
    path.write_text(body)
    return make_settings(slapd, server={"token_file": str(path)})


def test_bearer_tokens_for_service_clients(slapd, make_settings, tmp_path):
    digest = hashlib.sha256(b"sync-token-0123456789").hexdigest()
    settings = token_settings(slapd, make_settings, tmp_path, f'''
[[token]]
name = "groupware"
sha256 = "{digest}"

[[token]]
name = "ingest-only"
token = "notify-token-0123456789"
scopes = ["notify"]
''')
    client = app(settings)
    service = Jmap(client, bearer("sync-token-0123456789"))

    session = service.session()
    assert session["username"] == "groupware"
    assert session["accounts"]["directory"]["accountCapabilities"][
        "urn:ietf:params:jmap:principals"]["currentUserPrincipalId"] is None
    assert service.one("Principal/query", filter={"type": "location"})["ids"]
    assert status(client, bearer("unknown-token-000000")) == 401
    assert status(client, bearer("notify-token-0123456789")) == 403


@pytest.mark.parametrize("body, fragment", [
    ("[[token]]\nsha256 = 'ab'\n", "needs a name"),
    ("[[token]]\nname = 'x'\ntoken = 'short'\n", "at least 16 characters"),
    ("[[token]]\nname = 'x'\ntoken = 'long-enough-token-123'\nscopes = ['admin']\n", "scopes"),
    ("not toml [", "cannot read the token file"),
    ("[[token]]\nname = 'a'\ntoken = 'long-enough-token-123'\n"
     "[[token]]\nname = 'b'\nsha256 = 'ecaeff7045c05e21401334146bf9c520"
     "a7c1725fd456acac1225d5de3c549035'\n", "the same secret as 'a'"),
    ("[[token]]\nname = 'a'\ntoken = 'long-enough-token-123'\n"
     "[[token]]\nname = 'a'\ntoken = 'another-long-token-456'\n", "the name 'a' is given twice"),
])
def test_a_bad_token_file_is_a_config_error(tmp_path, body, fragment):
    path = tmp_path / "tokens.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=fragment):
        load_tokens(str(path))


def test_behind_a_trusted_proxy_lockouts_follow_the_forwarded_address(slapd, make_settings):
    proxy, = clients(make_settings(slapd, auth={"max_failures": 2},
                                   server={"trusted_proxies": ["10.0.0.1"]}), "10.0.0.1")

    def attempt(forwarded: str, password: str) -> int:
        return proxy.get("/jmap/session", headers={**alice_headers(password),
                                                   "X-Forwarded-For": forwarded}).status_code

    assert [attempt("203.0.113.66", "wrong") for _ in range(3)] == [401, 401, 429]
    assert attempt("203.0.113.7", ldif.PASSWORDS["alice"]) == 200  # another client of the proxy


def test_only_http_basic_may_wait_on_the_directory():
    """The web layer authenticates bearer tokens on the event loop (a hash and a compare)
    and hands everything else, which may bind to LDAP, to a worker thread."""
    assert not Authenticator.may_block("Bearer some-token")
    assert not Authenticator.may_block("bearer some-token")
    assert Authenticator.may_block("Basic YWxpY2U6c2VjcmV0")
    assert Authenticator.may_block("Bearer ")
    assert Authenticator.may_block(None)
