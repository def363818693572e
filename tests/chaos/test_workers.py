"""kill -9 of a service, as an out-of-memory kill would: its supervisor starts it again (here the
test, at once, as supervisord's autorestart does), and it opens the board again and serves as
before; the aggregator sees it back (docs/reliability.md).

A service is one process (shared/server.py: gunicorn's worker without its master), so the
kill takes the whole program. The whole chain is real processes (testkit/connector.py): an
emulated board on a pty, the serial handler, the aggregator and the bridge under a private
Mosquitto. The aggregator is killed in tests/chaos/test_resume.py, with every event counted.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit.connector import ConnectorStack
from testkit.helpers import authorization, wait_for

pytestmark = pytest.mark.slow

RECOVERY_S = 30.0
"""From the kill to a command carried out by the board again; measured about 1-2 s (the new
process's imports and the board's hello)."""


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


def service_process(stack: ConnectorStack, module: str):
    return next(p for p in stack.processes if p.args[1:] == ["-m", module] and p.poll() is None)


def test_kill_9_of_the_serial_handler(stack: ConnectorStack):
    handler = service_process(stack, "services.serial_handler")
    wait_for(lambda: led_command(stack, "before-1").status_code == 200, 60, interval=0.2,
             message="a command carried out before the kill")

    stack.kill(handler)  # returns once it is gone
    killed = time.monotonic()
    seen_at_kill = last_seen(stack)
    stack.spawn("-m", "services.serial_handler")

    wait_for(lambda: led_command(stack, "after-1").status_code == 200, RECOVERY_S, interval=0.2,
             message="a command carried out by the board after the kill")
    recovered = time.monotonic() - killed
    wait_for(lambda: last_seen(stack) != seen_at_kill, 10, interval=0.2, message="readings flowing again")
    log = stack.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    print(f"\nkill -9 of the serial handler: commands carried out again {recovered:.2f} s later")


@pytest.fixture
def full_stack(tmp_path: Path, default_model: Path) -> Iterator[ConnectorStack]:
    """Every service: the board, the HTTP sensors and the window automation."""
    stack = ConnectorStack(tmp_path, interval_ms=200, http=True, automation=default_model)
    try:
        yield stack
    finally:
        stack.close()


@pytest.mark.parametrize("service", ["http_poller", "ml_inference"])
def test_kill_9_of_a_service_and_the_aggregator_sees_it_back(full_stack: ConnectorStack, service: str):
    """The aggregator follows each handler's stream: after the service's death it reconnects to
    the new process and reports the service ok again, its devices online."""
    def service_ok() -> bool:
        health = requests.get(f"{full_stack.aggregator_url}/health", timeout=10).json()
        return health["services"][service]["status"] == "ok"

    wait_for(service_ok, 60, interval=0.2, message=f"{service} ok on the aggregator")
    full_stack.kill(service_process(full_stack, f"services.{service}"))
    killed = time.monotonic()
    full_stack.spawn("-m", f"services.{service}")
    wait_for(lambda: requests.get(f"{full_stack.urls[service]}/health", timeout=5).status_code == 200,
             RECOVERY_S, interval=0.1, message=f"{service} healthy again")
    wait_for(service_ok, RECOVERY_S, interval=0.1, message=f"{service} ok on the aggregator again")
    recovered = time.monotonic() - killed
    assert "Traceback" not in full_stack.log_path.read_text(errors="replace")
    print(f"\nkill -9 of {service}: healthy on the aggregator again {recovered:.2f} s later")
