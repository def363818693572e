"""The latest state of every device, with an age: fresh entries are answered from memory,
stale ones tell the caller to ask the owning service again.

The cache does not fetch anything itself — the aggregator knows who owns a device — it only
keeps entries, decides what "fresh" means (``cache_ttl``) and counts how it was used, so
``GET /cache/stats`` can show whether the event streams keep it warm.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.device_table import same_state


class Freshness(StrEnum):
    HIT = "hit"          # fresh entry, answered from memory
    STALE = "stale"      # an entry older than the TTL
    MISS = "miss"        # nothing cached yet


@dataclass(frozen=True)
class CacheEntry:
    state: Mapping[str, Any]
    stored_at: float  # clock() when last written

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)


class TtlCache:
    """Thread-safe map of device id -> latest state, with hit/miss/stale/refresh counters.

    ``ttl`` 0 means every read is stale (always ask the service). Events write with
    ``merge=True`` (a ``state`` event may carry only what changed); pulls replace the entry.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl < 0:
            raise ValueError("ttl must be >= 0")
        self.ttl = float(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, CacheEntry] = {}
        self._counters = {"hits": 0, "misses": 0, "stale": 0, "refreshes": 0,
                          "refresh_failures": 0, "writes": 0, "clears": 0}

    def put(self, key: str, state: Mapping[str, Any], merge: bool = False) -> tuple[dict[str, Any], bool]:
        """Store ``state``; returns the full state now held and whether it changed (by the
        handlers' own change rule, shared/device_table.py)."""
        with self._lock:
            old = self._entries.get(key)
            if merge and old is not None:
                new_state = {**old.state, **state}
            else:
                new_state = dict(state)
            self._entries[key] = CacheEntry(new_state, self._clock())
            self._counters["writes"] += 1
        return dict(new_state), old is None or not same_state(old.state, new_state)

    def peek(self, key: str) -> CacheEntry | None:
        """The entry as it is, fresh or not; not counted (listings, debugging)."""
        with self._lock:
            return self._entries.get(key)

    def snapshot(self) -> tuple[dict[str, CacheEntry], float]:
        """Every entry and the clock reading, under one lock (listings of many devices)."""
        with self._lock:
            return dict(self._entries), self._clock()

    def lookup(self, key: str) -> tuple[CacheEntry | None, Freshness]:
        """A read that counts: the entry (if any) and whether it may be served as is."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._counters["misses"] += 1
                return None, Freshness.MISS
            if self.ttl > 0 and entry.age(self._clock()) < self.ttl:
                self._counters["hits"] += 1
                return entry, Freshness.HIT
            self._counters["stale"] += 1
            return entry, Freshness.STALE

    def clock(self) -> float:
        return self._clock()

    def is_fresh(self, entry: CacheEntry) -> bool:
        return self.ttl > 0 and entry.age(self._clock()) < self.ttl

    def age(self, entry: CacheEntry) -> float:
        return entry.age(self._clock())

    def record_refresh(self, ok: bool) -> None:
        with self._lock:
            self._counters["refreshes" if ok else "refresh_failures"] += 1

    def clear(self) -> int:
        """Forget every entry (the next reads go to the services); returns how many."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            self._counters["clears"] += 1
        return count

    def stats(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            entries = list(self._entries.values())
            counters = dict(self._counters)
        fresh = sum(1 for e in entries if self.ttl > 0 and e.age(now) < self.ttl)
        reads = counters["hits"] + counters["misses"] + counters["stale"]
        return {
            "ttl_s": self.ttl,
            "entries": len(entries),
            "fresh": fresh,
            "stale_entries": len(entries) - fresh,
            **counters,
            "hit_ratio": round(counters["hits"] / reads, 4) if reads else None,
        }
