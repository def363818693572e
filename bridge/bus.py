"""The bridge's internal event bus: features talk to each other only through it.

Producers (paho's network thread, the SSE follower, timers) call :meth:`Bus.emit`, which
only enqueues; one dispatcher thread calls the handlers in order. So a paho callback never
waits for a feature, and features never run concurrently with each other (no locks needed
inside them). A handler that must wait (a command round trip) hands work to its own pool.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[..., None]


class Bus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="bridge bus", daemon=True)

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind].append(handler)

    def emit(self, kind: str, **data: Any) -> None:
        self._queue.put((kind, data))

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                kind, data = item
                for handler in self._handlers.get(kind, ()):
                    try:
                        handler(**data)
                    except Exception:  # noqa: BLE001 - one failing feature must not stop the others
                        log.exception("bridge feature %s failed on %s", getattr(handler, "__qualname__", handler),
                                      kind)
            finally:
                self._queue.task_done()
