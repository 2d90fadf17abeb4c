"""The failure counter behind lockouts: a sliding window, bounded memory."""

from __future__ import annotations

from bridge.throttle import Throttle


def test_a_key_locks_at_the_limit_until_the_oldest_failure_leaves_the_window():
    throttle = Throttle(window=60, limit=3)
    for now in (0, 10, 20):
        assert throttle.retry_after("k", now) == 0
        throttle.fail("k", now)

    assert throttle.retry_after("k", 30) == 31  # the failure at 0 leaves at 60
    assert throttle.retry_after("k", 61) == 0
    assert throttle.retry_after("other", 30) == 0


def test_clearing_a_key_unlocks_it():
    throttle = Throttle(window=60, limit=1)
    throttle.fail("k", 0)
    throttle.clear("k")
    assert throttle.retry_after("k", 1) == 0


def test_memory_stays_bounded_expired_keys_first():
    throttle = Throttle(window=60, limit=5, max_keys=100)
    for n in range(100):
        throttle.fail(f"old{n}", 0)
    throttle.fail("recent", 100)  # every old key has expired by now
    assert len(throttle) == 1

    for n in range(500):
        throttle.fail(f"k{n}", 200)
    assert len(throttle) == 100
