"""``esphome``: the REST API of ESPHome's ``web_server`` component.

One entity per URL: ``GET /sensor/<id>`` answers ``{"id": "sensor-<id>", "value": 21.5,
"state": "21.5 °C"}``; ``/binary_sensor/<id>`` and ``/switch/<id>`` a boolean ``value`` and
``"ON"``/``"OFF"``; ``/light/<id>`` ``state``, ``brightness`` (0–255) and ``color`` ``{r, g, b}``;
``/cover/<id>`` ``value`` (the position as a fraction 0–1) and ``current_operation``. Actions are
POSTs: ``/switch/<id>/turn_on|turn_off``, ``/light/<id>/turn_on?brightness=&r=&g=&b=|turn_off``,
``/cover/<id>/set?position=0.4``, ``/cover/<id>/stop``.

``key`` is the entity's object id (``outdoor_temperature``); the domain follows from the device
type (a motion device is a ``binary_sensor``). ``domain/object_id`` names another domain.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from shared.config import DeviceSpec
from shared.devices import DEVICE_TABLE

from ..fetch import EndpointFailure
from .base import Profile, Reading, key_of

# ESPHome's entity domains are Home Assistant's components, which the registry names per type.
DOMAINS = {entry.name: entry.ha_component for entry in DEVICE_TABLE}


class EsphomeProfile(Profile):
    name = "esphome"
    title = "ESPHome web_server REST API"
    key_help = "the entity's object id (`outdoor_temperature` for GET /sensor/outdoor_temperature)"
    command_types = frozenset({"switch", "led", "window"})

    def entity(self, device: DeviceSpec) -> tuple[str, str]:
        key = key_of(device)
        if "/" in key:
            domain, _, object_id = key.partition("/")
            return domain, object_id
        return DOMAINS.get(device.type, "sensor"), key

    def path(self, device: DeviceSpec, action: str = "") -> str:
        domain, object_id = self.entity(device)
        return f"/{domain}/{quote(object_id, safe='')}" + (f"/{action}" if action else "")

    def read(self, devices: Sequence[DeviceSpec]) -> dict[str, Reading]:
        return {device.device_id: self.read_device(device) for device in devices}

    def read_device(self, device: DeviceSpec) -> Reading:
        try:
            body = self.client.get_json(self.path(device))
        except EndpointFailure as failure:
            if failure.status == 404:  # the device is there; this entity is not
                domain, object_id = self.entity(device)
                return Reading.missing(f"no {domain} {object_id!r} on the device (HTTP 404)")
            raise
        if not isinstance(body, dict):
            return Reading.bad(f"expected a JSON object from {self.path(device)}, got {type(body).__name__}")
        return self.reading(device, body)

    def reading(self, device: DeviceSpec, body: dict[str, Any]) -> Reading:
        domain, _ = self.entity(device)
        if domain == "light":
            light = {"state": body.get("state"), "brightness": body.get("brightness"), "color": body.get("color")}
            return Reading.of(device.type, {k: v for k, v in light.items() if v is not None})
        if domain == "cover":
            return self.cover_reading(device, body)
        return Reading.of(device.type, body.get("value", body.get("state")))

    def cover_reading(self, device: DeviceSpec, body: dict[str, Any]) -> Reading:
        fraction = body.get("value", body.get("position"))
        if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 <= fraction <= 1:
            position: Any = round(fraction * 100)
        else:
            return Reading.bad(f"cover position must be a fraction 0..1, got {fraction!r}")
        moving = body.get("current_operation") not in (None, "IDLE")
        return Reading.of(device.type, {"position": position, "moving": moving})

    # -- commands

    def command(self, device: DeviceSpec, values: dict[str, Any], timeout: float) -> dict[str, Any]:
        if device.type == "switch":
            self.client.post(self.path(device, "turn_on" if values["state"] == "on" else "turn_off"), timeout=timeout)
            return self.state_after(device, timeout, {"state": values["state"]})
        if device.type == "led":
            if "blink" in values:
                raise self.unsupported(device, "blink (an ESPHome light has no blink)")
            if values.get("state") == "off":
                self.client.post(self.path(device, "turn_off"), timeout=timeout)
            else:
                self.client.post(self.path(device, "turn_on"), self.light_params(values), timeout=timeout)
            return self.state_after(device, timeout, values)
        if device.type == "window":
            if values.get("stop"):
                self.client.post(self.path(device, "stop"), timeout=timeout)
                return self.state_after(device, timeout, {})
            self.client.post(self.path(device, "set"), {"position": f"{values['position'] / 100:g}"}, timeout=timeout)
            return {**self.state_after(device, timeout, {}), "target": values["position"]}
        raise self.unsupported(device)

    @staticmethod
    def light_params(values: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if "brightness" in values:
            params["brightness"] = values["brightness"]
        if "color" in values:
            rgb = values["color"].lstrip("#")
            params.update(r=int(rgb[0:2], 16), g=int(rgb[2:4], 16), b=int(rgb[4:6], 16))
        return params

    def state_after(self, device: DeviceSpec, timeout: float, expected: dict[str, Any]) -> dict[str, Any]:
        """The entity read back after an action (ESPHome answers actions with an empty body);
        what was asked for when the read-back fails, since the action itself succeeded."""
        try:
            reading = self.read_device(device)
        except EndpointFailure:
            return dict(expected)
        return reading.state if reading.problem is None else dict(expected)
