"""Board command handling, alerts and the asyncio app, on the simulated HAL without a pty."""
from __future__ import annotations

import asyncio
import json

import pytest

from firmware.emulator.physics import Room
from firmware.emulator.simhal import SimHal
from firmware.esp32.sensorhub.app import App
from firmware.esp32.sensorhub.board import Board


class Wire:
    """Collects what the board writes to the serial line."""

    def __init__(self):
        self.lines = []

    def __call__(self, data: bytes) -> bool:
        assert data.endswith(b"\n") and data.count(b"\n") == 1
        self.lines.append(json.loads(data))
        return True

    def of(self, kind):
        return [m for m in self.lines if m["type"] == kind]


@pytest.fixture
def wire():
    return Wire()


@pytest.fixture
def room():
    return Room(seed=5, motion_per_hour=0)


@pytest.fixture
def board(room, wire):
    return Board(SimHal(room, wire), "b-1")


def send(board, msg):
    board.handle_line(json.dumps(msg).encode())


def test_every_line_takes_the_next_seq_across_types(board, wire):
    board.hello()
    board.status(0)
    send(board, {"type": "ping", "id": "p"})
    send(board, {"type": "read", "id": "r"})
    board.handle_line(b"nope")
    assert [m["seq"] for m in wire.lines] == list(range(len(wire.lines)))
    assert [m["type"] for m in wire.lines] == ["hello", "status", "ack", "sensor", "ack", "error"]


def test_hello_and_status_report_the_leds_real_state(board, wire):
    """The host knows the LED's on/off before it ever commands it: hello and status carry it."""
    board.hello()
    assert wire.of("hello")[-1]["led"]["state"] == "off"
    board.status(0)
    assert wire.of("status")[-1]["led"] == {"state": "off", "color": "#ffffff", "brightness": 255, "blink": 0}
    send(board, {"type": "led", "state": "on", "color": "#00ff00"})
    board.status(1)
    assert wire.of("status")[-1]["led"]["state"] == "on" and wire.of("status")[-1]["led"]["color"] == "#00ff00"


def test_a_board_without_led_reports_none(room, wire):
    Board(SimHal(room, wire), "b-2", caps=("temperature",)).status(0)
    assert "led" not in wire.of("status")[-1]


def test_command_without_id_is_not_acked_but_a_refusal_is_reported(board, wire):
    send(board, {"type": "led", "state": "on"})
    assert wire.lines == []
    send(board, {"type": "led", "brightness": 999})
    assert wire.lines[0]["type"] == "error" and wire.lines[0]["error"] == "rejected"


def test_refused_config_changes_nothing(board, wire):
    send(board, {"type": "config", "id": "c", "interval_ms": 1000, "led_mode": "rainbow"})
    assert wire.lines[-1]["ok"] is False and board.config["interval_ms"] == 5000


def test_config_and_calibration_survive_a_reboot(room, wire):
    hal = SimHal(room, wire)
    board = Board(hal, "b-1")
    send(board, {"type": "config", "id": "c", "interval_ms": 1000})
    send(board, {"type": "calibrate", "id": "k", "max_us": 2200})
    hal.reboot("soft")
    again = Board(hal, "b-1")
    assert again.config["interval_ms"] == 1000 and again.calibration["max_us"] == 2200
    assert again.seq == 0


def test_alerts_fire_once_per_transition_with_hysteresis(board, room, wire):
    for temp in (30.0, 35.5, 36.0, 34.5, 33.9, 36.0):
        room.set({"temperature": temp})
        board.sensor(0)
    alerts = [(a["active"], a["value"]) for a in wire.of("alert") if a["alert"] == "high_temperature"]
    assert alerts == [(True, 35.5), (False, 33.9), (True, 36.0)]
    room.set({"battery_v": 3.55})
    board.sensor(0)
    low = [a for a in wire.of("alert") if a["alert"] == "low_battery"]
    assert low and low[-1]["active"] is True and low[-1]["threshold"] == 15


def test_board_without_a_window_refuses_window_commands(room, wire):
    board = Board(SimHal(room, wire), "b-2", caps=("temperature", "humidity"))
    send(board, {"type": "window", "id": "w", "position": 10})
    assert wire.lines[-1]["ok"] is False and "no window" in wire.lines[-1]["error"]
    board.sensor(0)
    assert set(wire.of("sensor")[0]) == {"type", "seq", "uptime_s", "temperature", "humidity"}


def run_app(board, until, timeout=10.0):
    async def go():
        app = App(board)
        task = asyncio.create_task(app.run())
        deadline = asyncio.get_running_loop().time() + timeout
        while not until() and not task.done():
            assert asyncio.get_running_loop().time() < deadline, "condition not reached"
            await asyncio.sleep(0.01)
        app.finish("test")
        return await task
    return asyncio.run(go())


def test_app_sends_hello_status_then_readings_and_feeds_the_watchdog(room, wire):
    hal = SimHal(room, wire)
    board = Board(hal, "b-3")
    board.config["interval_ms"] = 50
    run_app(board, lambda: len(wire.of("sensor")) >= 3)
    assert [m["type"] for m in wire.lines[:2]] == ["hello", "status"]
    assert hal.wdt_timeout and hal.wdt_fed_at is not None


def test_app_ends_with_sleep_when_deep_sleep_is_configured(room, wire):
    board = Board(SimHal(room, wire), "b-4")
    board.config["interval_ms"] = 50
    board.config["deep_sleep"] = True
    assert run_app(board, lambda: False) == "sleep"
    assert len(wire.of("sensor")) == 1


def test_app_reset_command_acks_before_ending(room, wire):
    hal = SimHal(room, wire)
    board = Board(hal, "b-5")
    hal.input.put_nowait(b'{"type":"reset","id":"x","factory":true}\n')
    send(board, {"type": "config", "id": "c", "interval_ms": 1234})
    assert run_app(board, lambda: False) == "reset"
    assert any(m["type"] == "ack" and m["id"] == "x" for m in wire.lines)
    assert hal.read_file("config.json") is None     # factory reset erased the settings


def test_led_follows_motion_in_motion_mode(room, wire):
    hal = SimHal(room, wire)
    board = Board(hal, "b-6")
    send(board, {"type": "led", "id": "l", "color": "#00ff00"})
    send(board, {"type": "config", "id": "c", "led_mode": "motion", "motion_hold_ms": 0})
    room.forced_motion = True
    room.step()
    run_app(board, lambda: hal.led == (0, 255, 0))
    assert wire.of("event")[0]["event"] == "motion_started"


def test_a_board_with_an_scd40_reports_co2_in_its_sensor_line(room, wire):
    board = Board(SimHal(room, wire), "b-3", caps=("temperature", "humidity", "co2"))
    room.set({"co2": 1234})
    board.sensor(0)
    line = wire.of("sensor")[-1]
    assert line["co2"] == 1234 and "co2" in board.caps
    board.hal.sensor_faults["co2"] = 1
    board.sensor(0)
    assert wire.of("sensor")[-1]["co2"] is None  # a failed read is null, as for every sensor
    board.status(0)
    assert wire.of("status")[-1]["sensor_errors"]["co2"] == 1
