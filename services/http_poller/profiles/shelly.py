"""``shelly``: Shelly Gen2+ devices over their HTTP RPC API.

One ``GET /rpc/Shelly.GetStatus`` per poll answers every component of the device, keyed
``<type>:<id>``: ``{"temperature:0": {"tC": 21.5, "tF": 70.7}, "humidity:0": {"rh": 45},
"switch:0": {"output": true, ...}, "cover:0": {"current_pos": 40, "state": "stopped"},
"devicepower:0": {"battery": {"V": 3.1, "percent": 80}}, "illuminance:0": {"lux": 120},
"input:0": {"state": false}}``. Commands are RPC calls over GET: ``/rpc/Switch.Set?id=0&on=true``,
``/rpc/Cover.GoToPosition?id=0&pos=40``, ``/rpc/Cover.Stop?id=0``,
``/rpc/Light.Set?id=0&on=true&brightness=50`` (brightness in percent).

``key`` is the component (``switch:0``, ``temperature:1``); a bare name means instance 0 and
the default is the device type's component (``temperature:0``, ``cover:0`` for a window,
``devicepower:0`` for a battery). A dotted path (``switch:0.temperature.tC``) reads one value.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.config import DeviceSpec

from ..fetch import PAYLOAD, EndpointFailure
from ..values import MissingKey, lookup
from .base import Profile, Reading, key_of

COMPONENTS = {"window": "cover", "battery": "devicepower", "motion": "input", "led": "light"}
STATUS = "/rpc/Shelly.GetStatus"


def component_of(device: DeviceSpec) -> str:
    key = key_of(device)
    if "." in key or ":" in key:
        return key
    return f"{COMPONENTS.get(key, key)}:0"


def _value(component: dict[str, Any], *path: str) -> Any:
    value: Any = component
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def component_state(device_type: str, component: Any) -> Any:
    """The raw state of one Shelly component, in the shape ``Reading.of`` takes for the type."""
    if not isinstance(component, dict):
        return component
    if device_type == "temperature":
        return component["tC"] if "tC" in component else _value(component, "temperature", "tC")
    if device_type == "humidity":
        return component.get("rh")
    if device_type == "illuminance":
        return component.get("lux")
    if device_type == "battery":
        return {"battery": _value(component, "battery", "percent"), "voltage": _value(component, "battery", "V")}
    if device_type == "switch":
        return component.get("output")
    if device_type == "motion":
        return component.get("state", component.get("motion"))
    if device_type == "window":
        state = component.get("state")
        return {"position": component.get("current_pos"), "target": component.get("target_pos"),
                "moving": state in ("opening", "closing")}
    if device_type == "led":
        brightness = component.get("brightness")
        return {"state": component.get("output"),
                "brightness": None if brightness is None else round(brightness * 255 / 100)}
    return component


class ShellyProfile(Profile):
    name = "shelly"
    title = "Shelly Gen2+ RPC over HTTP"
    key_help = "the component (`switch:0`, `temperature:0`; default: the type's component, instance 0)"
    command_types = frozenset({"switch", "window", "led"})

    def read(self, devices: Sequence[DeviceSpec]) -> dict[str, Reading]:
        status = self.client.get_json(STATUS)
        if not isinstance(status, dict):
            raise EndpointFailure(PAYLOAD, f"Shelly.GetStatus did not answer an object ({type(status).__name__})")
        return {device.device_id: self.reading(device, status) for device in devices}

    @staticmethod
    def reading(device: DeviceSpec, status: dict[str, Any]) -> Reading:
        key = component_of(device)
        try:
            raw = lookup(status, key) if "." in key else status[key]
        except (MissingKey, KeyError):
            return Reading.missing(f"component {key!r} is not in Shelly.GetStatus")
        return Reading.of(device.type, raw if "." in key else component_state(device.type, raw))

    # -- commands

    def command(self, device: DeviceSpec, values: dict[str, Any], timeout: float) -> dict[str, Any]:
        kind, _, index = component_of(device).partition(":")
        ident = index.split(".")[0] or "0"
        if device.type == "switch":
            self.client.get_json("/rpc/Switch.Set", {"id": ident, "on": _flag(values["state"] == "on")}, timeout)
            return {"state": values["state"]}
        if device.type == "window":
            if values.get("stop"):
                self.client.get_json("/rpc/Cover.Stop", {"id": ident}, timeout)
                return self._status(device, "Cover", ident, timeout)
            self.client.get_json("/rpc/Cover.GoToPosition", {"id": ident, "pos": values["position"]}, timeout)
            return {**self._status(device, "Cover", ident, timeout), "target": values["position"]}
        if device.type == "led":
            if "color" in values or "blink" in values:
                raise self.unsupported(device, "colour or blink (a Shelly light takes state and brightness)")
            params: dict[str, Any] = {"id": ident, "on": _flag(values.get("state", "on") == "on")}
            if "brightness" in values:
                params["brightness"] = round(values["brightness"] * 100 / 255)
            self.client.get_json("/rpc/Light.Set", params, timeout)
            return self._status(device, "Light", ident, timeout)
        raise self.unsupported(device)

    def _status(self, device: DeviceSpec, namespace: str, ident: str, timeout: float) -> dict[str, Any]:
        try:
            component = self.client.get_json(f"/rpc/{namespace}.GetStatus", {"id": ident}, timeout)
        except EndpointFailure:
            return {}
        reading = Reading.of(device.type, component_state(device.type, component))
        return reading.state if reading.problem is None else {}


def _flag(on: bool) -> str:
    return "true" if on else "false"
