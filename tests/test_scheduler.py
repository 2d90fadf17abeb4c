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
