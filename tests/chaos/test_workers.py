"""kill -9 of a service's gunicorn worker alone, as an out-of-memory kill would: its master
starts another, which opens the board again and serves as before (docs/reliability.md).

The whole chain is real processes (testkit/connector.py): an emulated board on a pty,
the serial handler, the aggregator and the bridge under a private Mosquitto. The aggregator's
worker is killed in tests/chaos/test_resume.py, with every event counted.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit.connector import ConnectorStack, _children, _running
from testkit.helpers import authorization, wait_for

pytestmark = pytest.mark.slow

RECOVERY_S = 30.0
"""From the kill to a command carried out by the board again; measured about 1-2 s (the new
worker's imports and the board's hello)."""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ConnectorStack]:
    stack = ConnectorStack(tmp_path, interval_ms=200)
    try:
        yield stack
    finally:
        stack.close()


def led_command(stack: ConnectorStack, cmd_id: str) -> requests.Response:
    return requests.post(f"{stack.aggregator_url}/device/living_led/cmd", timeout=10,
                         headers=authorization(stack.env["DATA_DIR"]),
                         json={"id": cmd_id, "values": {"state": "on" if cmd_id.endswith("1") else "off"}})


def last_seen(stack: ConnectorStack) -> str | None:
    return requests.get(f"{stack.aggregator_url}/device/living_temperature?fresh=1", timeout=10).json() \
        .get("last_seen")


def test_kill_9_of_the_serial_handlers_worker_alone(stack: ConnectorStack):
    handler = stack.processes[0]  # python -m services.serial_handler: the gunicorn master
    wait_for(lambda: led_command(stack, "before-1").status_code == 200, 60, interval=0.2,
             message="a command carried out before the kill")
    workers = _children(handler.pid)
    assert len(workers) == 1, workers

    os.kill(workers[0], signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not _running(workers[0]), 10, message="the worker gone")
    seen_at_kill = last_seen(stack)

    wait_for(lambda: led_command(stack, "after-1").status_code == 200, RECOVERY_S, interval=0.2,
             message="a command carried out by the board after the kill")
    recovered = time.monotonic() - killed
    wait_for(lambda: last_seen(stack) != seen_at_kill, 10, interval=0.2, message="readings flowing again")
    assert handler.poll() is None  # the master lived on and started another worker
    assert len(_children(handler.pid)) == 1
    log = stack.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    print(f"\nkill -9 of the serial handler's worker: commands carried out again {recovered:.2f} s later")


@pytest.fixture
def full_stack(tmp_path: Path, default_model: Path) -> Iterator[ConnectorStack]:
    """Every service: the board, the HTTP sensors and the window automation."""
    stack = ConnectorStack(tmp_path, interval_ms=200, http=True, automation=default_model)
    try:
        yield stack
    finally:
        stack.close()


def service_master(stack: ConnectorStack, module: str):
    return next(p for p in stack.processes if p.args[1:] == ["-m", module])


@pytest.mark.parametrize("service", ["http_poller", "ml_inference"])
def test_kill_9_of_a_services_worker_alone_and_the_aggregator_sees_it_back(full_stack: ConnectorStack,
                                                                          service: str):
    """The aggregator follows each handler's stream: after the worker's death it reconnects to
    the new worker and reports the service ok again, its devices online."""
    def service_ok() -> bool:
        health = requests.get(f"{full_stack.aggregator_url}/health", timeout=10).json()
        return health["services"][service]["status"] == "ok"

    wait_for(service_ok, 60, interval=0.2, message=f"{service} ok on the aggregator")
    master = service_master(full_stack, f"services.{service}")
    workers = _children(master.pid)
    assert len(workers) == 1, workers

    os.kill(workers[0], signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not _running(workers[0]), 10, message="the worker gone")
    wait_for(lambda: requests.get(f"{full_stack.urls[service]}/health", timeout=5).status_code == 200,
             RECOVERY_S, interval=0.1, message=f"{service}'s new worker healthy")
    wait_for(service_ok, RECOVERY_S, interval=0.1, message=f"{service} ok on the aggregator again")
    recovered = time.monotonic() - killed
    assert master.poll() is None and len(_children(master.pid)) == 1
    assert "Traceback" not in full_stack.log_path.read_text(errors="replace")
    print(f"\nkill -9 of {service}'s worker: healthy on the aggregator again {recovered:.2f} s later")
