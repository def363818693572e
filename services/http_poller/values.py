"""What a network sensor said, turned into a device's state properties.

The properties are the ones every program uses for a device type (docs/architecture.md, "Device
types and their state"): a temperature device has ``{"temperature": 21.5}``, a switch
``{"state": "on"}``, a window ``{"position", "target", "moving"}``, so Home Assistant discovery
and the bridge treat an HTTP device exactly like a board's. A profile finds the raw value for a
device's ``key``; this module checks and converts it, whatever the dialect.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

# The state properties of each type, the first one being the value a bare scalar stands for.
PROPERTIES: dict[str, tuple[str, ...]] = {
    "temperature": ("temperature",),
    "humidity": ("humidity",),
    "pressure": ("pressure",),
    "illuminance": ("illuminance",),
    "sound_level": ("sound_level",),
    "battery": ("battery", "voltage"),
    "motion": ("motion",),
    "switch": ("state",),
    "window": ("position", "target", "moving"),
    "led": ("state", "color", "brightness", "blink"),
}
PERCENT = (0.0, 100.0)
RANGES: dict[str, tuple[float, float]] = {"humidity": PERCENT, "battery": PERCENT, "position": PERCENT,
                                          "target": PERCENT, "brightness": (0, 255), "illuminance": (0, math.inf)}
_TRUE = {"on", "true", "1", "yes", "open", "detected", "active"}
_FALSE = {"off", "false", "0", "no", "closed", "clear", "inactive", "idle"}
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class BadValue(ValueError):
    """A value of the wrong kind for the device (a word where a number belongs...)."""


class MissingKey(LookupError):
    """The key a device names is not in the endpoint's answer."""


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``"StatusSNS.AM2301.Temperature"``, ``"sensors.0.value"``).

    A path segment that names no member is :class:`MissingKey` with the part that was found.
    """
    value = document
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            where = f" in {'.'.join(walked)}" if walked else ""
            raise MissingKey(f"key {path!r} is not in the response ({part!r} not found{where})")
        walked.append(part)
    return value


def number(name: str, raw: Any) -> float | int | None:
    """A finite number (a numeric string counts); None for "no reading" (null, NaN, "unknown")."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise BadValue(f"{name}: expected a number, got {raw!r}")
    if isinstance(raw, str):
        text = raw.strip().split(" ")[0]  # "21.5 °C" is how ESPHome writes a state
        if text.lower() in ("", "nan", "unknown", "unavailable", "na", "none", "null"):
            return None
        try:
            raw = float(text)
        except ValueError:
            raise BadValue(f"{name}: expected a number, got {_show(raw)}") from None
    if not isinstance(raw, (int, float)):
        raise BadValue(f"{name}: expected a number, got {_show(raw)}")
    if not math.isfinite(raw):
        return None
    low, high = RANGES.get(name, (-math.inf, math.inf))
    if not low <= raw <= high:
        raise BadValue(f"{name}: {raw!r} is out of range ({low:g}..{high:g})")
    return raw


def boolean(name: str, raw: Any) -> bool | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, (int, float)) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise BadValue(f"{name}: expected on/off or true/false, got {_show(raw)}")


def on_off(name: str, raw: Any) -> str | None:
    value = boolean(name, raw)
    return None if value is None else ("on" if value else "off")


def color(name: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping) and all(k in raw for k in "rgb"):
        parts = [number(name, raw[k]) for k in "rgb"]
        if any(p is None or not 0 <= p <= 255 for p in parts):
            raise BadValue(f"{name}: r, g, b must be 0..255, got {_show(raw)}")
        return "#" + "".join(f"{round(p):02x}" for p in parts)  # type: ignore[arg-type]
    if isinstance(raw, str) and _COLOR.match(raw):
        return raw.lower()
    raise BadValue(f"{name}: expected a colour \"#rrggbb\", got {_show(raw)}")


def _integer(name: str, raw: Any) -> int | None:
    value = number(name, raw)
    return None if value is None else round(value)


_CONVERT = {"temperature": number, "humidity": number, "pressure": number, "illuminance": number,
            "sound_level": number, "battery": number, "voltage": number, "motion": boolean,
            "position": _integer, "target": _integer, "moving": boolean, "color": color,
            "brightness": _integer, "blink": _integer}


def convert(device_type: str, prop: str, raw: Any) -> Any:
    if device_type in ("switch", "led") and prop == "state":
        return on_off(prop, raw)
    return _CONVERT[prop](prop, raw)


def state_from(device_type: str, raw: Any) -> dict[str, Any]:
    """The state properties ``raw`` gives a ``device_type`` device; ``{}`` when it holds no
    reading (null, NaN). A scalar stands for the type's main property; an object gives the
    properties it names. :class:`BadValue` when a value has the wrong kind."""
    names = PROPERTIES.get(device_type)
    if names is None:
        raise BadValue(f"{device_type} devices have no state an endpoint can report")
    if isinstance(raw, Mapping):
        found = {p: raw[p] for p in names if p in raw}
        if not found and "value" in raw:  # {"id": ..., "value": ...}: the ESPHome way
            found = {names[0]: raw["value"]}
        if not found:
            raise BadValue(f"expected {' or '.join(names)} in {_show(raw)}")
    elif isinstance(raw, list):
        raise BadValue(f"expected a value, got a list {_show(raw)}")
    else:
        found = {names[0]: raw}
    state = {}
    for prop, value in found.items():
        converted = convert(device_type, prop, value)
        if converted is not None:
            state[prop] = converted
    if device_type == "window" and "position" in state and "target" not in state and not state.get("moving"):
        state["target"] = state["position"]  # at rest, where it is is where it was going
    return state


def _show(raw: Any, limit: int = 60) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[: limit - 3] + "..."
