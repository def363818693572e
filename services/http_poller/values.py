"""What a network sensor said, turned into a device's state properties.

The properties are the ones every program uses for a device type (docs/architecture.md, "Device
types and their state"): a temperature device has ``{"temperature": 21.5}``, a switch
``{"state": "on"}``, a window ``{"position", "target", "moving"}``, so Home Assistant discovery
and the bridge treat an HTTP device exactly like a board's. A profile finds the raw value for a
device's ``key``; this module checks and converts it, whatever the dialect.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shared.devices import (
    BOOLEAN,
    COLOR,
    COLOUR,
    DEVICE_TABLE,
    INTEGER,
    NUMBER,
    ON_OFF,
    StateProperty,
    device_type,
    on_off_word,
)

# The state properties of each type, the first one being the value a bare scalar stands for
# (shared/devices.py, the registry).
PROPERTIES: dict[str, tuple[str, ...]] = {t.name: tuple(p.name for p in t.properties) for t in DEVICE_TABLE}


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


def number(name: str, raw: Any, valid: tuple[float, float] = (-math.inf, math.inf)) -> float | int | None:
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
    low, high = valid
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
    word = on_off_word(raw)
    if word is not None:
        return word
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
    if isinstance(raw, str) and COLOR.match(raw):
        return raw.lower()
    raise BadValue(f"{name}: expected a colour \"#rrggbb\", got {_show(raw)}")


def _integer(name: str, raw: Any, valid: tuple[float, float] = (-math.inf, math.inf)) -> int | None:
    value = number(name, raw, valid)
    return None if value is None else round(value)


def convert(prop: StateProperty, raw: Any) -> Any:
    """One raw value as the registry's property wants it (kind and range)."""
    if prop.kind == NUMBER:
        return number(prop.name, raw, prop.range)
    if prop.kind == INTEGER:
        return _integer(prop.name, raw, prop.range)
    if prop.kind == BOOLEAN:
        return boolean(prop.name, raw)
    if prop.kind == ON_OFF:
        return on_off(prop.name, raw)
    if prop.kind == COLOUR:
        return color(prop.name, raw)
    raise ValueError(f"{prop.name}: no reading of kind {prop.kind!r}")


def state_from(type_name: str, raw: Any) -> dict[str, Any]:
    """The state properties ``raw`` gives a ``type_name`` device; ``{}`` when it holds no
    reading (null, NaN). A scalar stands for the type's main property; an object gives the
    properties it names. :class:`BadValue` when a value has the wrong kind."""
    names = PROPERTIES.get(type_name)
    if names is None:
        raise BadValue(f"{type_name} devices have no state an endpoint can report")
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
    entry = device_type(type_name)
    for prop, value in found.items():
        converted = convert(entry.prop(prop), value)
        if converted is not None:
            state[prop] = converted
    if type_name == "window" and "position" in state and "target" not in state and not state.get("moving"):
        state["target"] = state["position"]  # at rest, where it is is where it was going
    return state


def _show(raw: Any, limit: int = 60) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[: limit - 3] + "..."
