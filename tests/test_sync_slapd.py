"""Full sync against a real slapd: what lands in the store, and what the change log says."""

from __future__ import annotations

import signal
import time
import uuid

import ldap3
import pytest

from bridge import sync
from bridge.errors import DirectoryError, DirectorySearchError, DirectoryTimeout, SyncAborted
from bridge.mapper import principal_id
from bridge.model import PrincipalType
from bridge.store import Store
from tests.conftest import standard_sources
from tests.support import ldif
from tests.support.changes import changes_since
from tests.support.slapd import READER_DN, READER_PASSWORD, SUFFIX, free_port


def store_of(settings) -> Store:
    return Store.open(settings.store.path)


def by_dn(store: Store) -> dict:
    return {p.dn: p for p in store.principals()}


def entry_uuid(slapd, dn: str) -> str:
    admin = slapd.admin()
    admin.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
    return admin.entries[0].entryUUID.value


def test_full_sync_mirrors_people_groups_rooms_and_equipment(slapd, settings):
    report = sync.run(settings)

    assert report.outcome == "ok"
    assert report.seen == sum(ldif.STANDARD_COUNTS.values())
    assert report.created == report.seen
    assert (report.updated, report.destroyed, report.skipped) == (0, 0, 0)
    with store_of(settings) as store:
        assert store.counts() == {"group": {"total": 6, "disabled": 0},
                                  "individual": {"total": 25, "disabled": 2},
                                  "location": {"total": 2, "disabled": 0},
                                  "resource": {"total": 1, "disabled": 0}}
        found = by_dn(store)
    alice = found[ldif.person_dn("alice")]
    assert (alice.name, alice.email, alice.description, alice.time_zone, alice.login) == \
        ("Alice L.", "alice@example.org", "Finance", "Europe/Paris", "alice")
    room = found[f"cn=Room 4B,{ldif.ROOMS}"]
    assert (room.type, room.name, room.description) == \
        (PrincipalType.LOCATION, "Room 4B", "Fourth floor, 12 seats")
    projector = found[f"cn=Projector 1,{ldif.EQUIPMENT}"]
    assert (projector.type, projector.description) == (PrincipalType.RESOURCE, "Beamer")


def test_ids_derive_from_entry_uuid_not_from_the_dn(slapd, settings):
    sync.run(settings)
    dn = ldif.person_dn("alice")
    with store_of(settings) as store:
        assert by_dn(store)[dn].id == principal_id(uuid.UUID(entry_uuid(slapd, dn)))


def test_invalid_email_and_time_zone_become_null_and_count_as_warnings(slapd, settings):
    report = sync.run(settings)

    assert report.warnings == 2
    with store_of(settings) as store:
        bob = by_dn(store)[ldif.person_dn("bob")]
    assert (bob.email, bob.time_zone) == (None, None)


def test_member_member_uid_and_unique_member_resolve_to_ids(slapd, settings):
    report = sync.run(settings)

    with store_of(settings) as store:
        found = by_dn(store)
    ids = {dn.split(",")[0].split("=")[1]: p.id for dn, p in found.items()}
    assert set(found[ldif.group_dn("staff")].members) == {ids["alice"], ids["bob"]}
    assert found[ldif.group_dn("admins")].members == (ids["alice"],)
    assert set(found[ldif.group_dn("posix")].members) == {ids["bob"], ids["erin"]}
    assert found[ldif.group_dn("empty")].members == ()
    assert set(found[ldif.person_dn("alice")].member_of) == {ids["staff"], ids["admins"], ids["inner"]}
    assert report.resolution.unresolved_members == 1  # uid=ghost is not in the directory


def test_nested_group_cycle_terminates_with_the_effective_closure(slapd, settings):
    sync.run(settings)

    with store_of(settings) as store:
        found = by_dn(store)
        ids = {dn.split(",")[0].split("=")[1]: p.id for dn, p in found.items()}
        groups = {name: store.groups_of(ids[name]) for name in ("alice", "erin", "outer", "inner")}
    assert groups["alice"] == {ids["staff"], ids["admins"], ids["inner"], ids["outer"]}
    assert groups["erin"] == {ids["posix"], ids["outer"], ids["inner"]}
    assert (groups["outer"], groups["inner"]) == ({ids["inner"]}, {ids["outer"]})


