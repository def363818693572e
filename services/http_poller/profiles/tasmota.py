"""``tasmota``: Tasmota devices over their web command interface (``/cm?cmnd=...``).

Sensors come from ``GET /cm?cmnd=Status%2010``: ``{"StatusSNS": {"Time": "...", "AM2301":
{"Temperature": 21.5, "Humidity": 45.0}, "TempUnit": "C"}}`` (one request for every sensor of
the device). A relay is read with ``GET /cm?cmnd=Power`` (``{"POWER": "ON"}``; ``Power2`` for the
second, answering ``{"POWER2": ...}``) and switched with ``/cm?cmnd=Power%20On``.

``key`` is a dotted path inside ``StatusSNS`` (``AM2301.Temperature``, ``DS18B20.Temperature``);
left at the device type, the first sensor with that reading is used (``Temperature``,
``Humidity``, ``Pressure``, ``Illuminance``). For a switch, ``key`` is the relay (``POWER``,
``POWER2``; default ``POWER``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from shared.commands import REJECTED, CommandError
from shared.config import DeviceSpec

from ..fetch import PAYLOAD, EndpointFailure
from ..values import MissingKey, lookup
from .base import Profile, Reading, key_of

FIELDS = {"temperature": "Temperature", "humidity": "Humidity", "pressure": "Pressure",
          "illuminance": "Illuminance"}


def command_path(command: str) -> str:
    """``/cm?cmnd=Status%2010``: Tasmota wants the space as %20, not as +."""
    return "/cm?cmnd=" + quote(command, safe="")


def relay(device: DeviceSpec) -> str:
    key = key_of(device)
    return "POWER" if key == device.type else key.upper()


class TasmotaProfile(Profile):
    name = "tasmota"
    title = "Tasmota web commands"
    key_help = "a dotted path in StatusSNS (`AM2301.Temperature`); for a switch the relay (`POWER`, `POWER2`)"
    command_types = frozenset({"switch"})

    def read(self, devices: Sequence[DeviceSpec]) -> dict[str, Reading]:
        readings: dict[str, Reading] = {}
        sensors = [d for d in devices if d.type != "switch"]
        if sensors:
            status = self.client.get_json(command_path("Status 10"))
            snapshot = status.get("StatusSNS") if isinstance(status, dict) else None
            if not isinstance(snapshot, dict):
                raise EndpointFailure(PAYLOAD, "Status 10 did not answer a StatusSNS object")
            for device in sensors:
                readings[device.device_id] = self.sensor_reading(device, snapshot)
        for device in devices:
            if device.type == "switch":
                readings[device.device_id] = self.relay_reading(device, self.client.get_json(
                    command_path(relay(device).capitalize())))
        return readings

    @staticmethod
    def sensor_reading(device: DeviceSpec, snapshot: dict[str, Any]) -> Reading:
        key = key_of(device).removeprefix("StatusSNS.")
        if key == device.type and device.type in FIELDS:
            field = FIELDS[device.type]
            for sensor in snapshot.values():
                if isinstance(sensor, dict) and field in sensor:
                    return Reading.of(device.type, sensor[field])
            return Reading.missing(f"no sensor with {field} in StatusSNS")
        try:
            return Reading.of(device.type, lookup(snapshot, key))
        except MissingKey as exc:
            return Reading.missing(f"{exc} (StatusSNS)")

    @staticmethod
    def relay_reading(device: DeviceSpec, body: Any) -> Reading:
        name = relay(device)
        if not isinstance(body, dict):
            return Reading.bad(f"expected {{\"{name}\": \"ON\"}}, got {body!r}"[:120])
        if name not in body and name == "POWER1" and "POWER" in body:
            name = "POWER"  # a single-relay device answers POWER to Power1
        if name not in body:
            return Reading.missing(f"relay {name!r} is not on the device")
        return Reading.of("switch", body[name])

    def command(self, device: DeviceSpec, values: dict[str, Any], timeout: float) -> dict[str, Any]:
        if device.type != "switch":
            raise self.unsupported(device)
        word = "On" if values["state"] == "on" else "Off"
        body = self.client.get_json(command_path(f"{relay(device).capitalize()} {word}"), timeout=timeout)
        reading = self.relay_reading(device, body)
        if reading.problem is not None:  # {"Command": "Unknown"} and the like
            raise CommandError(REJECTED, f"the device refused {relay(device).capitalize()} {word}: "
                                         f"{body if not isinstance(body, dict) else body.get('Command', body)}")
        return reading.state
