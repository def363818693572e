"""Small helpers every test (and the benchmarks) use: waiting for a condition, finding a free
port, stopping a process, and the instance's API token for the state-changing calls a test makes.

Tests never synchronise with a bare sleep: they wait for a condition with a deadline,
so they are fast on an idle machine and still pass on a loaded 2-core one.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from shared.api_token import FILE_NAME, ApiToken, token_file

T = TypeVar("T")

TEST_API_TOKEN = "sensor-hub-tests-api-token-4f9c1e"
"""The secret (``SENSOR_HUB_API_TOKEN``) every instance built by make_settings is given; test
clients send it from the instance's settings (``settings.api_token.header()``), never this name."""


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


def authorization(data_dir: Path | str, timeout: float = 30.0) -> dict[str, str]:
    """The ``Authorization`` header for an instance of real programs started with ``DATA_DIR``:
    read from the ``api-token`` file they made at their start (waiting for it, with a deadline)."""
    path = Path(data_dir) / FILE_NAME
    wait_for(path.exists, timeout, message=f"{path} made by the instance")
    return token_file(Path(data_dir)).header()


def header_of(token: ApiToken | None) -> dict[str, str]:
    """The header of an instance's token (none when it has none: then the call is refused)."""
    return token.header() if token is not None else {}


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``: a test's own cleanup,
    which must end the process whatever state the test left it in."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
