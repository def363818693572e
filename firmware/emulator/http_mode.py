"""`--http PORT`: the firmware's own HTTP mode, bound to loopback, following board reboots."""
from __future__ import annotations

import asyncio

from firmware.esp32.sensorhub.http import HttpApi, serve

from .device import Device


class DeviceApi(HttpApi):
    """HttpApi that always serves the board currently running (a reboot makes a new Board)."""

    def __init__(self, device: Device) -> None:
        self.device = device

    @property
    def board(self):  # type: ignore[override]
        return self.device.board


async def start_http(device: Device, host: str, port: int) -> tuple[asyncio.AbstractServer, int]:
    api = DeviceApi(device)
    server = await serve(api, host, port)
    bound = server.sockets[0].getsockname()[1]
    return server, bound