def test_disabled_by_ppolicy_lock_and_by_the_disabled_filter(slapd, settings):
    sync.run(settings)
    with store_of(settings) as store:
        found = by_dn(store)
    assert found[ldif.person_dn("carol")].disabled  # pwdAccountLockedTime
    assert found[ldif.person_dn("dave")].disabled  # employeeType=former
    assert not found[ldif.person_dn("alice")].disabled

    slapd.admin().modify(ldif.person_dn("carol"), {"pwdAccountLockedTime": [(ldap3.MODIFY_DELETE, [])]})
    report = sync.run(settings)

    assert (report.created, report.updated, report.destroyed) == (0, 1, 0)
    with store_of(settings) as store:
        carol = by_dn(store)[ldif.person_dn("carol")]
        assert not carol.disabled
        assert store.history(carol.id)[-1].detail == {"disabled": [True, False]}


def test_second_identical_run_adds_no_change_rows(slapd, settings):
    first = sync.run(settings)
    second = sync.run(settings)

    assert (second.created, second.updated, second.destroyed) == (0, 0, 0)
    assert second.state == first.state
    with store_of(settings) as store:
        assert store.modseq() == first.created
        assert [run.outcome for run in store.runs()] == ["ok", "ok"]


def test_modify_gives_one_update_with_the_changed_fields(slapd, settings):
    sync.run(settings)
    with store_of(settings) as store:
        before = store.modseq()
    slapd.admin().modify(ldif.person_dn("alice"), {
        "mail": [(ldap3.MODIFY_REPLACE, ["alice.liddell@example.org"])],
        "description": [(ldap3.MODIFY_REPLACE, ["Treasury"])]})

    report = sync.run(settings)

    assert (report.created, report.updated, report.destroyed) == (0, 1, 0)
    with store_of(settings) as store:
        alice = by_dn(store)[ldif.person_dn("alice")]
        changes = changes_since(store, before)
        last = store.history(alice.id)[-1]
    assert (changes.created, changes.updated, changes.destroyed) == ((), (alice.id,), ())
    assert last.kind == "updated"
    assert last.detail == {"email": ["alice@example.org", "alice.liddell@example.org"],
                           "description": ["Finance", "Treasury"]}


def test_modrdn_is_an_update_of_the_same_id(slapd, settings):
    sync.run(settings)
    with store_of(settings) as store:
        old = by_dn(store)[ldif.person_dn("erin")]
    slapd.admin().modify_dn(ldif.person_dn("erin"), "uid=erin.plain")

    report = sync.run(settings)

    assert (report.created, report.destroyed) == (0, 0)
    with store_of(settings) as store:
        renamed = store.principal(old.id)
        rows = store.history(old.id)
    assert renamed.dn == ldif.person_dn("erin.plain")
    assert renamed.login == "erin.plain"
    assert [row.kind for row in rows] == ["created", "updated"]
    assert rows[-1].detail["dn"] == [ldif.person_dn("erin"), ldif.person_dn("erin.plain")]


def test_move_to_another_ou_is_one_update_of_the_same_id(slapd, settings, make_settings):
    sources = {"people": {"type": "individual", "base": SUFFIX,
                          "filter": "(objectClass=inetOrgPerson)"}}
    settings = make_settings(slapd, sources=sources)
    sync.run(settings)
    with store_of(settings) as store:
        old = by_dn(store)[ldif.person_dn("user001")]
    slapd.admin().modify_dn(ldif.person_dn("user001"), "uid=user001", new_superior=ldif.FORMER)

    report = sync.run(settings)

    assert (report.created, report.updated, report.destroyed) == (0, 1, 0)
    with store_of(settings) as store:
        assert store.principal(old.id).dn == ldif.person_dn("user001", ldif.FORMER)
        assert [row.kind for row in store.history(old.id)] == ["created", "updated"]


