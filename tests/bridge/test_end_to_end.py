"""The bridge in the real connector: an emulated board on a pty, ``python -m
services.serial_handler``, ``python -m services.state_aggregator`` and ``python mqtt_bridge.py``
as processes, and a private Mosquitto (with persistence, so the watching subscriber keeps its
session across the broker outage)."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.bridge.conftest import BASE
from tests.bridge.mqtt_watch import Watcher
from tests.conftest import ROOT, deep_merge, example_document
from tests.firmware.emulator_process import EmulatorProcess
from tests.helpers import free_port, wait_for
from tests.support.broker import MosquittoBroker

BOARD = "living_room_esp32"
STATUS = f"{BASE}/status"
PARTS = ("services/serial_handler/__main__.py", "services/state_aggregator/__main__.py",
         "firmware/emulator/__main__.py")

pytestmark = pytest.mark.skipif(not all((ROOT / p).exists() for p in PARTS), reason="the connector is not built yet")


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.processes: list[subprocess.Popen] = []
        board_dir = tmp / "board"
        board_dir.mkdir()
        # A short motion hold, so every PIR change the test makes is its own started/stopped event.
        (board_dir / "config.json").write_text(json.dumps({"config": {"motion_hold_ms": 50}}))
        self.emulator = EmulatorProcess("--seed", "1", "--motion-rate", "0", "--interval-ms", "600000",
                                        "--board-id", BOARD, "--motor-speed", "1000", "--state-dir", str(board_dir))
        self.broker = MosquittoBroker(persistence=True)
        self.broker.start()
        ports = {n: {"host": "127.0.0.1", "port": free_port()}
                 for n in ("serial_handler", "http_poller", "state_aggregator", "ml_inference")}
        doc = deep_merge(copy.deepcopy(example_document()), {"config": {
            "services": ports, "http_endpoints": [],
            "serial_ports": [{"board_id": BOARD, "name": "Living room ESP32", "port": str(self.emulator.link),
                              "command_timeout": 5, "silence_timeout": 30}]}})
        # Only the board's devices: the HTTP endpoints are not part of this stack.
        doc["devices"] = [d for d in doc["devices"] if "board" in d["source"]]
        doc["config"]["window_automations"] = []
        (tmp / "sensor_hub_01.json").write_text(json.dumps(doc))
        self.env = {**os.environ, "INSTANCE_NAME": "sensor_hub_01", "INSTANCES_DIR": str(tmp),
                    "DATA_DIR": str(tmp / "data"), "LOG_LEVEL": "INFO", "MQTT_HOST": "127.0.0.1",
                    "MQTT_PORT": str(self.broker.port), "IOT2MQTT_PATH": str(tmp)}
        self.aggregator_url = f"http://127.0.0.1:{ports['state_aggregator']['port']}"
        self.log = open(tmp / "stack.log", "ab")
        self.spawn("-m", "services.serial_handler")
        self.spawn("-m", "services.state_aggregator")
        wait_for(lambda: requests.get(self.aggregator_url + "/devices", timeout=2).json()["devices"][0], 60,
                 interval=0.1, message="aggregator up")
        self.bridge = self.spawn("mqtt_bridge.py")

    def spawn(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log)
        self.processes.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.emulator.stop()
        self.broker.close()
        self.log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Any:
    stack = Stack(tmp_path_factory.mktemp("bridge-e2e"))
    yield stack
    stack.close()


@pytest.fixture
def watch(stack):
    watcher = Watcher(stack.broker.port, ["IoT2mqtt/#"], client_id="e2e-watcher", persistent=True).start()
    watcher.wait(STATUS, lambda p: p == b"online", timeout=60)
    yield watcher
    watcher.stop()


def position(watcher: Watcher) -> bytes | None:
    return watcher.last(f"{BASE}/devices/living_window/state/position")


def test_cover_command_from_the_ha_topic_moves_the_emulated_window(stack, watch):
    watch.publish(f"{BASE}/ha/living_window/position", "60")
    watch.wait(f"{BASE}/devices/living_window/state/position", lambda p: p == b"60", timeout=30)
    assert stack.emulator.control({"get": "state"})["state"]["board"]["window"]["position"] == 60
    watch.publish(f"{BASE}/ha/living_window/set", "CLOSE")
    watch.wait(f"{BASE}/devices/living_window/state/position", lambda p: p == b"0", timeout=30)


def test_contract_command_round_trip_through_the_board(stack, watch):
    watch.publish(f"{BASE}/devices/living_led/cmd", {"id": "e2e-1", "values": {"state": "on", "color": "#00ff00"}})
    response = watch.wait_json(f"{BASE}/devices/living_led/cmd/response", lambda d: d["cmd_id"] == "e2e-1",
                               timeout=30)
    assert response["status"] == "success", response
    watch.publish(f"{BASE}/devices/living_window/cmd", {"id": "e2e-2", "values": {"position": 150}})
    response = watch.wait_json(f"{BASE}/devices/living_window/cmd/response", lambda d: d["cmd_id"] == "e2e-2",
                               timeout=30)
    assert response["status"] == "error" and response["error"] == "INVALID_VALUE" and response["message"]


@pytest.mark.slow
def test_broker_outage_while_the_board_emits_motion_events(stack, watch):
    events_topic = f"{BASE}/devices/living_motion/events"
    before = len(watch.on(events_topic))
    stack.broker.stop()
    pace = threading.Event()
    for n in range(10):  # ~10 s of motion and readings while the broker is away
        assert stack.emulator.control({"motion": n % 2 == 0})["ok"]
        assert stack.emulator.control({"set": {"temperature": 20 + n}})["ok"]
        assert stack.emulator.control({"burst": 1})["ok"]
        pace.wait(1.0)  # the board's pace, not a synchronisation
    assert stack.emulator.control({"motion": False})["ok"]
    stack.broker.start()
    watch.wait(STATUS, lambda p: p == b"online", timeout=60)  # without a restart of the bridge
    watch.wait(f"{BASE}/devices/living_temperature/state/temperature", lambda p: p == b"29.0", timeout=60)
    wait_for(lambda: len(watch.on(events_topic)) - before >= 10, timeout=60, message="the outage's motion events")
    events = [json.loads(p) for p in watch.on(events_topic)[before:]]
    kinds = [e["event"] for e in events]
    started = [k for k in kinds if k == "motion_started"]
    assert len(started) >= 5, kinds
    # In order: starts and stops alternate, as the board emitted them.
    assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False)), kinds
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)
    assert stack.bridge.poll() is None
