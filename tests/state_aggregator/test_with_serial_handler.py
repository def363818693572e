"""The aggregator in front of a real serial-handler process and an emulated board on a pty.

One stack per module (board emulator, ``python -m services.serial_handler``, aggregator over
real HTTP): starting a gunicorn process per test would cost more than the tests themselves.
The kill test restarts the handler and waits until everything is back, so order does not
matter.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.api_token import ENV_NAME
from shared.config import settings_from_dict
from testkit.emulator_process import EmulatorProcess
from testkit.example import ROOT, deep_merge, example_document
from testkit.helpers import TEST_API_TOKEN, wait_for
from tests.state_aggregator.conftest import AggregatorUnderTest, EventTap, service_ports

BOARD = "living_room_esp32"


class HandlerProcess:
    """``python -m services.serial_handler`` for an instance file, killable and restartable."""

    def __init__(self, instances_dir: Path, url: str) -> None:
        self.url = url
        self.env = {**os.environ, "INSTANCE_NAME": "sensor_hub_01", "INSTANCES_DIR": str(instances_dir),
                    "DATA_DIR": str(instances_dir / "data"), "LOG_LEVEL": "WARNING", ENV_NAME: TEST_API_TOKEN}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "services.serial_handler"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)  # its own group: kill() takes the worker too
        wait_for(lambda: requests.get(self.url + "/sensors", timeout=2).ok, 30, message="serial handler up")

    def kill(self) -> None:
        """Die at once, the service and anything it started alike (a crash, an OOM kill)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def commands_sent(self) -> float:
        """Commands the handler carried to a board (its command-time histogram's count)."""
        text = requests.get(self.url + "/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("sensor_hub_serial_command_seconds_count"))


class Stack:
    def __init__(self, tmp: Path) -> None:
        # A long reading interval: nothing arrives unless a test asks the board for it.
        self.emulator = EmulatorProcess("--seed", "1", "--motion-rate", "0", "--interval-ms", "600000",
                                        "--board-id", BOARD, "--motor-speed", "1000")
        services = service_ports()
        doc = deep_merge(copy.deepcopy(example_document()), {"config": {
            "services": services, "cache_ttl": 1.0,
            "serial_ports": [{"board_id": BOARD, "name": "Living room ESP32", "port": str(self.emulator.link),
                              "command_timeout": 5, "silence_timeout": 30}]}})
        (tmp / "sensor_hub_01.json").write_text(json.dumps(doc))
        # The instance's token as a secret, the same for the handler process and the aggregator here.
        settings = settings_from_dict(doc, {"INSTANCE_NAME": "sensor_hub_01", "DATA_DIR": str(tmp / "data"),
                                            ENV_NAME: TEST_API_TOKEN})
        self.handler = HandlerProcess(tmp, settings.service("serial_handler").url)
        self.handler.start()
        self.aggregator = AggregatorUnderTest(settings)
        wait_for(lambda: self.aggregator.listed()["living_window"]["online"], 30, message="board devices online")

    def close(self) -> None:
        self.aggregator.close()
        self.handler.stop()
        self.emulator.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Any:
    stack = Stack(tmp_path_factory.mktemp("aggregator-serial"))
    yield stack
    stack.close()


def test_a_reading_is_in_devices_and_on_events(stack):
    tap = EventTap(stack.aggregator.url)
    try:
        wait_for(lambda: stack.aggregator.aggregator.publisher.stats()["clients"] >= 1, 10)
        assert stack.emulator.control({"set": {"temperature": 31.5}})["ok"]
        assert stack.emulator.control({"burst": 1})["ok"]
        event = wait_for(lambda: [e for e in tap.matching("state", device_id="living_temperature")
                                  if e["state"].get("temperature") == 31.5], 15, message="reading on /events")[0]
        assert event["source"] == "serial_handler"
        listed = stack.aggregator.listed(include="state")["living_temperature"]
        assert listed["state"]["temperature"] == 31.5 and listed["online"] is True
        assert listed["last_seen"] is not None
    finally:
        tap.close()


def test_ttl_expiry_refreshes_from_the_handler(stack):
    stack.aggregator.device("living_humidity")
    before = stack.aggregator.get("/cache/stats").json()["refreshes"]
    # No reading arrives (600 s interval): after cache_ttl (1 s) the read goes to the handler.
    view = wait_for(lambda: (v := stack.aggregator.device("living_humidity"))["cache"] == "refreshed" and v,
                    15, interval=0.1, message="a refresh after the TTL")
    assert "humidity" in view["state"]
    assert stack.aggregator.get("/cache/stats").json()["refreshes"] > before
    forced = stack.aggregator.post("/device/living_humidity/force-refresh").json()
    assert forced["cache"] == "refreshed" and forced["online"] is True


def test_a_fresh_read_the_board_does_not_answer_says_so(stack):
    assert stack.emulator.control({"fault": "noack"})["ok"]
    try:
        view = stack.aggregator.get("/device/living_sound?fresh=1").json()
    finally:
        assert stack.emulator.control({"fault": "clear"})["ok"]
    assert view["cache"] in ("stale", "miss")
    assert view["refresh_error"]["error"] == "NOT_FRESH" and view["refresh_error"]["message"]


@pytest.mark.parametrize(("device_id", "values", "expect"), [
    ("living_window", {"position": 60}, {"target": 60}),
    ("living_led", {"state": "on", "color": "#FF8800", "brightness": 128}, {"state": "on", "color": "#ff8800"}),
    ("living_temperature", {"interval": 600}, {"interval_ms": 600000}),
    ("living_motion", {"interval": 600}, {"interval_ms": 600000}),
])
def test_a_command_reaches_the_board_and_its_result_comes_back(stack, device_id, values, expect):
    before = stack.handler.commands_sent()
    response = stack.aggregator.post(f"/device/{device_id}/cmd", json={"id": f"t-{device_id}", "values": values})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["cmd_id"] == f"t-{device_id}"
    assert body["service"] == "serial_handler"
    assert {k: body["result"][k] for k in expect} == expect
    assert stack.handler.commands_sent() == before + 1


@pytest.mark.parametrize(("device_id", "body", "status", "code"), [
    ("no_such_device", {"position": 10}, 404, "UNKNOWN_DEVICE"),
    ("living_window", {"position": "half"}, 400, "INVALID_VALUE"),
    ("living_window", {"position": 101}, 400, "INVALID_VALUE"),
    ("living_led", {"color": "orange"}, 400, "INVALID_VALUE"),
    ("living_battery", {"interval": 0}, 400, "INVALID_VALUE"),
])
def test_an_invalid_command_is_refused_without_touching_the_device(stack, device_id, body, status, code):
    before = stack.handler.commands_sent()
    response = stack.aggregator.post(f"/device/{device_id}/cmd", json=body)
    assert response.status_code == status
    assert response.json()["error"] == code and response.json()["message"]
    assert stack.handler.commands_sent() == before


def test_a_killed_handler_makes_its_devices_unavailable_until_it_is_back(stack):
    stack.handler.kill()
    # While the process dies a probe may find it "not responding"; the reason settles on
    # "service not running" once nothing listens any more.
    wait_for(lambda: all(not d["online"] and d["reason"] == "service not running"
                         for d in stack.aggregator.listed().values() if d["service"] == "serial_handler"),
             15, message="devices unavailable after the kill")
    health = stack.aggregator.get("/health")
    assert health.status_code == 503  # no service that owns devices is reachable
    assert health.json()["services"]["serial_handler"]["status"] == "service not running"
    stack.handler.start()
    wait_for(lambda: all(d["online"] for d in stack.aggregator.listed().values()
                         if d["service"] == "serial_handler"), 30, message="devices back by themselves")
    assert stack.aggregator.get("/health").status_code == 200