def test_delete_leaves_a_tombstone_in_the_change_log(slapd, settings):
    sync.run(settings)
    with store_of(settings) as store:
        gone = by_dn(store)[ldif.person_dn("user020")]
        before = store.modseq()
    slapd.admin().delete(ldif.person_dn("user020"))

    report = sync.run(settings)

    assert report.destroyed == 1
    with store_of(settings) as store:
        assert store.principal(gone.id) is None
        assert changes_since(store, before).destroyed == (gone.id,)
        tombstone = store.history(gone.id)[-1]
    assert tombstone.kind == "destroyed"
    assert tombstone.detail["dn"] == ldif.person_dn("user020")
    assert tombstone.detail["name"] == "User 020"


def test_membership_change_updates_the_group_and_the_member(slapd, settings):
    sync.run(settings)
    new_member = ldif.person_dn("user001")
    slapd.admin().modify(ldif.group_dn("staff"), {"member": [(ldap3.MODIFY_ADD, [new_member])]})

    report = sync.run(settings)

    assert (report.created, report.updated, report.destroyed) == (0, 2, 0)
    with store_of(settings) as store:
        found = by_dn(store)
        staff, user = found[ldif.group_dn("staff")], found[ldif.person_dn("user001")]
        assert user.id in staff.members
        assert staff.id in user.member_of
        assert store.history(staff.id)[-1].detail == {"members": {"added": [user.id], "removed": []}}


def test_paging_reads_more_entries_than_the_servers_size_limit(slapd, settings):
    reader = ldap3.Connection(ldap3.Server("127.0.0.1", port=slapd.port), READER_DN, READER_PASSWORD,
                              auto_bind=True)
    reader.search(ldif.PEOPLE, "(objectClass=inetOrgPerson)", attributes=["uid"])
    assert reader.result["description"] == "sizeLimitExceeded"  # the limit is real ...

    report = sync.run(settings)

    assert report.sources["people"].read == 25  # ... and paging gets past it


def test_a_size_limit_on_paged_searches_aborts_and_deletes_nothing(slapd, settings):
    sync.run(settings)
    with store_of(settings) as store:
        before = store.principals()
    slapd.stop()
    slapd.config.write_text(slapd.config.read_text().replace("size.prtotal=unlimited", "size.prtotal=12"))
    slapd.start()

    with pytest.raises(DirectorySearchError, match="size limit") as raised:
        sync.run(settings)

    assert raised.value.result_code == 4
    with store_of(settings) as store:
        assert store.principals() == before
        assert store.runs()[0].outcome == "failed"


def test_failover_to_the_next_url_when_the_first_is_dead(slapd, make_settings):
    dead = f"ldap://127.0.0.1:{free_port()}"
    settings = make_settings(slapd, directory={"urls": [dead, slapd.url], "connect_timeout": "2s"})

    report = sync.run(settings)

    assert report.outcome == "ok"
    assert report.server.url == slapd.url


def test_slapd_stopped_mid_run_deletes_nothing(slapd, settings):
    sync.run(settings)
    with store_of(settings) as store:
        before, modseq = store.principals(), store.modseq()

    def kill_after_first_page(source: str, read: int) -> None:
        if source == "people" and read == 5:
            slapd.kill()

    with pytest.raises(DirectoryError):
        sync.run(settings, progress=kill_after_first_page)

    with store_of(settings) as store:
        assert store.principals() == before
        assert store.modseq() == modseq
        assert store.runs()[0].outcome == "failed"


def test_deletions_above_the_ratio_abort_unless_forced(slapd, settings):
    sync.run(settings)
    with store_of(settings) as store:
        modseq = store.modseq()
    admin = slapd.admin()
    for n in range(15, 21):  # 6 of 25 people = 24% > 20%
        admin.delete(ldif.person_dn(f"user{n:03d}"))

    with pytest.raises(SyncAborted, match=r"6 of 25 principals \(24%\)"):
        sync.run(settings)
    with store_of(settings) as store:
        assert store.modseq() == modseq
        assert store.runs()[0].outcome == "aborted"

    forced = sync.run(settings, force=True)
    assert forced.destroyed == 6


def test_deletions_above_the_count_limit_abort(slapd, make_settings):
    settings = make_settings(slapd, sync={"max_delete_count": 2, "max_delete_ratio": 1.0})
    sync.run(settings)
    admin = slapd.admin()
    for n in range(18, 21):
        admin.delete(ldif.person_dn(f"user{n:03d}"))

    with pytest.raises(SyncAborted, match="more than max_delete_count 2"):
        sync.run(settings)


