"""Small helpers every test uses: waiting for a condition and finding a free port.

Tests never synchronise with a bare sleep: they wait for a condition with a deadline,
so they are fast on an idle machine and still pass on a loaded 2-core one.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not become true before the deadline."""


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.01,
             message: str | None = None) -> T:
    """Call ``condition`` until it returns a truthy value and return that value.

    Exceptions raised by the condition count as "not yet" (a service that is still starting
    refuses connections); the last one is reported if the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - "not yet", reported on timeout
            last_error = exc
        if time.monotonic() >= deadline:
            what = message or getattr(condition, "__name__", "condition")
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
