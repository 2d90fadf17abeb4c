"""Active Directory against a real Samba AD domain controller (issue 5): the domain of
tests/support/ad_seed.py, provisioned once per run on 127.0.0.1.

Read-only tests share one sync of the seeded domain; tests that change the directory make
their own entries under their own OU and sync only that.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid

import pytest
from starlette.testclient import TestClient

from bridge import config, nesting, sync
from bridge.account_state import epoch_to_filetime, filetime_to_epoch
from bridge.directory import ServerInfo, in_chain, open_directory
from bridge.dn import dn_key
from bridge.errors import DirectoryAuthError, DirectoryTLSError
from bridge.model import PrincipalType, SearchQuery
from bridge.store import Store
from bridge.web import create_app
from tests.conftest import SERVICE_TOKEN, toml_text
from tests.support import ad_seed
from tests.support.ad_seed import GROUPS, PEOPLE, ROOMS
from tests.support.jmap import Jmap, basic, bearer
from tests.support.samba import ADMIN, ADMIN_PASSWORD, BASE, USER_PASSWORD, SambaDC

SOURCES = {
    "people": {"type": "individual", "base": PEOPLE},
    "groups": {"type": "group", "base": GROUPS},
    "rooms": {"type": "location", "base": ad_seed.BRIDGE},       # Exchange's marks
    "equipment": {"type": "resource", "base": ad_seed.BRIDGE},   # Exchange's marks
    "spaces": {"type": "location", "base": ROOMS,                # a configured filter
               "filter": "(&(objectClass=user)(description=meeting space))"},
}


def ad_settings(dc: SambaDC, directory_path, *, sources: dict = SOURCES, **sections) -> config.Settings:
    """Settings for the test domain; ``flavor`` stays auto, so detection is tested too."""
    tables = {
        "directory": {"urls": [dc.url], "bind_dn": ADMIN, "bind_password": ADMIN_PASSWORD,
                      "page_size": 300, **sections.pop("directory", {})},
        "store": {"path": str(directory_path / "bridge.db")},
        **sections,
        "sources": sources,
    }
    path = directory_path / "bridge.toml"
    path.write_text(toml_text(tables))
    return config.load(str(path), environ={})


@pytest.fixture(scope="module")
def domain(samba_dc, tmp_path_factory):
    """The seeded domain synced once (nested groups through the server), with its report."""
    settings = ad_settings(samba_dc, tmp_path_factory.mktemp("ad"))
    report = sync.run(settings)
    store = Store.open(settings.store.path)
    yield settings, report, store
    store.close()


@pytest.fixture(scope="module")
def api(domain, tmp_path_factory):
    settings, _, _ = domain
    tokens = tmp_path_factory.mktemp("tokens") / "tokens.toml"
    tokens.write_text(f'[[token]]\nname = "svc"\ntoken = "{SERVICE_TOKEN}"\n')
    path = tmp_path_factory.mktemp("api") / "bridge.toml"
    path.write_text(toml_text({"directory": dict(settings.directory), "store": {"path": settings.store.path},
                               "server": {"token_file": str(tokens)}, "sources": SOURCES}))
    with TestClient(create_app(config.load(str(path), environ={}))) as client:
        yield client


def by_dn(store: Store, dn: str):
    ids = store.ids_of_dns([dn_key(dn)])
    assert len(ids) == 1, f"{dn} was not synced"
    return store.principal(ids.pop())


EXTENDED_DN_AS_STRINGS = ("1.2.840.113556.1.4.529", False, bytes.fromhex("3003020101"))


def object_guid(dc: SambaDC, dn: str) -> uuid.UUID:
    """The GUID in the form the DC itself writes (the extended DN control, flag 1:
    ``<GUID=8a2b3c4d-…>;<SID=…>;CN=…``): independent of the bridge's byte order."""
    connection = dc.admin()
    connection.search(dn, "(objectClass=*)", "BASE", attributes=["1.1"], controls=[EXTENDED_DN_AS_STRINGS])
    extended = connection.response[0]["dn"]
    assert extended.startswith("<GUID="), extended
    return uuid.UUID(extended[len("<GUID="):extended.index(">")])


# --- a full sync of the seeded domain ----------------------------------------------------