def test_an_attribute_hidden_from_the_service_account_aborts_unless_forced(slapd, settings):
    """An ACL change that hides mail returns every person whole but without an email: nothing
    is destroyed, yet applying it would empty every address."""
    sync.run(settings)
    with store_of(settings) as store:
        modseq = store.modseq()
        had = sum(1 for p in store.principals() if p.email and p.source == "people")
    slapd.hide_from_the_reader("mail")

    with pytest.raises(SyncAborted, match=rf"'people': {had} of the {had} principals read with an email "
                                          r"would lose it \(100%\), more than max_empty_ratio 50%"):
        sync.run(settings)
    with store_of(settings) as store:
        assert store.modseq() == modseq
        assert store.runs()[0].outcome == "aborted"

    assert sync.run(settings, force=True).updated == had
    with store_of(settings) as store:
        assert not any(p.email for p in store.principals() if p.source == "people")


def test_group_members_hidden_from_the_service_account_abort(slapd, make_settings):
    settings = make_settings(slapd, sync={"max_empty_grace": 0})
    sync.run(settings)
    slapd.hide_from_the_reader("member")  # staff, outer and inner; not uniqueMember or memberUid

    with pytest.raises(SyncAborted, match=r"'groups': 3 of the 5 principals read with members would lose it "
                                          r"\(60%\)"):
        sync.run(settings)


def test_a_few_emptied_fields_pass_the_grace(slapd, settings):
    sync.run(settings)
    admin = slapd.admin()
    admin.modify(ldif.person_dn("alice"), {"description": [(ldap3.MODIFY_DELETE, [])],
                                           "l": [(ldap3.MODIFY_DELETE, [])]})
    for n in range(1, 4):  # 3 of 20 generated people lose their address: within the grace of 10
        admin.modify(ldif.person_dn(f"user{n:03d}"), {"mail": [(ldap3.MODIFY_DELETE, [])]})

    assert sync.run(settings).updated == 4


def test_a_small_deletion_passes_the_ratio_grace(slapd, make_settings):
    settings = make_settings(slapd, sync={"max_delete_ratio_grace": 1})
    sync.run(settings)
    slapd.admin().delete(f"cn=Boardroom,{ldif.ROOMS}")  # 1 of 2 rooms = 50%, within the grace

    assert sync.run(settings).destroyed == 1


def test_a_source_that_comes_back_empty_aborts(slapd, settings):
    sync.run(settings)
    admin = slapd.admin()
    admin.delete(f"cn=Room 4B,{ldif.ROOMS}")
    admin.delete(f"cn=Boardroom,{ldif.ROOMS}")

    with pytest.raises(SyncAborted, match="source 'rooms' returned no entries but has 2"):
        sync.run(settings)


def test_a_source_removed_from_the_configuration_aborts_unless_forced(slapd, settings, make_settings):
    sync.run(settings)
    sources = {name: table for name, table in standard_sources().items() if name != "equipment"}
    narrowed = make_settings(slapd, sources=sources)

    with pytest.raises(SyncAborted, match="source 'equipment' is no longer configured"):
        sync.run(narrowed)
    assert sync.run(narrowed, force=True).destroyed == 1


def test_a_missing_search_base_is_an_error_not_an_empty_source(slapd, make_settings):
    sources = {"people": {"type": "individual", "base": f"ou=nobody,{SUFFIX}"}}
    settings = make_settings(slapd, sources=sources)

    with pytest.raises(DirectorySearchError, match="search base does not exist"):
        sync.run(settings)


def test_plan_writes_nothing(slapd, settings, tmp_path):
    plan = sync.run(settings, plan_only=True)
    assert plan.outcome == "planned" and plan.created == 34
    assert not (tmp_path / "bridge.db").exists()  # not even an empty database

    sync.run(settings)
    slapd.admin().delete(ldif.person_dn("user020"))
    slapd.admin().modify(ldif.person_dn("bob"), {"description": [(ldap3.MODIFY_ADD, ["Builder"])]})
    with store_of(settings) as store:
        before = (store.principals(), store.modseq(), store.runs())
    database = (tmp_path / "bridge.db").read_bytes()

    plan = sync.run(settings, plan_only=True)

    assert (plan.created, plan.updated, plan.destroyed) == (0, 1, 1)
    assert [s.dn for s in plan.plan.samples["destroyed"]] == [ldif.person_dn("user020")]
    assert plan.plan.samples["updated"][0].fields == ("description",)
    assert (tmp_path / "bridge.db").read_bytes() == database
    with store_of(settings) as store:
        assert (store.principals(), store.modseq(), store.runs()) == before


