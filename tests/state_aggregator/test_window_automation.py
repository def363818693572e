"""The window automation end to end: an emulated board on a pty, ``python -m services.serial_handler``
and ``python -m services.ml_inference`` as real processes (the real default model), and the
aggregator over real HTTP in front of them.

A reading changed on the board's control channel reaches the aggregator as a pushed state event;
the automation asks ml_inference, sends the window command through the aggregator's routing,
the board acks it and the window's position changes. The automation's interval is a minute, so
a move within seconds proves it reacts to the push. One stack per module; each test starts by
settling it (ml_inference up, the switch on, cool readings, the window still), so order does not
matter.

Only the paths through every part are here (a warm room opens the window; a person's command
holds it, the switch ends the hold; a person's command while it suggests becomes a
correction ml_inference learns from). Each rule on its own is a unit test of the core
(test_automation_core.py); the runner over real HTTP is test_window_automation_runner.py, and the
pause without ml_inference is test_with_scripted_handler.py's.
"""
from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.api_token import ENV_NAME
from shared.config import settings_from_dict
from testkit.emulator_process import EmulatorProcess
from testkit.example import deep_merge, example_document
from testkit.helpers import TEST_API_TOKEN, wait_for
from testkit.service_process import ServiceProcess
from tests.ml_inference.conftest import install_model
from tests.state_aggregator.conftest import AggregatorUnderTest, EventTap, service_ports

BOARD = "living_room_esp32"
AUTOMATION, WINDOW, SWITCH = "living_window_auto", "living_window", "living_window_auto_switch"
COOL = {"temperature": 21.0, "humidity": 45.0, "sound_dbfs": -60.0}
WARM = {"temperature": 30.0, "humidity": 45.0, "sound_dbfs": -60.0}


def automation_document(emulator_link: str, services: dict[str, Any]) -> dict[str, Any]:
    """The example instance with only the board's devices, the automation's switch, and an
    automation fed by the board alone (no outdoor temperature: there is no HTTP endpoint here)."""
    doc = deep_merge(copy.deepcopy(example_document()), {"config": {
        "services": services, "http_endpoints": [],
        "serial_ports": [{"board_id": BOARD, "name": "Living room ESP32", "port": emulator_link,
                          "command_timeout": 5, "silence_timeout": 60}]}})
    doc["devices"] = [d for d in doc["devices"] if "board" in d["source"]] + [
        {"device_id": SWITCH, "name": "Living room fresh air", "type": "switch", "source": {"automation": AUTOMATION}}]
    doc["config"]["window_automations"] = [{
        "automation_id": AUTOMATION, "name": "Living room fresh air", "window": WINDOW,
        "sensors": {"temperature": "living_temperature", "humidity": "living_humidity",
                    "motion": "living_motion", "sound_level": "living_sound"},
        "mode": "auto", "min_change": 10, "interval": 60, "min_position": 0, "max_position": 80,
        "manual_hold": 600}]
    return doc


class AutomationStack:
    def __init__(self, tmp: Path, default_model: Path, caps: str | None = None,
                 adapt: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.emulator = EmulatorProcess("--seed", "1", "--motion-rate", "0", "--interval-ms", "600000",
                                        "--board-id", BOARD, "--motor-speed", "1000",
                                        *(("--caps", caps) if caps else ()))
        services = service_ports()
        doc = automation_document(str(self.emulator.link), services)
        if adapt is not None:
            adapt(doc)
        (tmp / "sensor_hub_01.json").write_text(json.dumps(doc))
        env = {**os.environ, "INSTANCE_NAME": "sensor_hub_01", "INSTANCES_DIR": str(tmp),
               "DATA_DIR": str(tmp / "data"), "LOG_LEVEL": "INFO", ENV_NAME: TEST_API_TOKEN}
        # The instance's token as a secret, the same for the processes and the aggregator here.
        settings = settings_from_dict(doc, {"INSTANCE_NAME": "sensor_hub_01", "DATA_DIR": str(tmp / "data"),
                                            ENV_NAME: TEST_API_TOKEN})
        install_model(default_model, settings.data_dir)
        self.serial = ServiceProcess("services.serial_handler", settings.service("serial_handler").url, env,
                                     tmp / "serial_handler.log").start("/sensors")
        self.ml = ServiceProcess("services.ml_inference", settings.service("ml_inference").url, env,
                                 tmp / "ml_inference.log").start("/health")
        self.aggregator = AggregatorUnderTest(settings)
        self.tap = EventTap(self.aggregator.url)
        wait_for(lambda: self.aggregator.listed()[WINDOW]["online"], 30, message="board devices online")

    # -- reading the stack

    def status(self) -> dict[str, Any]:
        return self.aggregator.aggregator.automations.statuses()[AUTOMATION]

    def window(self) -> dict[str, Any]:
        """The window as the aggregator shows it."""
        return self.aggregator.device(WINDOW)["state"]

    def board_window(self) -> dict[str, Any]:
        """The window as the board has it (its motor)."""
        return self.emulator.control({"get": "state"})["state"]["board"]["window"]

    def events(self, name: str, since: int = 0) -> list[dict[str, Any]]:
        with self.tap.lock:
            found = [data for kind, data, _ in self.tap.events[since:] if kind == "event" and data.get("event") == name]
        return [e for e in found if e.get("device_id") == WINDOW]

    def mark(self) -> int:
        with self.tap.lock:
            return len(self.tap.events)

    # -- driving it

    def readings(self, values: dict[str, float], motion: bool = False) -> None:
        """Pin the board's readings and have it send a sensor line now."""
        assert self.emulator.control({"set": values})["ok"]
        assert self.emulator.control({"motion": motion})["ok"]
        assert self.emulator.control({"burst": 1})["ok"]

    def command(self, device_id: str, body: dict[str, Any]) -> requests.Response:
        return self.aggregator.post(f"/device/{device_id}/cmd", json=body)

    def settle(self) -> None:
        """ml_inference ready, automatic mode (any manual hold over), cool readings, the window closed and still."""
        wait_for(lambda: requests.get(self.ml.url + "/health", timeout=2).status_code == 200, 60,
                 message="ml_inference ready")
        wait_for(lambda: self.command(SWITCH, {"state": "on"}).status_code == 200, 30, interval=0.2,
                 message="the automation's switch on")
        self.readings({**COOL, "temperature": COOL["temperature"] + (time.monotonic() % 1) / 10})
        wait_for(lambda: self.status()["status"] == "running" and (self.status()["last"] or {}).get("action") == "stay"
                 and self.window().get("moving") is False and self.window().get("position", 100) <= 10, 30,
                 interval=0.05, message="the automation settled with the window closed")

    def close(self) -> None:
        self.tap.close()
        self.aggregator.close()
        self.ml.stop()
        self.serial.stop()
        self.emulator.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, default_model: Path):
    stack = AutomationStack(tmp_path_factory.mktemp("window-automation"), default_model)
    yield stack
    stack.close()


