"""Incremental sync against a real slapd: a random sequence of directory changes, synced
incrementally run after run, must leave the store exactly as a fresh full sync of the same
directory does — with RFC 4533 (with and without a session log) and with the
modifyTimestamp reader. Plus the ways a run falls back to a full read."""

from __future__ import annotations

import base64
import json
import random
import sqlite3
import time

import ldap3
import pytest

from bridge import sync
from bridge.errors import SyncAborted
from bridge.store import Store
from tests.conftest import SIZE_LIMIT, standard_sources
from tests.support import ldif
from tests.support.slapd import Slapd

FUTURE_COOKIE = b"rid=000,csn=29991231000000.000000Z#000000#000#000000"
READERS = {None: "timestamp", 0: "syncrepl", 50: "syncrepl"}


@pytest.fixture(params=[None, 0, 50], ids=["timestamp", "syncrepl-present", "syncrepl-sessionlog"])
def server(request, tmp_path) -> Slapd:
    """slapd without syncprov, with syncprov and no session log (every refresh has a
    present phase), and with a session log (deletes are named)."""
    slapd = Slapd(tmp_path / "slapd", size_limit=SIZE_LIMIT, syncprov=request.param)
    slapd.load(ldif.standard_directory())
    slapd.start()
    slapd.reader = READERS[request.param]
    yield slapd
    slapd.cleanup()


class Directory:
    """Random changes to the test directory, through the rootdn, remembering what exists."""

    def __init__(self, slapd: Slapd, rng: random.Random) -> None:
        self.admin = slapd.admin()
        self.rng = rng
        self.people = {ldif.person_dn(uid) for uid in ("alice", "bob", "carol", "dave", "erin")}
        self.people |= {ldif.person_dn(f"user{n:03d}") for n in range(1, 21)}
        self.away: set[str] = set()  # people moved out of every source
        self.groups = {ldif.group_dn(cn) for cn in ("staff", "outer", "inner", "empty")}
        self.made = 0
        self.log: list[str] = []

    def step(self) -> None:
        operation = self.rng.choice([self.add_person, self.modify_person, self.modify_person,
                                     self.rename_person, self.move_away, self.move_back,
                                     self.delete_person, self.add_member, self.add_member,
                                     self.remove_member, self.posix_member, self.add_group,
                                     self.rename_group, self.delete_group, self.modify_room])
        operation()

    def _pick(self, dns: set[str]) -> str | None:
        return self.rng.choice(sorted(dns)) if dns else None

    def _new_uid(self) -> str:
        self.made += 1
        return f"new{self.made:03d}"

    def add_person(self) -> None:
        uid = self._new_uid()
        extra = {"employeeType": "former"} if self.rng.random() < 0.3 else {}
        dn = ldif.person_dn(uid)
        self.admin.add(dn, ["inetOrgPerson"], {"uid": uid, "cn": f"New {uid}", "sn": uid,
                                               "mail": f"{uid}@example.org", **extra})
        self.people.add(dn)
        self.log.append(f"add {dn}")

    def modify_person(self) -> None:
        if not (dn := self._pick(self.people)):
            return
        attribute, value = self.rng.choice([
            ("displayName", f"Shown {self.rng.randrange(1000)}"),
            ("description", f"Team {self.rng.randrange(1000)}"),
            ("mail", f"m{self.rng.randrange(1000)}@example.org"),
            ("l", self.rng.choice(["Europe/Berlin", "America/New_York"])),
            ("employeeType", self.rng.choice(["former", "staff"])),
        ])
        self.admin.modify(dn, {attribute: [(ldap3.MODIFY_REPLACE, [value])]})
        self.log.append(f"modify {dn} {attribute}={value}")

    def rename_person(self) -> None:
        if not (dn := self._pick(self.people)):
            return
        uid = self._new_uid()
        self.admin.modify_dn(dn, f"uid={uid}", delete_old_dn=True)
        self.people.discard(dn)
        self.people.add(ldif.person_dn(uid))
        self.log.append(f"rename {dn} -> {uid}")

    def move_away(self) -> None:
        if not (dn := self._pick(self.people)):
            return
        self.admin.modify_dn(dn, dn.split(",")[0], new_superior=ldif.FORMER)
        self.people.discard(dn)
        self.away.add(dn.split(",")[0] + "," + ldif.FORMER)
        self.log.append(f"move away {dn}")

    def move_back(self) -> None:
        if not (dn := self._pick(self.away)):
            return
        self.admin.modify_dn(dn, dn.split(",")[0], new_superior=ldif.PEOPLE)
        self.away.discard(dn)
        self.people.add(dn.split(",")[0] + "," + ldif.PEOPLE)
        self.log.append(f"move back {dn}")

    def delete_person(self) -> None:
        if not (dn := self._pick(self.people)):
            return
        self.admin.delete(dn)
        self.people.discard(dn)
        self.log.append(f"delete {dn}")

    def add_member(self) -> None:
        group, member = self._pick(self.groups), self._pick(self.people | self.groups)
        if group and member and group != member:
            try:
                self.admin.modify(group, {"member": [(ldap3.MODIFY_ADD, [member])]})
            except ldap3.core.exceptions.LDAPAttributeOrValueExistsResult:
                return
            self.log.append(f"member {group} += {member}")

    def remove_member(self) -> None:
        if not (group := self._pick(self.groups)):
            return
        self.admin.search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        members = [m for m in self.admin.entries[0].member.values if m]
        if len(members) > 1:
            member = self.rng.choice(members)
            self.admin.modify(group, {"member": [(ldap3.MODIFY_DELETE, [member])]})
            self.log.append(f"member {group} -= {member}")

    def posix_member(self) -> None:
        uid = self.rng.choice(["alice", "carol", "erin", "user001", f"new{self.rng.randrange(1, 9):03d}"])
        change = self.rng.choice([ldap3.MODIFY_ADD, ldap3.MODIFY_DELETE])
        try:
            self.admin.modify(ldif.group_dn("posix"), {"memberUid": [(change, [uid])]})
        except ldap3.core.exceptions.LDAPException:
            return  # already there / not there
        self.log.append(f"posix {change} {uid}")

    def add_group(self) -> None:
        cn = f"team{self._new_uid()}"
        members = self.rng.sample(sorted(self.people), min(3, len(self.people)))
        self.admin.add(ldif.group_dn(cn), ["groupOfNames"], {"cn": cn, "member": members or [""]})
        self.groups.add(ldif.group_dn(cn))
        self.log.append(f"add group {cn}")

    def rename_group(self) -> None:
        """A group that other groups list by DN takes a new one (they still name the old)."""
        if not (group := self._pick(self.groups - {ldif.group_dn("staff")})):
            return
        cn = f"renamed{self._new_uid()}"
        self.admin.modify_dn(group, f"cn={cn}", delete_old_dn=True)
        self.groups.discard(group)
        self.groups.add(ldif.group_dn(cn))
        self.log.append(f"rename group {group} -> {cn}")

    def delete_group(self) -> None:
        if not (group := self._pick(self.groups - {ldif.group_dn("staff")})):
            return
        self.admin.delete(group)
        self.groups.discard(group)
        self.log.append(f"delete group {group}")

    def modify_room(self) -> None:
        description = f"Seats {self.rng.randrange(100)}"
        self.admin.modify(f"cn=Room 4B,{ldif.ROOMS}",
                          {"description": [(ldap3.MODIFY_REPLACE, [description])]})
        self.log.append(f"room {description}")