def test_the_flavor_is_detected_and_every_kind_of_principal_is_synced(domain):
    settings, report, store = domain
    assert report.server.flavor == "ad" and report.outcome == "ok"
    assert store.counts() == {"individual": {"total": 6 + ad_seed.BIG_GROUP_SIZE, "disabled": 3},
                              "group": {"total": 6, "disabled": 0},
                              "location": {"total": 2, "disabled": 0},
                              "resource": {"total": 1, "disabled": 0}}


def test_fields_come_from_ad_attributes(domain):
    _, _, store = domain
    alice = by_dn(store, f"CN=alice,{PEOPLE}")
    assert (alice.name, alice.email, alice.login, alice.description, alice.disabled) == (
        "Alice Anderson", "alice@example.test", "alice", "Backend developer", False)
    assert by_dn(store, f"CN=bob,{PEOPLE}").name == "bob"  # no displayName: cn


def test_ids_are_the_object_guids(domain, samba_dc):
    _, _, store = domain
    for dn in (f"CN=alice,{PEOPLE}", f"CN=Big,{GROUPS}", f"CN=Quiet Room,{ROOMS}"):
        assert by_dn(store, dn).id == "p" + object_guid(samba_dc, dn).hex


def test_rooms_and_equipment_by_exchange_marks_and_by_a_configured_filter(domain):
    _, report, store = domain
    board = by_dn(store, f"CN=Board Room,{PEOPLE}")  # filed among people, marked a room
    assert (board.type, board.source, board.email, board.disabled) == (
        PrincipalType.LOCATION, "rooms", "board@example.test", False)
    assert by_dn(store, f"CN=Projector 1,{ROOMS}").type is PrincipalType.RESOURCE
    assert by_dn(store, f"CN=Quiet Room,{ROOMS}").source == "spaces"
    assert report.sources["people"].skipped == 1  # the Board Room, not a person


@pytest.mark.parametrize("cn, why", [("dave", "uac 514"), ("erin", "accountExpires in 1970"),
                                     ("frank", "uac 66050")])
def test_disabled_and_expired_accounts_are_flagged(domain, cn, why):
    _, _, store = domain
    assert by_dn(store, f"CN={cn},{PEOPLE}").disabled, why


def test_disabled_principals_are_hidden_from_the_api(domain, api):
    _, _, store = domain
    service = Jmap(api, bearer(SERVICE_TOKEN))
    found = service.one("Principal/query", filter={"type": "individual"})["ids"]
    hidden = {by_dn(store, f"CN={cn},{PEOPLE}").id for cn in ("dave", "erin", "frank")}
    assert by_dn(store, f"CN=alice,{PEOPLE}").id in found and not hidden & set(found)
    got = service.one("Principal/get", ids=sorted(hidden))
    assert got["list"] == [] and sorted(got["notFound"]) == sorted(hidden)


def test_a_group_of_1600_has_every_member(domain):
    _, _, store = domain
    big = by_dn(store, f"CN=Big,{GROUPS}")
    expected = {by_dn(store, ad_seed.bulk_dn(n)).id for n in range(ad_seed.BIG_GROUP_SIZE)}
    assert set(big.members) == expected and len(big.members) == ad_seed.BIG_GROUP_SIZE


def test_range_retrieval_reads_a_1600_member_group_in_slices(domain, samba_dc):
    """Samba ranges only explicit requests: ask for the first 1,500 as AD would send them,
    and the reader must fetch the rest (range=1500-*) and join them under ``member``."""
    settings, _, _ = domain
    raw = samba_dc.admin()
    raw.search(f"CN=Big,{GROUPS}", "(objectClass=*)", "BASE", attributes=["member;range=0-1499"])
    assert list(raw.response[0]["raw_attributes"]) == ["member;range=0-1499"]  # really a slice
    query = SearchQuery(GROUPS, "(cn=Big)", ("objectGUID", "member;range=0-1499"), "sub",
                        frozenset({"objectguid"}))
    with open_directory(settings.directory) as directory:
        (entry,) = directory.read(query)
    members = entry.values("member")
    assert len(members) == len(set(members)) == ad_seed.BIG_GROUP_SIZE
    assert {m.lower() for m in members} == {ad_seed.bulk_dn(n).lower() for n in range(ad_seed.BIG_GROUP_SIZE)}


