"""The window automation as MQTT sees it, every program a real process (``ConnectorStack`` with
ml_inference): a warmer room → the automation's events and the window's new position on MQTT;
its switch is a Home Assistant switch that turns automatic moves off."""
from __future__ import annotations

from pathlib import Path

import pytest

from testkit.connector import AUTOMATION_SWITCH, ConnectorStack
from testkit.mqtt_watch import Watcher

BASE = "IoT2mqtt/v1/instances/sensor_hub_01"
WINDOW = f"{BASE}/devices/living_window"


@pytest.fixture
def connector(tmp_path: Path, default_model: Path, cleanup) -> ConnectorStack:
    stack = ConnectorStack(tmp_path, automation=default_model)
    cleanup.add(stack, stop=stack.close)
    return stack


@pytest.fixture
def watch(connector: ConnectorStack, cleanup) -> Watcher:
    watcher = cleanup.add(Watcher(connector.broker.port, ["IoT2mqtt/#"], client_id="automation-watcher").start())
    watcher.wait(f"{BASE}/status", lambda p: p == b"online", timeout=60)
    return watcher


def readings(connector: ConnectorStack, temperature: float) -> None:
    for request in ({"set": {"temperature": temperature, "humidity": 45.0, "sound_dbfs": -60.0}},
                    {"motion": False}, {"burst": 1}):
        assert connector.emulator.control(request)["ok"]


def test_the_automation_moves_the_window_and_says_so_on_mqtt(connector: ConnectorStack, watch: Watcher):
    # Availability may reach MQTT before the switch's first state: wait for both.
    switch = watch.wait_json(f"{BASE}/devices/{AUTOMATION_SWITCH}/state",
                             lambda d: d["state"].get("online") and "state" in d["state"], 60)
    assert switch["state"]["state"] == "on" and switch["state"]["mode"] == "auto"
    readings(connector, 21.0)
    watch.wait(f"{WINDOW}/state/position", lambda p: p == b"0", timeout=30)
    watch.wait_json(f"{WINDOW}/events", lambda d: d["event"] == "automation_recommendation"
                    and d["data"]["action"] == "stay", timeout=30)
    watch.clear()  # from here on, only what the warmer room causes
    readings(connector, 30.0)
    moved = watch.wait_json(f"{WINDOW}/events", lambda d: d["event"] == "automation_moved", timeout=30)
    position = moved["data"]["position"]
    assert moved["data"]["cmd_id"].startswith("auto-living_window_auto-") and 50 <= position <= 70
    watch.wait(f"{WINDOW}/state/position", lambda p: p == str(position).encode(), timeout=30)
    # The decision that moved it (a "stay" may follow once the window is at rest).
    moves = [e for e in watch.json_on(f"{WINDOW}/events")
             if e["event"] == "automation_recommendation" and e["data"]["action"] == "move"]
    assert moves and moves[-1]["data"]["inputs"]["temperature"] == 30.0
    # The Home Assistant switch turns automatic moves off: a colder room is then only a suggestion.
    watch.publish(f"{BASE}/ha/{AUTOMATION_SWITCH}/set", "OFF")
    watch.wait(f"{BASE}/devices/{AUTOMATION_SWITCH}/state/state", lambda p: p == b"off", timeout=30)
    readings(connector, 19.0)
    suggestion = watch.wait_json(f"{WINDOW}/events", lambda d: d["event"] == "automation_recommendation"
                                 and d["data"]["action"] == "suggest", timeout=30)
    assert suggestion["data"]["position"] == 0
    assert connector.emulator.control({"get": "state"})["state"]["board"]["window"]["target"] == position
    # The model version on MQTT: the switch's state names it and offers the versions to pick from;
    # a contract command picks one (Home Assistant's select sends the same), an unknown one is refused.
    switch_topic = f"{BASE}/devices/{AUTOMATION_SWITCH}"
    state = watch.wait_json(f"{switch_topic}/state", lambda d: d["state"].get("models"), timeout=30)["state"]
    assert state["model"] in state["models"] and isinstance(state["model_error"], float)
    watch.publish(f"{switch_topic}/cmd", {"id": "roll-1", "values": {"model": "window-v1:000000000000"}})
    refused = watch.wait_json(f"{switch_topic}/cmd/response", lambda d: d["cmd_id"] == "roll-1", timeout=30)
    assert refused["status"] == "error" and refused["error"] == "UNKNOWN_VERSION"
    watch.publish(f"{switch_topic}/cmd", {"id": "roll-2", "values": {"model": state["models"][0]}})
    done = watch.wait_json(f"{switch_topic}/cmd/response", lambda d: d["cmd_id"] == "roll-2", timeout=30)
    assert done["status"] == "success" and done["result"]["result"]["model"] == state["models"][0]  # the switch state
