"""The bridge in the real connector: an emulated board on a pty, ``python -m
services.serial_handler``, ``python -m services.state_aggregator`` and ``python mqtt_bridge.py``
as processes, and a private Mosquitto (with persistence, so the watching subscriber keeps its
session across the broker outage)."""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from testkit.connector import ConnectorStack
from testkit.helpers import wait_for
from testkit.mqtt_watch import Watcher
from tests.bridge.conftest import BASE

STATUS = f"{BASE}/status"

@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Any:
    stack = ConnectorStack(tmp_path_factory.mktemp("bridge-e2e"))
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