def test_nested_groups_through_the_server_and_cycles(domain):
    _, report, store = domain
    assert report.nesting == "in-chain" and nesting._probed[report.server.url] is True
    ids = {cn: by_dn(store, f"CN={cn},{PEOPLE}").id for cn in ("alice", "bob", "carol", "dave")}
    groups = {cn: by_dn(store, f"CN={cn},{GROUPS}").id for cn in
              ("AllStaff", "Engineering", "Backend", "CycleA", "CycleB")}
    # carol is in Engineering only through Contractors, a group no source reads
    assert store.members_of(groups["Engineering"]) == {ids["alice"], ids["bob"], ids["carol"]}
    assert store.members_of(groups["AllStaff"]) == {ids["alice"], ids["bob"], ids["carol"]}
    assert store.groups_of(ids["dave"]) == {groups["AllStaff"]}  # disabled, yet a member
    assert store.groups_of(groups["Backend"]) == {groups["Engineering"], groups["AllStaff"]}
    # CycleA ⊃ CycleB ⊃ CycleA: both end with alice and bob, and neither contains itself
    for name in ("CycleA", "CycleB"):
        assert store.members_of(groups[name]) & set(ids.values()) == {ids["alice"], ids["bob"]}
    assert {groups["CycleA"], groups["CycleB"]} <= store.groups_of(ids["alice"])


def test_effective_members_equal_the_dcs_own_in_chain_answer_for_every_group(domain, samba_dc):
    _, _, store = domain
    connection = samba_dc.admin()
    people = {p.id for p in store.principals() if p.type is PrincipalType.INDIVIDUAL and not p.disabled}
    for group in (p for p in store.principals() if p.type is PrincipalType.GROUP):
        found = connection.extend.standard.paged_search(
            ad_seed.BRIDGE, in_chain("memberOf", group.dn), attributes=["objectGUID"], paged_size=500)
        in_chain_ids = {"p" + uuid.UUID(bytes_le=item["raw_attributes"]["objectGUID"][0]).hex
                        for item in found if item["type"] == "searchResEntry"}
        assert store.members_of(group.id) == in_chain_ids & people, group.name


def test_client_closure_agrees_with_the_server_except_through_unsynced_groups(domain, samba_dc, tmp_path):
    _, _, server_store = domain
    settings = ad_settings(samba_dc, tmp_path, sync={"nested_groups": "client"})
    assert sync.run(settings).nesting == "client"
    carol = by_dn(server_store, f"CN=carol,{PEOPLE}").id
    through_contractors = {by_dn(server_store, f"CN={cn},{GROUPS}").id for cn in ("Engineering", "AllStaff")}
    with Store.open(settings.store.path) as client_store:
        principals = client_store.principals()
        assert len(principals) == len(server_store.principals())
        for principal in principals:
            extra = through_contractors if principal.id == carol else set()
            assert client_store.groups_of(principal.id) | extra == server_store.groups_of(principal.id)
        assert client_store.groups_of(carol) == set()


def test_a_source_at_the_domain_root_passes_the_reference_to_the_configuration_partition(
        samba_dc, tmp_path):
    settings = ad_settings(samba_dc, tmp_path, sources={"everyone": {"type": "individual", "base": BASE}})
    report = sync.run(settings)
    with Store.open(settings.store.path) as store:
        assert by_dn(store, f"CN=Administrator,CN=Users,{BASE}").login == "Administrator"
    assert report.sources["everyone"].read > ad_seed.BIG_GROUP_SIZE


# --- changes in the directory -----------------------------------------------------------

@pytest.fixture
def scratch(samba_dc, request):
    """An OU of this test's own (OU=<test name>,OU=Scratch…), removed afterwards."""
    connection = samba_dc.admin()
    root = f"OU=t{abs(hash(request.node.name)) % 10**8},{BASE}"
    connection.add(root, "organizationalUnit")
    yield connection, root
    connection.delete(root, controls=[("1.2.840.113556.1.4.805", True, None)])  # tree delete


def add_user(connection, dn: str, **attributes) -> None:
    connection.add(dn, "user", {"sAMAccountName": dn.split(",")[0][3:].replace(" ", "")[:20],
                                "userAccountControl": "544", **attributes})


