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


class Answer(NamedTuple):
    position: int
    ids: tuple[str, ...]
    total: int | None


class QueryCache:
    def __init__(self, capacity: int) -> None:
        """``capacity``: how many ids all answers together may hold; 0 keeps nothing."""
        self.capacity = capacity
        self._answers: OrderedDict[Hashable, Answer] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Answer | None:
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
            return answer

    def put(self, key: Hashable, answer: Answer) -> None:
        cost = _cost(answer)
        if cost > self.capacity // 4:  # one huge answer would push out every other
            return
        with self._lock:
            old = self._answers.pop(key, None)
            if old is not None:
                self._held -= _cost(old)
            self._answers[key] = answer
            self._held += cost
            while self._held > self.capacity:
                _, dropped = self._answers.popitem(last=False)
                self._held -= _cost(dropped)

    def __len__(self) -> int:
        return len(self._answers)


def _cost(answer: Answer) -> int:
    return len(answer.ids) + 1