def contents(path: str) -> tuple[list, dict]:
    """Every principal as stored, and every principal's effective groups."""
    with Store.open(path) as store:
        principals = sorted(store.principals(), key=lambda p: p.id)
        return principals, {p.id: store.groups_of(p.id) for p in principals}


@pytest.mark.parametrize("seed", [11, 23, 37, 59])
def test_incremental_runs_end_where_a_fresh_full_sync_does(server, make_settings, tmp_path, seed):
    settings = make_settings(server)
    assert sync.run(settings).mode == "full"
    directory = Directory(server, random.Random(seed))
    for _ in range(5):
        for _ in range(6):
            directory.step()
        report = sync.run(settings, force=True)  # random deletions may trip the valve
        assert report.mode == "incremental", directory.log
        assert {s.reader for s in report.sources.values()} == {server.reader}

    fresh = make_settings(server, store={"path": str(tmp_path / "fresh.db")})
    assert sync.run(fresh, full=True).mode == "full"
    incremental, full = contents(settings.store.path), contents(fresh.store.path)
    assert incremental[0] == full[0], "\n".join(directory.log)
    assert incremental[1] == full[1], "\n".join(directory.log)


def test_an_incremental_run_reads_only_what_changed(server, make_settings):
    settings = make_settings(server)
    sync.run(settings)
    admin = server.admin()
    admin.modify(ldif.person_dn("alice"), {"description": [(ldap3.MODIFY_REPLACE, ["Audit"])]})
    admin.delete(ldif.person_dn("user007"))

    report = sync.run(settings)

    assert report.mode == "incremental"
    assert (report.created, report.updated, report.destroyed) == (0, 1, 1)
    if server.reader == "syncrepl":  # the timestamp reader re-reads its overlap window
        assert report.sources["people"].read == 1
        assert report.sources["groups"].read == 0
    with Store.open(settings.store.path) as store:
        alice = next(p for p in store.principals() if p.login == "alice")
        assert alice.description == "Audit"
        assert not any(p.login == "user007" for p in store.principals())
    assert "(incremental)" in report.summary()