def test_a_rename_and_a_move_to_another_ou_update_the_same_principal(samba_dc, scratch, tmp_path):
    connection, root = scratch
    for ou in ("A", "B"):
        connection.add(f"OU={ou},{root}", "organizationalUnit")
    add_user(connection, f"CN=mover,OU=A,{root}", displayName="Mover One")
    settings = ad_settings(samba_dc, tmp_path, sources={"people": {"type": "individual", "base": root}})
    sync.run(settings)
    with Store.open(settings.store.path) as store:
        before = by_dn(store, f"CN=mover,OU=A,{root}")

    connection.modify_dn(f"CN=mover,OU=A,{root}", "CN=mover2", new_superior=f"OU=B,{root}")
    connection.modify(f"CN=mover2,OU=B,{root}", {"displayName": [("MODIFY_REPLACE", ["Mover Two"])]})
    report = sync.run(settings)
    assert (report.created, report.updated, report.destroyed) == (0, 1, 0)
    with Store.open(settings.store.path) as store:
        after = by_dn(store, f"CN=mover2,OU=B,{root}")
        assert store.ids_of_dns([dn_key(f"CN=mover,OU=A,{root}")]) == set()
    assert (after.id, after.name) == (before.id, "Mover Two")


def test_a_deleted_user_is_destroyed_and_a_newly_disabled_one_flagged(samba_dc, scratch, tmp_path):
    connection, root = scratch
    for n in range(6):
        add_user(connection, f"CN=u{n},{root}")
    settings = ad_settings(samba_dc, tmp_path, sources={"people": {"type": "individual", "base": root}})
    sync.run(settings)
    with Store.open(settings.store.path) as store:
        gone = by_dn(store, f"CN=u0,{root}").id

    connection.delete(f"CN=u0,{root}")
    connection.modify(f"CN=u1,{root}", {"userAccountControl": [("MODIFY_REPLACE", ["546"])]})
    report = sync.run(settings)
    assert (report.destroyed, report.updated) == (1, 1)
    with Store.open(settings.store.path) as store:
        assert store.principal(gone) is None
        assert by_dn(store, f"CN=u1,{root}").disabled


# --- incremental sync (uSNChanged) ------------------------------------------------------

def ad_contents(path) -> tuple[list, dict]:
    with Store.open(path) as store:
        principals = sorted(store.principals(), key=lambda p: p.id)
        return principals, {p.id: store.groups_of(p.id) for p in principals}


@pytest.fixture(params=["dirsync", "usn", "usn-ordinary-account"])
def ad_reader(request, monkeypatch):
    """How incremental AD runs read: DirSync (the administrator holds the replication
    right), uSNChanged with tombstones (as on a DC that does not offer DirSync), and an
    ordinary account (DirSync refused: uSNChanged, and no tombstones to see)."""
    if request.param == "usn":
        monkeypatch.setattr(ServerInfo, "supports_dirsync", property(lambda info: False))
    ordinary = {"bind_dn": "alice@example.test", "bind_password": USER_PASSWORD}
    return request.param, (ordinary if request.param == "usn-ordinary-account" else {})


