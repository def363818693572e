"""What the serial handler's and the HTTP poller's domain cores have alike (no Flask).

Both own a ``DeviceTable`` of the devices they feed, the ``EventPublisher`` behind ``GET /events``,
the ``ErrorLog`` behind ``GET /errors`` and their ``Metrics``; both answer the Handler API's
device queries (shared/handler_api.py serves them) the same way. What a board line or an
endpoint's answer means, and how a command reaches the device, stays in each service.
"""
from __future__ import annotations

import uuid
from typing import Any

from shared.commands import UNKNOWN_DEVICE, Command, CommandError
from shared.config import Settings
from shared.device_table import Device, DeviceTable
from shared.error_log import ErrorLog
from shared.metrics import Metrics
from shared.sse import EventPublisher


def command_id(command: Command) -> str:
    """The command's own id, or a new one (logs and the answer name every command)."""
    return command.cmd_id or uuid.uuid4().hex[:12]


class HandlerCore:
    """The device queries, the error record and the parts every handler core holds.

    ``where`` names the service in an unknown device's refusal ("No device 'x' on the serial
    handler.")."""

    where = "this service"

    def __init__(self, service: str, settings: Settings, devices: DeviceTable, publisher: EventPublisher | None,
                 error_log: ErrorLog | None, metrics: Metrics | None) -> None:
        self.settings = settings
        self.events = publisher or EventPublisher()
        self.errors = error_log or ErrorLog(service)
        self.metrics = metrics or Metrics(service)
        self.devices = devices

    def known_ids(self) -> list[str]:
        return self.devices.ids()

    def device(self, device_id: str) -> Device:
        device = self.devices.get(device_id)
        if device is None:
            raise CommandError(UNKNOWN_DEVICE, f"No device {device_id!r} on {self.where}.", known=self.known_ids())
        return device

    def sensors(self) -> list[dict[str, Any]]:
        return self.devices.views()

    def view(self, device_id: str) -> dict[str, Any]:
        return self.devices.view(self.device(device_id))

    def _fresh(self, device: Device, error: str | None) -> dict[str, Any]:
        """The device's view after asking for a new reading: ``fresh: false`` and ``fresh_error``
        (why) when the device did not answer."""
        view = self.devices.view(device)
        view["fresh"] = error is None
        if error:
            view["fresh_error"] = error
        return view

    def _record(self, code: str, message: str, severity: str, device_id: str | None = None, **extra: Any) -> None:
        """Keep an error for ``GET /errors`` and tell the event stream's followers."""
        record = self.errors.add(code, message, severity=severity, device_id=device_id, **extra)
        self.events.publish("error", dict(record))
