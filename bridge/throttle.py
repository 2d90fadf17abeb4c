"""Failures counted per key in a sliding window, with bounded memory: the bookkeeping
behind login lockouts."""

from __future__ import annotations

import threading
import time
from collections import deque


class Throttle:
    """``limit`` failures of a key within ``window`` seconds lock the key until the oldest
    of them leaves the window. At most ``max_keys`` keys are kept: past that, keys whose
    failures have all expired go first, then the least recently failed."""

    def __init__(self, window: float, limit: int, max_keys: int = 10_000) -> None:
        self.window = window
        self.limit = limit
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str, now: float | None = None) -> int:
        """Seconds until ``key`` may try again; 0 when it is not locked."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.get(key)
            if failures is None:
                return 0
            self._expire(failures, now)
            if len(failures) < self.limit:
                return 0
            return int(failures[-self.limit] + self.window - now) + 1

    def fail(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.pop(key, None) or deque()
            self._expire(failures, now)
            failures.append(now)
            self._failures[key] = failures  # re-inserted: the dict stays in order of last failure
            if len(self._failures) > self.max_keys:
                self._shrink(now)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)

    def _expire(self, failures: deque[float], now: float) -> None:
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        while len(failures) > self.limit:  # more than the limit tells nothing more
            failures.popleft()

    def _shrink(self, now: float) -> None:
        for key in [k for k, f in self._failures.items() if not f or f[-1] <= now - self.window]:
            del self._failures[key]
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]