def test_incremental_runs_end_where_a_full_sync_does(samba_dc, scratch, tmp_path, ad_reader):
    reader, account = ad_reader
    connection, root = scratch
    for ou in ("People", "Groups", "Elsewhere"):
        connection.add(f"OU={ou},{root}", "organizationalUnit")
    people, groups = f"OU=People,{root}", f"OU=Groups,{root}"
    for n in range(8):
        add_user(connection, f"CN=i{n},{people}", displayName=f"Person {n}")
    connection.add(f"CN=team,{groups}", "group", {"member": [f"CN=i{n},{people}" for n in range(4)]})
    connection.add(f"CN=all,{groups}", "group", {"member": [f"CN=team,{groups}", f"CN=i7,{people}"]})
    connection.add(f"CN=doomed,{groups}", "group", {"member": [f"CN=i5,{people}"]})
    soon = epoch_to_filetime(time.time() + 2)
    connection.modify(f"CN=i6,{people}", {"accountExpires": [("MODIFY_REPLACE", [str(soon)])]})
    sources = {"people": {"type": "individual", "base": people}, "groups": {"type": "group", "base": groups}}
    settings = ad_settings(samba_dc, tmp_path, sources=sources, directory=account)
    assert sync.run(settings).mode == "full"
    with Store.open(settings.store.path) as store:
        via = {c.position.get("via", c.reader) for c in store.cursors().values()}
    assert via == {"usn" if reader.startswith("usn") else "dirsync"}

    connection.modify(f"CN=i0,{people}", {"displayName": [("MODIFY_REPLACE", ["Renamed Zero"])]})
    connection.modify_dn(f"CN=i1,{people}", "CN=i1b")                                  # rename
    connection.modify_dn(f"CN=i2,{people}", "CN=i2", new_superior=f"OU=Elsewhere,{root}")  # out of scope
    connection.delete(f"CN=i3,{people}")                                                 # tombstone
    connection.modify(f"CN=i4,{people}", {"userAccountControl": [("MODIFY_REPLACE", ["546"])]})
    add_user(connection, f"CN=i8,{people}")
    connection.modify(f"CN=team,{groups}", {"member": [("MODIFY_ADD", [f"CN=i8,{people}"])]})
    connection.modify(f"CN=all,{groups}", {"member": [("MODIFY_DELETE", [f"CN=i7,{people}"])]})
    connection.delete(f"CN=doomed,{groups}")
    time.sleep(max(0.0, filetime_to_epoch(soon) - time.time()) + 0.5)  # i6 expires, unchanged

    report = sync.run(settings, force=True)

    assert report.mode == "incremental"
    assert {s.reader for s in report.sources.values()} == {"usn" if reader == "usn" else "dirsync"}
    assert report.sources["people"].read < 8  # only what changed was read
    (tmp_path / "fresh").mkdir()
    fresh = ad_settings(samba_dc, tmp_path / "fresh", sources=sources, directory=account)
    sync.run(fresh, full=True)
    assert ad_contents(settings.store.path) == ad_contents(fresh.store.path)
    with Store.open(settings.store.path) as store:
        assert by_dn(store, f"CN=i6,{people}").disabled  # expired with no change of its own
        assert by_dn(store, f"CN=i4,{people}").disabled
        assert store.ids_of_dns([dn_key(f"CN=i2,OU=Elsewhere,{root}")]) == set()
        assert len(store.principals()) == 7 + 2  # i0 i1b i4 i5 i6 i7 i8; team, all


def test_the_in_chain_probe_works_when_every_synced_group_only_nests_outside_groups(
        samba_dc, scratch, tmp_path):
    """Top ⊃ Inner ⊃ u1 with Inner in an OU no source reads: no synced group has a synced
    direct member to probe with, so the probe uses Top and Inner."""
    connection, root = scratch
    for ou in ("P", "G", "X"):
        connection.add(f"OU={ou},{root}", "organizationalUnit")
    add_user(connection, f"CN=u1,OU=P,{root}")
    connection.add(f"CN=Inner,OU=X,{root}", "group", {"member": [f"CN=u1,OU=P,{root}"]})
    connection.add(f"CN=Top,OU=G,{root}", "group", {"member": [f"CN=Inner,OU=X,{root}"]})
    sources = {"people": {"type": "individual", "base": f"OU=P,{root}"},
               "groups": {"type": "group", "base": f"OU=G,{root}"}}
    settings = ad_settings(samba_dc, tmp_path, sources=sources)
    nesting._probed.clear()  # as in a fresh process

    report = sync.run(settings)

    assert report.nesting == "in-chain"
    with Store.open(settings.store.path) as store:
        top, u1 = by_dn(store, f"CN=Top,OU=G,{root}"), by_dn(store, f"CN=u1,OU=P,{root}")
        assert top.members == () and store.groups_of(u1.id) == {top.id}


def test_an_account_that_cannot_see_tombstones_still_learns_of_deletions(samba_dc, scratch, tmp_path):
    """An ordinary domain user may not list CN=Deleted Objects: the reader then names
    what is still there instead."""
    connection, root = scratch
    for n in range(3):
        add_user(connection, f"CN=t{n},{root}")
    settings = ad_settings(samba_dc, tmp_path, sources={"people": {"type": "individual", "base": root}},
                           directory={"bind_dn": "alice@example.test", "bind_password": USER_PASSWORD})
    sync.run(settings)
    connection.delete(f"CN=t1,{root}")

    report = sync.run(settings, force=True)  # one of three is more than the valve's 20 %

    assert (report.mode, report.destroyed) == ("incremental", 1)
    with Store.open(settings.store.path) as store:
        assert store.ids_of_dns([dn_key(f"CN=t1,{root}")]) == set()