def test_an_incremental_run_resolves_only_the_principals_its_changes_touch(tmp_path, make_settings):
    """A narrow delta: a changed person alone; a renamed member with the groups that list
    it and their members; never the whole store (34 principals)."""
    server = Slapd(tmp_path / "slapd", size_limit=SIZE_LIMIT, syncprov=50)
    server.load(ldif.standard_directory())
    server.start()
    try:
        settings = make_settings(server)
        assert sync.run(settings).resolution.principals == 34
        admin = server.admin()
        admin.modify(ldif.person_dn("carol"), {"description": [(ldap3.MODIFY_REPLACE, ["Audit"])]})
        report = sync.run(settings)
        assert report.mode == "incremental" and report.updated == 1
        assert report.resolution.principals == 1

        admin.modify_dn(ldif.person_dn("erin"), "uid=erin2", delete_old_dn=True)
        report = sync.run(settings)
        # erin; outer, which lists her by DN, and posix, by login, with their members
        # (inner, bob); inner comes as a member and keeps its stored members
        assert report.resolution.principals == 5
        with Store.open(settings.store.path) as store:
            erin = next(p for p in store.principals() if p.dn.startswith("uid=erin2,"))
            outer = next(p for p in store.principals() if p.name == "outer")
            assert erin.id not in outer.members and outer.id not in erin.member_of
            assert store.runs(1)[0].detail["resolved"] == 5
    finally:
        server.cleanup()


def test_a_server_restored_to_an_older_state_means_a_full_read(tmp_path, make_settings):
    """A cookie newer than the server's own state (it was restored from a backup): slapd
    answers e-syncRefreshRequired, and the run reads everything instead."""
    server = Slapd(tmp_path / "slapd", size_limit=SIZE_LIMIT, syncprov=0)
    server.load(ldif.standard_directory())
    server.start()
    try:
        settings = make_settings(server)
        sync.run(settings)
        with sqlite3.connect(settings.store.path) as db:
            for (source, position) in db.execute("SELECT source, position FROM sync_cursors").fetchall():
                restored = {**json.loads(position), "cookie": base64.b64encode(FUTURE_COOKIE).decode()}
                db.execute("UPDATE sync_cursors SET position = ? WHERE source = ?",
                           (json.dumps(restored), source))
        server.admin().delete(ldif.person_dn("user003"))

        report = sync.run(settings)

        assert report.mode == "full"
        assert report.destroyed == 1
        assert sync.run(settings).mode == "incremental"  # fresh cookies came with the full read
    finally:
        server.cleanup()


def test_an_incremental_run_that_empties_a_field_on_what_it_read_is_refused(server, make_settings):
    """An ACL change that hides mail moves no entry; each entry changed afterwards for any
    reason comes back without its address. The valve judges what the run read."""
    settings = make_settings(server)
    sync.run(settings)
    server.hide_from_the_reader("mail")
    admin = server.admin()
    for n in range(1, 12):  # 11 of the 20 generated people (more than the grace of 10)
        phone = {"telephoneNumber": [(ldap3.MODIFY_REPLACE, ["+1 555"])]}
        admin.modify(ldif.person_dn(f"user{n:03d}"), phone)

    with pytest.raises(SyncAborted, match=r"'people': (\d+) of the \1 principals read with an email "
                                          r"would lose it \(100%\)"):
        sync.run(settings)
    with Store.open(settings.store.path) as store:
        assert sum(1 for p in store.principals() if p.email) >= 20  # nothing was emptied

    assert sync.run(settings, force=True).mode == "incremental"


def test_full_forces_a_complete_read_and_full_every_schedules_one(server, make_settings):
    settings = make_settings(server)
    sync.run(settings)
    assert sync.run(settings).mode == "incremental"
    assert sync.run(settings, full=True).mode == "full"

    every_time = make_settings(server, sync={"full_every": "1s"})
    time.sleep(1.1)
    assert sync.run(every_time).mode == "full"

    off = make_settings(server, sync={"incremental": False})
    assert sync.run(off).mode == "full"
    assert sync.run(off).mode == "full"


def test_a_redefined_source_is_read_completely_within_an_incremental_run(server, make_settings):
    settings = make_settings(server)
    sync.run(settings)
    sources = standard_sources()
    sources["people"]["disabled_filter"] = "(employeeType=gone)"
    changed = make_settings(server, sources=sources)
    server.admin().delete(ldif.person_dn("user004"))

    report = sync.run(changed)

    assert report.mode == "incremental"
    assert {name for name, source in report.sources.items() if source.complete} == {"people"}
    assert (report.updated, report.destroyed) == (1, 1)  # dave, disabled by the old filter only
    assert not any(source.complete for source in sync.run(changed).sources.values())


def test_a_new_source_is_read_completely_and_a_dropped_one_forces_a_full_run(server, make_settings):
    sources = standard_sources()
    equipment = sources.pop("equipment")
    settings = make_settings(server, sources=sources)
    sync.run(settings)

    report = sync.run(make_settings(server, sources={**sources, "equipment": equipment}))

    assert report.mode == "incremental" and report.sources["equipment"].complete
    assert report.created == 1
    with pytest.raises(SyncAborted, match="'equipment' is no longer configured"):
        sync.run(make_settings(server, sources=sources))