def test_a_warmer_room_opens_the_window_through_the_board(stack: AutomationStack):
    stack.settle()
    mark = stack.mark()
    started = time.monotonic()
    stack.readings(WARM)
    moved = wait_for(lambda: stack.events("automation_moved", mark), 15, interval=0.01,
                     message="automation_moved on the aggregator's /events")[0]
    reaction_s = time.monotonic() - started
    data = moved["data"]
    assert data["cmd_id"].startswith(f"auto-{AUTOMATION}-") and data["automation"] == AUTOMATION
    assert 50 <= data["position"] <= 70  # warm, no outdoor reading: the rule opens 60 %
    assert data["inputs"]["temperature"] == 30.0 and data["result"]["target"] == data["position"]  # the board's ack
    assert reaction_s < 5, f"took {reaction_s:.2f} s: the automation reacts to the push, not its 60 s interval"
    # The board's motor went there, and the aggregator shows it.
    wait_for(lambda: stack.board_window() == {"position": data["position"], "target": data["position"],
                                              "moving": False}, 15, message="the board's window at the target")
    wait_for(lambda: stack.window().get("position") == data["position"], 15,
             message="the window's position on the aggregator")
    recommendation = stack.events("automation_recommendation", mark)[-1]["data"]
    assert recommendation["action"] == "move" and recommendation["confidence"] >= 0.6
    assert stack.status()["moves"] >= 1 and stack.status()["last_move"]["cmd_id"] == data["cmd_id"]


def warm_recommendation(stack: AutomationStack, mark: int, action: str) -> dict:
    """The recommendation made from the warm readings: one triggered by the window coming to rest
    may still land after the mark, with the cool room's inputs."""
    return wait_for(lambda: [e for e in stack.events("automation_recommendation", mark)
                             if e["data"]["action"] == action
                             and e["data"]["inputs"].get("temperature") == WARM["temperature"]], 15,
                    message=f"a {action} recommendation for the warm room")[0]["data"]


def test_a_manual_command_holds_the_automation_off(stack: AutomationStack):
    stack.settle()
    answer = stack.command(WINDOW, {"id": "user-1", "values": {"position": 20}})
    assert answer.status_code == 200
    wait_for(lambda: stack.board_window()["position"] == 20 and not stack.board_window()["moving"], 15,
             message="the person's move done")
    mark = stack.mark()
    stack.readings(WARM)
    held = warm_recommendation(stack, mark, "hold")
    assert "user-1" in held["reason"] and held["held_until"] and held["position"] >= 50
    assert stack.board_window()["target"] == 20 and not stack.events("automation_moved", mark)
    assert stack.status()["manual"]["cmd_id"] == "user-1"
    # Switching the automation on ends the hold at once: the window goes where the model says.
    assert stack.command(SWITCH, {"state": "on"}).status_code == 200
    moved = wait_for(lambda: stack.events("automation_moved", mark), 15, message="moved after the switch")[0]
    assert moved["data"]["position"] >= 50
    wait_for(lambda: stack.board_window()["position"] == moved["data"]["position"], 15, message="window moved")


def test_a_persons_command_while_the_automation_suggests_becomes_a_correction(stack: AutomationStack):
    stack.settle()
    assert stack.command(SWITCH, {"state": "off"}).status_code == 200
    mark = stack.mark()
    stack.readings(WARM)
    warm_recommendation(stack, mark, "suggest")
    assert stack.command(WINDOW, {"id": "user-2", "values": {"position": 35}}).status_code == 200
    headers = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
    stored = wait_for(lambda: [c for c in requests.get(stack.ml.url + "/corrections", headers=headers, timeout=5)
                               .json()["corrections"] if c["position"] == 35], 15,
                      message="the person's choice stored as a correction")[0]
    assert stored["source"] == "aggregator" and stored["automation"] == AUTOMATION and stored["window"] == WINDOW
    assert stored["inputs"]["temperature"] == WARM["temperature"]
