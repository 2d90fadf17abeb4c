"""The JMAP service of one process: a Store per worker thread, and the three things the
HTTP layer asks of JMAP — a Session, a Response, and whether the data is ready."""

from __future__ import annotations

import threading
from typing import Any

from bridge.config import Settings
from bridge.jmap.core import Context
from bridge.jmap.methods import engine
from bridge.jmap.session import session, session_state
from bridge.jmap.share_notifications import state_of as notification_state
from bridge.model import Caller
from bridge.store import Store


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()

    def store(self) -> Store:
        """This thread's Store: a connection is never shared between threads, and WAL lets
        them all read while a sync writes."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store.open(self.settings.store.path)
        return store

    def session(self, caller: Caller) -> dict:
        return session(Context(caller, None, self.settings))  # the session reads no store

    def handle(self, request: Any, caller: Caller) -> dict:
        context = Context(caller, self.store(), self.settings)
        return engine.handle(request, context, session_state(context))

    def push_states(self, caller: Caller) -> dict[str, str]:
        """The states a StateChange may carry for this caller, by type."""
        context = Context(caller, self.store(), self.settings)
        return {"Principal": context.state(), "ShareNotification": notification_state(context)}

    def last_change(self) -> int:
        return self.store().last_change()

    def last_sync(self) -> str | None:
        """When the last successful sync finished, or None before the first."""
        run = self.store().last_successful_run()
        return run.finished_at if run else None
