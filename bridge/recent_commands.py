"""Commands are idempotent by id: the ids the bridge is carrying out or has just answered.

MQTT delivers QoS 1 at least once. A controller that missed a PUBACK publishes again (DUP), and
the broker forwards that copy as a new message; a broker may also deliver one copy per matching
subscription (MQTT 3.1.1 §3.3.5). Either way the same command arrives twice. A copy whose id is
in flight, or was answered less than ``window_s`` ago, is neither carried out nor answered
again: its first answer stands (docs/mqtt.md, "Commands").

Plain Python, no MQTT: the bus thread claims an id, a pool thread marks it answered.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

WINDOW_S = 60.0
"""How long an answered id is remembered: as long as the longest command may wait for its board
(``timeout`` ≤ 60 s). Longer would silently swallow a controller that restarts and counts its ids
from 1 again."""
MAX_IDS = 10_000
"""A bound on memory under a flood of distinct ids: the oldest answered ids are forgotten first."""


class RecentCommands:
    def __init__(self, window_s: float = WINDOW_S, max_ids: int = MAX_IDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.max_ids = max_ids
        self._clock = clock
        self._lock = threading.Lock()
        # key -> None while in flight, else the time it was answered; oldest first
        self._ids: OrderedDict[Hashable, float | None] = OrderedDict()
        self.duplicates = 0

    def seen(self, key: Hashable) -> str | None:
        """``"in flight"`` or ``"answered"`` when ``key`` is a copy to ignore (and counts it), else None."""
        with self._lock:
            self._expire()
            if key not in self._ids:
                return None
            self.duplicates += 1
            return "in flight" if self._ids[key] is None else "answered"

    def claim(self, key: Hashable) -> bool:
        """Register ``key`` as in flight; False if it already is, or was answered within the window."""
        with self._lock:
            self._expire()
            if key in self._ids:
                self.duplicates += 1
                return False
            self._ids[key] = None
            self._bound()
            return True

    def answered(self, key: Hashable) -> None:
        """The command's answer is out: remember the id for ``window_s`` more."""
        with self._lock:
            if key in self._ids:
                self._ids[key] = self._clock()
                self._ids.move_to_end(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def _expire(self) -> None:
        horizon = self._clock() - self.window_s
        # Answered ids move to the end when answered, so among them the oldest come first; ids
        # still in flight may sit between them (skipped). Stop at the first answered one that is fresh.
        expired = []
        for key, at in self._ids.items():
            if at is None:
                continue
            if at >= horizon:
                break
            expired.append(key)
        for key in expired:
            del self._ids[key]

    def _bound(self) -> None:
        while len(self._ids) > self.max_ids:
            oldest = next((k for k, at in self._ids.items() if at is not None), None)
            if oldest is None:  # nothing but commands in flight (the pool bounds those)
                return
            del self._ids[oldest]
