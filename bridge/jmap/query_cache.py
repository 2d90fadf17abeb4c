"""Recent Principal/query answers, kept for the state they were computed at.

An answer is a function of the store's state, the caller-independent settings folded into
that state, the filter (which carries the caller where it depends on them) and the window;
so the same query at the same state is answered from memory, and a later state never finds
an older answer. Cyrus keeps Email/query results the same way. The cache is bounded by the
number of ids it holds; the least recently used answer goes first. Shared by the event loop
and the worker threads, hence the lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import NamedTuple

ID_SIZE = 40  # characters of a key that count as one id (an id is about 100 bytes held)


class Answer(NamedTuple):
    position: int
    ids: tuple[str, ...]
    total: int | None


class QueryCache:
    def __init__(self, capacity: int) -> None:
        """``capacity``: how many ids all answers together may hold (their keys counted in
        ids' worth of characters too); 0 keeps nothing."""
        self.capacity = capacity
        self._answers: OrderedDict[Hashable, tuple[Answer, int]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Answer | None:
        with self._lock:
            kept = self._answers.get(key)
            if kept is None:
                return None
            self._answers.move_to_end(key)
            return kept[0]

    def put(self, key: Hashable, answer: Answer, key_size: int = 0) -> None:
        """Keep ``answer``; ``key_size`` is about how many characters the key holds."""
        cost = len(answer.ids) + 1 + key_size // ID_SIZE
        if cost > self.capacity // 4:  # one huge answer would push out every other
            return
        with self._lock:
            old = self._answers.pop(key, None)
            if old is not None:
                self._held -= old[1]
            self._answers[key] = (answer, cost)
            self._held += cost
            while self._held > self.capacity:
                _, (_, dropped) = self._answers.popitem(last=False)
                self._held -= dropped

    def __len__(self) -> int:
        return len(self._answers)
