"""A stuffy room opens the window: CO2 from a simulated SCD40 on the emulated board, through the
serial handler, the aggregator's automation and ml_inference's default model (real processes).

Nothing in the services names co2: the board's line field, the device type, the automation input,
its range and the comfort rule's airing need all come from the registry (shared/devices.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firmware.esp32.sensorhub.board import DEFAULT_CAPS
from testkit.helpers import wait_for
from tests.state_aggregator.test_window_automation import AUTOMATION, BOARD, COOL, AutomationStack

CO2 = "living_co2"


def with_co2(doc: dict[str, Any]) -> None:
    doc["devices"].append({"device_id": CO2, "name": "Living room CO2", "type": "co2", "source": {"board": BOARD}})
    doc["config"]["window_automations"][0]["sensors"]["co2"] = CO2


@pytest.fixture(scope="module")
def stack(tmp_path_factory, default_model: Path):
    stack = AutomationStack(tmp_path_factory.mktemp("window-automation-co2"), default_model,
                            caps=",".join((*DEFAULT_CAPS, "co2")), adapt=with_co2)
    yield stack
    stack.close()


def test_high_co2_opens_the_window(stack: AutomationStack):
    stack.readings({**COOL, "co2": 600})
    stack.settle()  # cool, fresh air: the window stays closed
    assert stack.status()["last"]["inputs"]["co2"] == 600
    mark = stack.mark()
    stack.readings({**COOL, "co2": 1800})  # a stuffy room, neither warm nor humid
    moved = wait_for(lambda: stack.events("automation_moved", mark), 15, interval=0.01,
                     message="automation_moved for the stuffy room")[0]["data"]
    assert moved["automation"] == AUTOMATION and moved["inputs"]["co2"] == 1800
    assert moved["inputs"]["temperature"] < 22  # not heat: the CO2 alone opened it
    assert 70 <= moved["position"] <= 80  # fully needed, up to the automation's max_position
    assert stack.aggregator.device(CO2)["state"] == {"co2": 1800}
    wait_for(lambda: stack.board_window()["position"] == moved["position"], 15, message="the board's window open")
