"""TtlCache: freshness, merging, counters. A manual clock makes the TTL exact."""
from __future__ import annotations

import threading

from services.state_aggregator.cache import Freshness, TtlCache


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fresh_then_stale_then_fresh_again_after_a_write():
    clock = ManualClock()
    cache = TtlCache(30, clock=clock)
    assert cache.lookup("t")[1] is Freshness.MISS
    cache.put("t", {"temperature": 21.0})
    entry, freshness = cache.lookup("t")
    assert freshness is Freshness.HIT and entry.state == {"temperature": 21.0}
    clock.now += 30
    assert cache.lookup("t")[1] is Freshness.STALE
    cache.put("t", {"temperature": 22.0})
    assert cache.lookup("t")[1] is Freshness.HIT
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["stale"], stats["entries"]) == (2, 1, 1, 1)


def test_merge_keeps_properties_an_event_did_not_carry():
    cache = TtlCache(30)
    cache.put("w", {"position": 0, "target": 80, "moving": True})
    state, changed = cache.put("w", {"position": 40}, merge=True)
    assert state == {"position": 40, "target": 80, "moving": True} and changed
    assert cache.put("w", {"position": 40}, merge=True) == (state, False)


def test_a_change_is_judged_by_the_handlers_rule():
    cache = TtlCache(30)
    cache.put("t", {"temperature": 21})
    assert cache.put("t", {"temperature": 21.0})[1] is False  # the same reading
    cache.put("m", {"motion": 1})
    assert cache.put("m", {"motion": True})[1] is True  # a bool is not a number


def test_zero_ttl_is_always_stale_and_clear_forgets_everything():
    cache = TtlCache(0)
    cache.put("t", {"temperature": 1})
    assert cache.lookup("t")[1] is Freshness.STALE
    assert cache.clear() == 1
    assert cache.peek("t") is None


def test_concurrent_writers_lose_nothing():
    cache = TtlCache(30)

    def write(prefix: str) -> None:
        for i in range(500):
            cache.put(f"{prefix}{i % 10}", {"n": i}, merge=True)

    threads = [threading.Thread(target=write, args=(p,)) for p in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.stats()["writes"] == 2000
    assert cache.stats()["entries"] == 40
