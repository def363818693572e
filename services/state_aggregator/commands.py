"""What a command may say, by device type, checked before any service is touched.

A command that fails here costs nothing else: no handler is called, no device is woken. The
rules follow the table in docs/architecture.md ("Device types and their state") and the ranges
of docs/serial-protocol.md, so a value the board would refuse is refused here already, with a
message that says what is expected.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SENSOR_TYPES = frozenset({"temperature", "humidity", "pressure", "illuminance", "motion",
                          "sound_level", "battery"})
INTERVAL_RANGE = (1, 86400)
"""Seconds between readings a sensor command may set."""
COMMAND_TIMEOUT_MS_RANGE = (1, 120_000)
ENVELOPE_KEYS = ("id", "timestamp", "timeout")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class CommandError(Exception):
    """A command refused with an HTTP status and a contract error code."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


def invalid(message: str, **extra: Any) -> CommandError:
    return CommandError(400, "INVALID_VALUE", message, **extra)


@dataclass(frozen=True)
class CommandRequest:
    """A command body taken apart: the values, the correlation id and the timeout (ms)."""

    values: Mapping[str, Any]
    cmd_id: str | None = None
    timeout_ms: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def handler_body(self, cmd_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"values": dict(self.values), "id": cmd_id}
        if self.timeout_ms is not None:
            body["timeout"] = self.timeout_ms
        return body


def parse_command(body: Any) -> CommandRequest:
    """``{"values": {...}, "id"?, "timeout"?}``; a body without ``values`` is taken as the values
    themselves minus ``id``/``timestamp``/``timeout`` (the MQTT contract's rule, handy with curl)."""
    if not isinstance(body, dict):
        raise invalid("the command body must be a JSON object like {\"values\": {...}}")
    if "values" in body:
        values = body["values"]
        if not isinstance(values, dict):
            raise invalid(f"values must be an object, not {type(values).__name__}")
    else:
        values = {k: v for k, v in body.items() if k not in ENVELOPE_KEYS}
    cmd_id = body.get("id")
    if cmd_id is not None and (not isinstance(cmd_id, (str, int)) or isinstance(cmd_id, bool)):
        raise invalid("id must be a string or an integer")
    timeout = body.get("timeout")
    if timeout is not None:
        low, high = COMMAND_TIMEOUT_MS_RANGE
        if not _is_number(timeout) or not low <= timeout <= high:
            raise invalid(f"timeout must be a number of milliseconds {low}..{high}, got {timeout!r}")
    return CommandRequest(values=values, cmd_id=None if cmd_id is None else str(cmd_id),
                          timeout_ms=timeout)


# --------------------------------------------------------------------------- per-type rules


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _on_off(name: str, value: Any) -> None:
    if value not in ("on", "off"):
        raise invalid(f"{name} must be \"on\" or \"off\", got {value!r}")


def _interval(name: str, value: Any) -> None:
    low, high = INTERVAL_RANGE
    if not _is_number(value) or not low <= value <= high:
        raise invalid(f"{name} must be a number of seconds {low}..{high}, got {value!r}")


def _position(name: str, value: Any) -> None:
    if value == "stop":
        return
    if not _is_number(value) or not 0 <= value <= 100:
        raise invalid(f"{name} must be a number 0..100 (percent open) or \"stop\", got {value!r}")


def _stop(name: str, value: Any) -> None:
    if value is not True and value != "stop":
        raise invalid(f"{name} must be true, got {value!r}")


def _color(name: str, value: Any) -> None:
    if not isinstance(value, str) or not _COLOR.match(value):
        raise invalid(f"{name} must be a colour \"#rrggbb\", got {value!r}")


def _brightness(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise invalid(f"{name} must be an integer 0..255, got {value!r}")


def _blink(name: str, value: Any) -> None:
    if isinstance(value, bool):
        return
    if not isinstance(value, int) or not (value == 0 or 50 <= value <= 10000):
        raise invalid(f"{name} must be true/false or a period in ms (0 or 50..10000), got {value!r}")


Check = Callable[[str, Any], None]
_SENSOR_RULES: dict[str, Check] = {"interval": _interval}
RULES: dict[str, dict[str, Check]] = {
    **{t: _SENSOR_RULES for t in SENSOR_TYPES},
    "window": {"position": _position, "stop": _stop},
    "led": {"state": _on_off, "color": _color, "brightness": _brightness, "blink": _blink},
    "switch": {"state": _on_off},
}


def validate_values(device_type: str, values: Mapping[str, Any]) -> None:
    """Raise :class:`CommandError` unless ``values`` is a command this device type takes."""
    rules = RULES.get(device_type)
    if rules is None:
        raise CommandError(400, "UNSUPPORTED", f"a {device_type} device takes no commands")
    unknown = sorted(set(values) - set(rules))
    if unknown:
        raise CommandError(400, "UNSUPPORTED",
                           f"a {device_type} device does not take {', '.join(unknown)}; "
                           f"it takes {', '.join(sorted(rules))}", accepted=sorted(rules))
    if not values and device_type not in SENSOR_TYPES:
        raise invalid(f"the command has no values; a {device_type} device takes "
                      f"{', '.join(sorted(rules))}", accepted=sorted(rules))
    for name, value in values.items():
        rules[name](name, value)
    if device_type == "window" and "stop" in values and "position" in values:
        raise invalid("a window command takes position or stop, not both")