def test_a_cursor_from_another_domain_controller_means_a_full_read(samba_dc, scratch, tmp_path, monkeypatch):
    monkeypatch.setattr(ServerInfo, "supports_dirsync", property(lambda info: False))
    connection, root = scratch
    add_user(connection, f"CN=solo,{root}")
    settings = ad_settings(samba_dc, tmp_path, sources={"people": {"type": "individual", "base": root}})
    sync.run(settings)
    assert sync.run(settings).mode == "incremental"
    with sqlite3.connect(settings.store.path) as db:
        position = json.loads(db.execute("SELECT position FROM sync_cursors").fetchone()[0])
        position["invocation"] = "00" * 16  # as after a restore from backup
        db.execute("UPDATE sync_cursors SET position = ?", (json.dumps(position),))

    assert sync.run(settings).mode == "full"
    assert sync.run(settings).mode == "incremental"


# --- authentication ---------------------------------------------------------------------

@pytest.mark.parametrize("login", ["alice", "ALICE", "alice@example.test", "EXAMPLE\\alice",
                                   "example\\Alice"])
def test_login_by_sam_account_name_upn_or_down_level_name(api, domain, login):
    _, _, store = domain
    response = api.get("/.well-known/jmap", headers=basic(login, USER_PASSWORD))
    assert response.status_code == 200, response.text
    assert response.json()["username"] == login
    own = by_dn(store, f"CN=alice,{PEOPLE}").id
    assert Jmap(api, basic(login, USER_PASSWORD)).one("Principal/get", ids=[own])["list"]


@pytest.mark.parametrize("login, password, why", [
    ("alice", "wrong", "wrong password"),
    ("OTHER\\alice", USER_PASSWORD, "names domain"),
    ("dave", USER_PASSWORD, "account disabled"),
    ("erin", USER_PASSWORD, "account expired"),
    ("nobody", USER_PASSWORD, "no such login"),
    ("boardroom", USER_PASSWORD, "no such login"),  # a room mailbox is not a person
])
def test_a_wrong_password_a_foreign_domain_and_disabled_or_expired_accounts_cannot_log_in(
        api, caplog, login, password, why):
    with caplog.at_level(logging.INFO):
        response = api.get("/.well-known/jmap", headers=basic(login, password))
    assert response.status_code == 401
    assert why in caplog.text  # the operator's log says why; the client only "invalid credentials"
    assert why not in response.text


# --- TLS with the domain's CA -----------------------------------------------------------

def test_ldaps_and_start_tls_verify_the_dc_against_the_domain_ca(samba_dc, tmp_path):
    ca = str(samba_dc.tls.ca)
    for directory in ({"urls": [samba_dc.ldaps_url], "ca_file": ca},
                      {"urls": [samba_dc.url], "start_tls": True, "ca_file": ca}):
        settings = ad_settings(samba_dc, tmp_path, directory=directory)
        with open_directory(settings.directory) as connected:
            assert connected.info.flavor == "ad"
            connected.check_password(f"CN=alice,{PEOPLE}", USER_PASSWORD)
            with pytest.raises(DirectoryAuthError, match="wrong password"):
                connected.check_password(f"CN=alice,{PEOPLE}", "wrong")


def test_basic_login_binds_over_ldaps_with_the_domain_ca(samba_dc, tmp_path):
    settings = ad_settings(samba_dc, tmp_path, directory={
        "urls": [samba_dc.ldaps_url], "ca_file": str(samba_dc.tls.ca)})
    with TestClient(create_app(settings)) as client:
        session = client.get("/.well-known/jmap", headers=basic("EXAMPLE\\bob", USER_PASSWORD))
        assert session.status_code == 200
        assert client.get("/.well-known/jmap", headers=basic("bob", "wrong")).status_code == 401


def test_a_dc_certificate_from_another_ca_is_refused(samba_dc, tmp_path, tls_files):
    settings = ad_settings(samba_dc, tmp_path, directory={
        "urls": [samba_dc.ldaps_url], "ca_file": str(tls_files["other"].ca)})
    with pytest.raises(DirectoryTLSError, match="CERTIFICATE_VERIFY_FAILED"):
        open_directory(settings.directory)
