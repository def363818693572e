"""Fixtures for the serial handler: emulated boards on real ptys and the service in-process."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.serial_handler.app import create_app
from services.serial_handler.handler import SerialHandler
from shared.config import Settings
from testkit.emulator_process import EmulatorProcess
from testkit.helpers import wait_for
from testkit.served import ServedService
from tests.conftest import Started

BOARD_DEVICE_TYPES = ("temperature", "humidity", "motion", "sound_level", "battery", "window", "led")


def serial_overlay(boards: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An instance overlay with these boards (``{board_id: serial_ports entry fields}``), each
    feeding one device per type named ``<board>_<type>``; no automations, no groups."""
    ports, devices = [], []
    for board_id, fields in boards.items():
        ports.append({"board_id": board_id, "name": f"Board {board_id}", "silence_timeout": 30,
                      "command_timeout": 3, **fields})
        devices += [{"device_id": f"{board_id}_{t}", "name": f"{board_id} {t}", "type": t,
                     "source": {"board": board_id}} for t in BOARD_DEVICE_TYPES]
    return {"devices": devices, "groups": [],
            "config": {"serial_ports": ports, "window_automations": []}}


class Service(ServedService):
    """The serial handler served on loopback, with a follower recording its /events."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.handler = SerialHandler(settings)
        super().__init__(create_app(settings, self.handler), self.handler, settings.api_token)

    def board(self, board_id: str) -> dict[str, Any]:
        return self.get(f"/boards/{board_id}").json()

    def wait_online(self, board_id: str, timeout: float = 15.0) -> dict[str, Any]:
        return wait_for(lambda: (b := self.board(board_id))["online"] and b, timeout,
                        message=f"board {board_id} online")


@pytest.fixture
def emulators(cleanup: Started) -> Callable[..., EmulatorProcess]:
    """``start(*args)`` runs ``python -m firmware.emulator`` with a link and a control socket."""
    return lambda *args: cleanup.add(EmulatorProcess("--seed", "1", "--motion-rate", "0", *args))


@pytest.fixture
def services(make_settings: Callable[..., Settings], cleanup: Started) -> Callable[..., Service]:
    """``start({board_id: port fields})`` -> a running ``Service`` for those boards."""
    return lambda boards: cleanup.add(Service(make_settings(serial_overlay(boards))))


@pytest.fixture
def board(emulators: Callable[..., EmulatorProcess], services: Callable[..., Service]):
    """One emulated board (100 ms readings) and the service following it, online."""
    emulator = emulators("--interval-ms", "100", "--board-id", "b1", "--motor-speed", "1000")
    service = services({"b1": {"port": str(emulator.link), "command_timeout": 5}})
    service.wait_online("b1")
    return emulator, service
