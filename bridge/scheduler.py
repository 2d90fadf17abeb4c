"""The schedule inside `bridge serve`: APScheduler runs one sync at start and then every
``schedule.interval``, never two at once (one job instance here, and the store's run lock
against a `bridge sync` from cron); a failed run is logged and the old data stays served.
Every ten minutes it also expires old share notifications."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bridge import sync
from bridge.config import Settings
from bridge.errors import BridgeError, SyncAborted, SyncBusy
from bridge.store import Store

log = logging.getLogger(__name__)

EXPIRY_SECONDS = 600


class SyncScheduler:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._scheduler = BackgroundScheduler(timezone=UTC)

    def start(self) -> None:
        interval = self._settings.schedule.interval
        self._scheduler.add_job(
            self.run_once, IntervalTrigger(seconds=interval, timezone=UTC), id="sync",
            next_run_time=datetime.now(UTC), max_instances=1, coalesce=True,
            misfire_grace_time=int(interval))
        self._scheduler.add_job(
            self.expire_once, IntervalTrigger(seconds=EXPIRY_SECONDS, timezone=UTC), id="expiry",
            next_run_time=datetime.now(UTC), max_instances=1, coalesce=True)
        self._scheduler.start()
        log.info("sync scheduled every %.0fs", interval)

    def expire_once(self) -> None:
        """Destroy share notifications older than notifications.max_age."""
        try:
            with Store.open(self._settings.store.path) as store:
                expired = store.expire_notifications(self._settings.notifications.max_age)
        except BridgeError as exc:
            log.error("expiring share notifications failed: %s", exc)
        else:
            if expired:
                log.info("expired %d share notifications", expired)

    def run_once(self) -> None:
        try:
            report = sync.run(self._settings)
        except SyncBusy as exc:
            log.info("scheduled sync skipped: %s", exc)
        except SyncAborted as exc:
            log.error("scheduled sync refused by the safety valve (run `bridge sync --plan`, then "
                      "`bridge sync --force` if the deletions are intended): %s", exc)
        except BridgeError as exc:
            log.error("scheduled sync failed, the previous data is still served: %s", exc)
        except Exception:  # the scheduler thread must survive anything a run throws
            log.exception("scheduled sync crashed, the previous data is still served")
        else:
            log.info("scheduled %s", report.summary())

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=False)
