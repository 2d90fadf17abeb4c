"""Push over EventSource (RFC 8620 §7.3): ``state`` events carrying a StateChange, ``ping``
events that keep the connection alive.

Changes are noticed in the database, not only in this process: a Watcher polls the
store's last modseq (a `bridge sync` from cron or another worker commits there too; a
local write asks for a check at once) and, when it moved, wakes every open stream, which
then compares the caller's states with what it last sent.
An event's id names every state it reflects, so a client reconnecting with
``Last-Event-ID`` is sent at once whatever it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from bridge.jmap.core import ACCOUNT_ID

log = logging.getLogger(__name__)

TYPES = ("Principal", "ShareNotification")
MIN_PING, MAX_PING = 1, 3600  # the RFC: a minimum of at most 30 s, a maximum of at least 300 s
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Subscription:
    types: frozenset[str]
    close_after_state: bool
    ping: int  # seconds; 0: no pings


def subscription(query: Mapping[str, str]) -> Subscription:
    """Read types, closeafter and ping; ValueError says what is wrong."""
    types_text = query.get("types", "*")
    types = frozenset(TYPES) if types_text.strip() == "*" else \
        frozenset(t.strip() for t in types_text.split(",") if t.strip()) & set(TYPES)
    close_after = query.get("closeafter", "no")
    if close_after not in ("state", "no"):
        raise ValueError("closeafter is state or no")
    ping_text = query.get("ping", "0")
    if not ping_text.isdigit():
        raise ValueError("ping is a number of seconds")
    ping = int(ping_text)
    return Subscription(types, close_after == "state", min(max(ping, MIN_PING), MAX_PING) if ping else 0)


def event_id(states: Mapping[str, str]) -> str:
    return " ".join(f"{kind}={states[kind]}" for kind in TYPES if kind in states)


def _states_of(event: str | None) -> dict[str, str] | None:
    if not event:
        return None
    pairs = [part.partition("=") for part in event.split()]
    return {kind: state for kind, sep, state in pairs if sep and kind in TYPES} or None


def _frame(event: str, data: dict, ident: str = "") -> str:
    head = f"id: {ident}\n" if ident else ""
    return f"event: {event}\n{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


def state_event(changed: Mapping[str, str], states: Mapping[str, str]) -> str:
    return _frame("state", {"@type": "StateChange", "changed": {ACCOUNT_ID: dict(changed)}},
                  event_id(states))


class Watcher:
    """Polls ``last_change`` (a blocking read, run in a thread) while any stream listens,
    and wakes them all when it moves. ``poke`` asks for a check now (after a local write),
    so a read-only request wakes nobody. A failing read is logged and retried; ``close``
    ends every stream (at shutdown)."""

    def __init__(self, last_change: Callable[[], int], interval: float = POLL_SECONDS) -> None:
        self._last_change = last_change
        self._interval = interval
        self._listeners: set[asyncio.Event] = set()
        self._task: asyncio.Task | None = None
        self._kick: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False

    async def subscribe(self) -> asyncio.Event:
        """A new listener. Its first wake is any change after this returns: a stream reads
        its states only afterwards, so no change falls between the two."""
        wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self.closing:
            wake.set()
            return wake
        if self._task is None or self._task.done():
            seen = await asyncio.to_thread(self._last_change)
            if self._task is None or self._task.done():
                self._kick = asyncio.Event()
                self._task = asyncio.get_running_loop().create_task(self._poll(seen))
        self._listeners.add(wake)
        return wake

    def unsubscribe(self, wake: asyncio.Event) -> None:
        self._listeners.discard(wake)

    def poke(self) -> None:
        if self._kick is not None:
            self._kick.set()

    def close(self) -> None:
        """Wake every stream for the last time: they end, and new ones end at once."""
        self.closing = True
        for wake in self._listeners:
            wake.set()

    def close_from_any_thread(self) -> None:
        """``close`` from a signal handler or another thread: run on the loop's thread."""
        if self._loop is None or self._loop.is_closed():
            self.closing = True
            return
        self._loop.call_soon_threadsafe(self.close)

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    async def _poll(self, seen: int) -> None:
        kick = self._kick
        while self._listeners and not self.closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(kick.wait(), self._interval)
            kick.clear()
            try:
                now = await asyncio.to_thread(self._last_change)
            except Exception:  # a store that fails now may work next time: never stop watching
                log.exception("push: cannot read the store's last change; retrying")
                await asyncio.sleep(self._interval * 4)
                continue
            if now != seen:
                seen = now
                for wake in self._listeners:
                    wake.set()


async def stream(wanted: Subscription, states: Callable[[], Awaitable[dict[str, str]]],
                 watcher: Watcher, last_event_id: str | None) -> AsyncIterator[str]:
    """The text of one EventSource response, until the client leaves, closeafter, or the
    server shuts down."""
    wake, last_event = await watcher.subscribe(), time.monotonic()
    try:
        sent = await states()
        missed = _states_of(last_event_id)
        if missed is not None:
            changed = {k: v for k, v in sent.items() if k in wanted.types and missed.get(k) != v}
            if changed:
                yield state_event(changed, sent)
                if wanted.close_after_state:
                    return
        while not watcher.closing:
            timeout = max(0.0, last_event + wanted.ping - time.monotonic()) if wanted.ping else None
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except TimeoutError:
                yield _frame("ping", {"interval": wanted.ping})  # no id: pings keep the last one
                last_event = time.monotonic()
                continue
            wake.clear()
            if watcher.closing:
                return
            current = await states()
            changed = {k: v for k, v in current.items() if k in wanted.types and sent.get(k) != v}
            if changed:
                yield state_event(changed, current)
                sent, last_event = current, time.monotonic()
                if wanted.close_after_state:
                    return
    finally:
        watcher.unsubscribe(wake)
