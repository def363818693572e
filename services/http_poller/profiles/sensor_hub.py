"""``sensor_hub``: our own firmware's HTTP mode (firmware/esp32/sensorhub/http.py).

ESPHome-shaped URLs, read the same way: ``GET /sensor/<name>`` (``temperature``, ``humidity``,
``pressure``, ``sound_level``, ``battery``, ``battery_voltage``), ``/binary_sensor/motion``,
``/cover/window`` (``position`` and ``target`` in whole percent, ``moving``), ``/light/led``
(``color`` ``#rrggbb``, ``brightness``, ``blink``). The window moves with
``POST /cover/window/set?position=<percent>`` and ``POST /cover/window/stop``, which answer with
the cover's new state. The LED takes commands over the serial link only.

``key`` is the name in that URL; it defaults to the device type (``battery`` reads
``/sensor/battery`` and, for the voltage, ``/sensor/battery_voltage``).
"""
from __future__ import annotations

from typing import Any

from shared.config import DeviceSpec

from ..fetch import EndpointFailure
from .base import Reading, key_of
from .esphome import EsphomeProfile


class SensorHubProfile(EsphomeProfile):
    name = "sensor_hub"
    title = "sensor-hub firmware, HTTP mode"
    key_help = "the name in the board's URL (`temperature` for GET /sensor/temperature; default: the device type)"
    command_types = frozenset({"window"})

    def read_device(self, device: DeviceSpec) -> Reading:
        reading = super().read_device(device)
        if device.type == "battery" and reading.problem is None and "/" not in key_of(device):
            try:  # the voltage is an entity of its own on the board
                body = self.client.get_json(f"/sensor/{key_of(device)}_voltage")
            except EndpointFailure as failure:
                if failure.status != 404:
                    raise
            else:
                voltage = Reading.of("battery", {"voltage": body.get("value")} if isinstance(body, dict) else body)
                if voltage.problem is None:
                    reading.state.update(voltage.state)
        return reading

    def cover_reading(self, device: DeviceSpec, body: dict[str, Any]) -> Reading:
        return Reading.of(device.type, {k: body[k] for k in ("position", "target", "moving") if k in body})

    def command(self, device: DeviceSpec, values: dict[str, Any], timeout: float) -> dict[str, Any]:
        if device.type != "window":
            raise self.unsupported(device, f"{device.type} devices (the board takes LED commands over serial only)"
                                   if device.type == "led" else "")
        if values.get("stop"):
            body = self.client.post(self.path(device, "stop"), timeout=timeout)
        else:
            body = self.client.post(self.path(device, "set"), {"position": values["position"]}, timeout=timeout)
        reading = self.cover_reading(device, body) if isinstance(body, dict) else None
        if reading is None or reading.problem is not None:
            return self.state_after(device, timeout, {"target": values.get("position")} if "position" in values else {})
        return reading.state
