"""One timetable for every endpoint, and a bounded pool of workers that run the due polls.

A single timer thread keeps a heap of (when, endpoint) and hands each due endpoint to a
``ThreadPoolExecutor``. A poll runs on one worker and returns the delay until its next poll, so
an endpoint is never polled twice at once; one that hangs holds one worker for at most its
timeout while the others keep their times. ``poll_now`` moves an endpoint to the front (a fresh
read) and gives back an event that is set when that poll has finished — the poll in flight, if
there is one, is the answer, so concurrent fresh reads cost one request.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

RETRY_AFTER_CRASH_S = 5.0


class PollSchedule:
    """``poll(endpoint_id) -> seconds until the next poll`` for every endpoint, on time."""

    def __init__(self, poll: Callable[[str], float], workers: int, name: str = "http poll") -> None:
        self._poll = poll
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self.workers = workers
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}        # the one valid entry per endpoint (older ones are skipped)
        self._in_flight: set[str] = set()
        self._waiters: dict[str, list[threading.Event]] = {}
        self._again: set[str] = set()            # poll once more as soon as the one in flight ends
        self._seq = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.lateness_s = 0.0                    # how late the last poll started, for /metrics
        self.started = 0

    # -- life cycle

    def start(self, first_delays: dict[str, float]) -> None:
        now = time.monotonic()
        with self._cond:
            for endpoint_id, delay in first_delays.items():
                self._set_due(endpoint_id, now + delay)
        self._thread = threading.Thread(target=self._run, name="http poll timer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            waiters = [e for events in self._waiters.values() for e in events]
            self._waiters.clear()
        for event in waiters:
            event.set()
        if self._thread is not None:
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- asking

    def poll_now(self, endpoint_id: str, after_now: bool = False) -> threading.Event:
        """Poll ``endpoint_id`` as soon as a worker is free; the event is set when that poll has
        finished. A poll already in flight counts as the answer, unless ``after_now``: then the
        device must be read after this moment (a command just changed it, and a poll that started
        before the command may bring back the old state), so another poll follows it at once."""
        done = threading.Event()
        with self._cond:
            if self._stopping:
                done.set()
                return done
            if endpoint_id not in self._in_flight:
                self._waiters.setdefault(endpoint_id, []).append(done)
                self._set_due(endpoint_id, time.monotonic())
                self._cond.notify()
            elif after_now:
                self._again.add(endpoint_id)
                done.set()  # nobody waits for the follow-up poll; its answer arrives as events
            else:
                self._waiters.setdefault(endpoint_id, []).append(done)
        return done

    def in_flight(self) -> int:
        with self._cond:
            return len(self._in_flight)

    def next_due_in(self, endpoint_id: str) -> float | None:
        with self._cond:
            due = self._due.get(endpoint_id)
        return None if due is None else max(0.0, due - time.monotonic())

    # -- inside

    def _set_due(self, endpoint_id: str, when: float) -> None:
        self._due[endpoint_id] = when
        heapq.heappush(self._heap, (when, next(self._seq), endpoint_id))

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                if not self._heap:
                    self._cond.wait()
                    continue
                when, _, endpoint_id = self._heap[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if self._due.get(endpoint_id) != when or endpoint_id in self._in_flight:
                    continue  # superseded by a newer time, or still running (it reschedules itself)
                del self._due[endpoint_id]
                self._in_flight.add(endpoint_id)
                self.lateness_s = max(0.0, -wait)
                self.started += 1
                try:
                    self._pool.submit(self._work, endpoint_id)
                except RuntimeError:  # the pool is shutting down
                    return

    def _work(self, endpoint_id: str) -> None:
        try:
            delay = self._poll(endpoint_id)
        except Exception:  # noqa: BLE001 - a bug in one poll must not end the schedule
            log.exception("polling %s failed unexpectedly", endpoint_id)
            delay = RETRY_AFTER_CRASH_S
        with self._cond:
            self._in_flight.discard(endpoint_id)
            waiters = self._waiters.pop(endpoint_id, [])
            if endpoint_id in self._again:
                self._again.discard(endpoint_id)
                delay = 0.0
            if not self._stopping:
                self._set_due(endpoint_id, time.monotonic() + delay)
                self._cond.notify()
        for event in waiters:
            event.set()
