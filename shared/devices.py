"""Device types and the commands each one takes: one set of rules for every program.

The aggregator checks a command here before it touches any service, and the serial handler
checks it again here before it builds a protocol line, so the two can never disagree about
what a window or an LED accepts (docs/architecture.md, "Device types and their state").
``normalize_command`` also returns the values in their canonical form (``"on"``/``"off"``,
lowercase colours, whole-percent positions), so handlers map them without re-validating.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from shared.logs import clip, excerpt

SENSOR_TYPES = frozenset({"temperature", "humidity", "pressure", "illuminance", "motion", "sound_level", "battery"})
INTERVAL_RANGE_S = (0.1, 86_400.0)
"""Seconds between readings a sensor command may set (the firmware takes 1 ms .. 1 day)."""
BLINK_DEFAULT_MS = 500
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")

INVALID_VALUE = "INVALID_VALUE"
UNSUPPORTED = "UNSUPPORTED"


class InvalidCommand(Exception):
    """A command a device type does not take; ``code`` is INVALID_VALUE or UNSUPPORTED."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def _invalid(message: str) -> InvalidCommand:
    return InvalidCommand(INVALID_VALUE, message)


def is_number(value: Any) -> bool:
    """A finite int or float; bools are not numbers here (JSON true is not 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _interval(name: str, value: Any) -> float:
    low, high = INTERVAL_RANGE_S
    if not is_number(value) or not low <= value <= high:
        raise _invalid(f"{name} must be a number of seconds {low:g}..{high:g}, got {excerpt(value)}")
    return float(value)


def _position(name: str, value: Any) -> int | str:
    if value == "stop":
        return "stop"
    if not is_number(value) or not 0 <= value <= 100:
        raise _invalid(f"{name} must be a number 0..100 (percent open) or \"stop\", got {excerpt(value)}")
    return round(value)


def _stop(name: str, value: Any) -> bool:
    if value is not True and value != "stop":
        raise _invalid(f"{name} must be true, got {excerpt(value)}")
    return True


def _on_off(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if not isinstance(value, str) or value.lower() not in ("on", "off"):
        raise _invalid(f"{name} must be \"on\" or \"off\", got {excerpt(value)}")
    return value.lower()


def _color(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _COLOR.match(value):
        raise _invalid(f"{name} must be a colour \"#rrggbb\", got {excerpt(value)}")
    return value.lower()


def _brightness(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise _invalid(f"{name} must be an integer 0..255, got {excerpt(value)}")
    return value


def _blink(name: str, value: Any) -> int:
    if isinstance(value, bool):
        return BLINK_DEFAULT_MS if value else 0
    if not isinstance(value, int) or not (value == 0 or 50 <= value <= 10_000):
        raise _invalid(f"{name} must be true/false or a period in ms (0 or 50..10000), got {excerpt(value)}")
    return value


Rule = Callable[[str, Any], Any]
_SENSOR_RULES: dict[str, Rule] = {"interval": _interval}
COMMAND_RULES: dict[str, dict[str, Rule]] = {
    **{t: _SENSOR_RULES for t in SENSOR_TYPES},
    "window": {"position": _position, "stop": _stop},
    "led": {"state": _on_off, "color": _color, "brightness": _brightness, "blink": _blink},
    "switch": {"state": _on_off},
}


def command_keys(device_type: str) -> tuple[str, ...]:
    """The value names a device type's commands take (empty: it takes none)."""
    return tuple(sorted(COMMAND_RULES.get(device_type, {})))


def normalize_command(device_type: str, values: Any) -> dict[str, Any]:
    """The canonical values of a command for ``device_type``, or :class:`InvalidCommand`.

    A sensor takes ``interval`` or nothing at all (an empty command asks for a reading now);
    a window takes ``position`` 0..100 or ``stop``; an LED ``state``/``color``/``brightness``/``blink``.
    """
    if not isinstance(values, Mapping):
        raise _invalid(f"values must be an object, e.g. {{\"state\": \"on\"}}, not {type(values).__name__}")
    rules = COMMAND_RULES.get(device_type)
    if rules is None:
        raise InvalidCommand(UNSUPPORTED, f"a {device_type} device takes no commands")
    accepted = sorted(rules)
    unknown = sorted(set(values) - set(rules))
    if unknown:
        raise InvalidCommand(UNSUPPORTED, f"a {device_type} device does not take {clip(', '.join(unknown), 100)}; "
                                          f"it takes {', '.join(accepted)}", accepted=accepted)
    if not values and device_type not in SENSOR_TYPES:
        raise InvalidCommand(INVALID_VALUE, f"the command has no values; a {device_type} device takes "
                                            f"{', '.join(accepted)}", accepted=accepted)
    normalized = {name: rules[name](name, value) for name, value in values.items()}
    if device_type == "window":
        if "stop" in normalized and "position" in normalized:
            raise _invalid("a window command takes position or stop, not both")
        if normalized.get("position") == "stop":
            normalized = {"stop": True}
    return normalized
