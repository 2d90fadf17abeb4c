"""The JMAP service of one process: a Store per thread (the event loop's included), the
Principal/query cache, and the three things the HTTP layer asks of JMAP — a Session, a
Response (quickly on the loop, or in a worker thread), and whether the data is ready."""

from __future__ import annotations

import functools
import threading
from typing import Any

from bridge.config import Settings
from bridge.errors import ReadTimeUp
from bridge.jmap.core import Context, view_key
from bridge.jmap.methods import engine
from bridge.jmap.query_cache import QueryCache
from bridge.jmap.session import session, session_state
from bridge.jmap.share_notifications import state_of as notification_state
from bridge.model import Caller
from bridge.store import Store


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()
        # the event loop's own, for quick reads (see open_loop_store)
        self.loop_store: Store | None = None
        self.query_cache = QueryCache(settings.jmap.query_cache_ids)
        self.view_key = view_key(settings)
        # a Session depends on the settings and on who asks, nothing else
        self._session_state = functools.lru_cache(maxsize=4096)(self._compute_session_state)

    def store(self) -> Store:
        """This thread's Store: a connection is never shared between threads, and WAL lets
        them all read while a sync writes."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store.open(self.settings.store.path)
        return store

    def session(self, caller: Caller) -> dict:
        return session(Context(caller, None, self.settings))  # the session reads no store

    def open_loop_store(self) -> None:
        """Open ``loop_store`` (from a worker thread: opening may wait on a lock)."""
        if self.loop_store is None:
            store = Store.open(self.settings.store.path)
            try:
                store.allow_time_limits(self.settings.jmap.inline_read_ms / 1000)
            except BaseException:
                store.close()
                raise
            self.loop_store = store

    def handle(self, request: Any, caller: Caller, store: Store | None = None) -> dict:
        context = self._context(caller, store or self.store())
        return engine.handle(request, context, self._session_state(caller.username, caller.principal_id))

    def handle_quickly(self, request: Any, caller: Caller) -> dict | None:
        """The Response, on ``loop_store``, if every call is a quick read and the reads end
        within ``jmap.inline_read_ms``; None otherwise (nothing was changed: run ``handle``)."""
        limit = self.settings.jmap.inline_read_ms
        if not limit or self.loop_store is None or not engine.quick(request):
            return None
        try:
            with self.loop_store.time_limit(limit / 1000):
                return self.handle(request, caller, self.loop_store)
        except ReadTimeUp:
            return None

    def push_states(self, caller: Caller) -> dict[str, str]:
        """The states a StateChange may carry for this caller, by type."""
        context = self._context(caller, self.store())
        return {"Principal": context.state(), "ShareNotification": notification_state(context)}

    def _context(self, caller: Caller, store: Store) -> Context:
        return Context(caller, store, self.settings, query_cache=self.query_cache,
                       view_key=self.view_key)

    def _compute_session_state(self, username: str, principal_id: str | None) -> str:
        return session_state(Context(Caller(username, principal_id), None, self.settings,
                                     view_key=self.view_key))

    def last_change(self) -> int:
        return self.store().last_change()

    def last_sync(self) -> str | None:
        """When the last successful sync finished, or None before the first."""
        run = self.store().last_successful_run()
        return run.finished_at if run else None
