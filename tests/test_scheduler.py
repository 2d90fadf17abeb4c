"""The sync inside `bridge serve`: failures leave the old data served, runs never overlap,
and the API keeps answering while a sync holds the store's write lock."""

from __future__ import annotations

import logging
import threading

import ldap3

from bridge import sync
from bridge.scheduler import SyncScheduler
from bridge.store import Store
from tests.support import ldif


def test_a_failed_scheduled_run_is_logged_and_the_old_data_stays_served(slapd, synced, alice, caplog):
    before = alice.one("Principal/get", ids=None)
    slapd.kill()

    with caplog.at_level(logging.ERROR, logger="bridge.scheduler"):
        SyncScheduler(synced).run_once()

    assert "scheduled sync failed, the previous data is still served" in caplog.text
    assert alice.one("Principal/get", ids=None) == before
    with Store.open(synced.store.path) as store:
        assert store.runs()[0].outcome == "failed"


def test_a_scheduled_run_refused_by_the_valve_says_what_to_do(slapd, synced, caplog):
    for n in range(10, 21):
        slapd.admin().delete(ldif.person_dn(f"user{n:03d}"))

    with caplog.at_level(logging.ERROR, logger="bridge.scheduler"):
        SyncScheduler(synced).run_once()

    assert "refused by the safety valve (run `bridge sync --plan`" in caplog.text


def test_a_scheduled_run_while_cron_holds_the_store_is_skipped(synced, caplog):
    with Store.open(synced.store.path) as store, store.run_lock(), \
            caplog.at_level(logging.INFO, logger="bridge.scheduler"):
        SyncScheduler(synced).run_once()

    assert "scheduled sync skipped: another sync run is using" in caplog.text


def test_the_api_answers_while_a_sync_holds_the_write_lock(slapd, synced, alice, monkeypatch):
    """WAL: readers are not blocked by the writer, and see the last committed data."""
    slapd.admin().modify(ldif.person_dn("alice"), {"description": [(ldap3.MODIFY_REPLACE, ["Mid-sync"])]})
    applying, release = threading.Event(), threading.Event()
    valve = sync.check_safety

    def holding_valve(*args, **kwargs):  # runs inside the apply transaction
        applying.set()
        release.wait(10)
        return valve(*args, **kwargs)

    monkeypatch.setattr(sync, "check_safety", holding_valve)
    worker = threading.Thread(target=sync.run, args=(synced,))
    worker.start()
    try:
        assert applying.wait(10)
        me = alice.one("Principal/query", filter={"email": "alice@example.org"})["ids"]
        during = alice.one("Principal/get", ids=me)["list"][0]["description"]
    finally:
        release.set()
        worker.join(20)
    after = alice.one("Principal/get", ids=me)["list"][0]["description"]

    assert (during, after) == ("Finance", "Mid-sync")


def test_the_expiry_job_destroys_old_notifications_and_logs_it(synced, caplog):
    from bridge.store import Retention

    with Store.open(synced.store.path) as store:
        alice = next(p.id for p in store.principals() if p.login == "alice")
        fields = {"changed_by": {"name": "Bob", "email": None, "principal_id": None},
                  "object_type": "Calendar", "object_account_id": "a1", "old_rights": None,
                  "new_rights": {"mayRead": True}, "name": "Team"}
        retention = Retention(cap=10, coalesce_window=0)
        store.add_notifications([(alice, {**fields, "object_id": "old"})], retention, now=0.0)
        store.add_notifications([(alice, {**fields, "object_id": "new"})], retention)

    with caplog.at_level(logging.INFO, logger="bridge.scheduler"):
        SyncScheduler(synced).expire_once()

    assert "expired 1 share notifications" in caplog.text
    with Store.open(synced.store.path) as store:
        assert [n.object_id for n in store.notifications_of(alice)] == ["new"]


def test_a_failing_expiry_is_logged_and_not_raised(slapd, make_settings, caplog, tmp_path):
    broken = tmp_path / "not-a-database"
    broken.write_text("this is not SQLite")
    settings = make_settings(slapd, store={"path": str(broken)})

    with caplog.at_level(logging.ERROR, logger="bridge.scheduler"):
        SyncScheduler(settings).expire_once()

    assert "expiring share notifications failed" in caplog.text