def test_plan_reports_when_a_real_run_would_be_refused(slapd, settings):
    sync.run(settings)
    for n in range(10, 21):
        slapd.admin().delete(ldif.person_dn(f"user{n:03d}"))

    plan = sync.run(settings, plan_only=True)

    assert plan.destroyed == 11
    assert "would be destroyed" in plan.would_abort


def test_an_entry_in_two_sources_is_kept_by_the_first(slapd, make_settings):
    sources = {"people": {"type": "individual", "base": ldif.PEOPLE},
               "everyone": {"type": "other", "base": SUFFIX,
                            "filter": "(objectClass=inetOrgPerson)"}}
    report = sync.run(make_settings(slapd, sources=sources))

    assert report.created == 25
    assert report.skipped == 25
    assert len(report.resolution.duplicates) == 25


def test_entries_without_the_identifier_are_skipped_and_counted(slapd, make_settings):
    settings = make_settings(slapd, directory={"id_attribute": "employeeNumber"})
    slapd.admin().modify(ldif.person_dn("alice"), {"employeeNumber": [(ldap3.MODIFY_ADD, ["1001"])]})

    report = sync.run(settings)

    assert report.created == 1
    assert report.skipped == report.seen - 1


def test_member_uid_matches_the_login_without_regard_to_case(slapd, settings):
    slapd.admin().modify(ldif.group_dn("posix"), {"memberUid": [(ldap3.MODIFY_ADD, ["USER001"])]})

    sync.run(settings)

    with store_of(settings) as store:
        found = by_dn(store)
    assert found[ldif.person_dn("user001")].id in found[ldif.group_dn("posix")].members


def test_a_server_that_stops_answering_times_out_and_deletes_nothing(slapd, make_settings):
    settings = make_settings(slapd, directory={"response_timeout": "1s"})
    sync.run(settings)
    slapd.process.send_signal(signal.SIGSTOP)  # the socket accepts, nothing answers
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryTimeout, match="no answer within the response timeout"):
            sync.run(settings)
        assert time.monotonic() - started < 10
    finally:
        slapd.process.send_signal(signal.SIGCONT)
    with store_of(settings) as store:
        assert store.runs()[0].outcome == "failed"
        assert len(store.principals()) == sum(ldif.STANDARD_COUNTS.values())


def test_a_lockout_after_failed_binds_does_not_disable_the_account(slapd, settings):
    slapd.admin().modify(ldif.person_dn("erin"),
                         {"pwdAccountLockedTime": [(ldap3.MODIFY_ADD, ["20261122010203Z"])]})

    sync.run(settings)

    with store_of(settings) as store:
        assert not by_dn(store)[ldif.person_dn("erin")].disabled


def test_a_referral_inside_a_source_is_an_error_not_a_missing_branch(slapd, settings):
    sync.run(settings)
    with store_of(settings) as store:
        before = store.principals()
    slapd.admin().add(f"ou=branch,{ldif.PEOPLE}", ["referral", "extensibleObject"],
                      {"ou": "branch", "ref": f"ldap://ldap.branch.example/ou=branch,{ldif.PEOPLE}"})

    with pytest.raises(DirectorySearchError, match="refers part of this subtree to ldap://ldap.branch"):
        sync.run(settings)

    with store_of(settings) as store:
        assert store.principals() == before


def test_the_default_valve_refuses_losing_one_of_two_rooms(slapd, make_settings):
    settings = make_settings(slapd, sync={})  # every [sync] option at its default
    sync.run(settings)
    slapd.admin().delete(f"cn=Boardroom,{ldif.ROOMS}")

    with pytest.raises(SyncAborted, match=r"1 of 2 principals \(50%\)"):
        sync.run(settings)
