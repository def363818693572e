"""Device commands (``values`` of ``POST /sensor/<id>/cmd``) -> protocol commands.

Validation happens here, before anything is sent: a bad value costs the board nothing and the
caller gets ``INVALID_VALUE``/``UNSUPPORTED`` with a sentence saying what is expected. The board
still validates again (it is the authority); its refusals come back as ``REJECTED``.
"""
from __future__ import annotations

import math
import re
from typing import Any

# Command error codes and their HTTP statuses (docs/architecture.md, "Handler API").
TIMEOUT = "TIMEOUT"
REJECTED = "REJECTED"
OFFLINE = "OFFLINE"
UNSUPPORTED = "UNSUPPORTED"
INVALID_VALUE = "INVALID_VALUE"
UNKNOWN_DEVICE = "UNKNOWN_DEVICE"
HTTP_STATUS = {TIMEOUT: 504, REJECTED: 409, OFFLINE: 503, UNSUPPORTED: 400, INVALID_VALUE: 400,
               UNKNOWN_DEVICE: 404}

SENSOR_TYPES = ("temperature", "humidity", "pressure", "illuminance", "motion", "sound_level", "battery")
BOARD_COMMANDS = ("ping", "hello", "read", "config", "led", "window", "calibrate", "reset")
MAX_INTERVAL_S = 86_400
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class CommandError(Exception):
    """A command that failed; ``code`` is one of the codes above."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _interval(value: Any) -> dict[str, Any]:
    if not _is_number(value) or not 0.001 <= value <= MAX_INTERVAL_S:
        raise CommandError(INVALID_VALUE, f"interval must be a number of seconds 0.001..{MAX_INTERVAL_S}, "
                                          f"got {value!r}")
    return {"type": "config", "interval_ms": max(1, round(value * 1000))}


def _window(values: dict[str, Any]) -> dict[str, Any]:
    if "stop" in values:
        if values["stop"] is not True or len(values) > 1:
            raise CommandError(INVALID_VALUE, 'stop must be true and alone, e.g. {"stop": true}')
        return {"type": "window", "stop": True}
    position = values.get("position")
    if position == "stop":
        return {"type": "window", "stop": True}
    if not _is_number(position) or not 0 <= position <= 100:
        raise CommandError(INVALID_VALUE, f"position must be a number 0..100 or \"stop\", got {position!r}")
    return {"type": "window", "position": round(position)}


def _led(values: dict[str, Any]) -> dict[str, Any]:
    command: dict[str, Any] = {"type": "led"}
    if "state" in values:
        state = values["state"]
        if isinstance(state, bool):
            state = "on" if state else "off"
        if not isinstance(state, str) or state.lower() not in ("on", "off"):
            raise CommandError(INVALID_VALUE, f'state must be "on" or "off", got {values["state"]!r}')
        command["state"] = state.lower()
    if "color" in values:
        color = values["color"]
        if not isinstance(color, str) or not _COLOR.match(color):
            raise CommandError(INVALID_VALUE, f'color must be "#rrggbb", got {color!r}')
        command["color"] = color.lower()
    if "brightness" in values:
        brightness = values["brightness"]
        if not _is_int(brightness) or not 0 <= brightness <= 255:
            raise CommandError(INVALID_VALUE, f"brightness must be an integer 0..255, got {brightness!r}")
        command["brightness"] = brightness
    if "blink" in values:
        blink = values["blink"]
        if isinstance(blink, bool):
            blink = 500 if blink else 0
        if not _is_int(blink) or not (blink == 0 or 50 <= blink <= 10_000):
            raise CommandError(INVALID_VALUE, f"blink must be 0 (steady), 50..10000 ms or true/false, "
                                              f"got {values['blink']!r}")
        command["blink"] = blink
    return command


# device type -> the keys its commands take
ACCEPTED = {**{t: ("interval",) for t in SENSOR_TYPES},
            "window": ("position", "stop"), "led": ("state", "color", "brightness", "blink")}


def build_command(device_type: str, values: Any) -> dict[str, Any]:
    """The protocol command (without ``id``) for a device command, or ``CommandError``."""
    if not isinstance(values, dict) or not values:
        raise CommandError(INVALID_VALUE, 'values must be a non-empty object, e.g. {"state": "on"}')
    accepted = ACCEPTED.get(device_type)
    if accepted is None:
        raise CommandError(UNSUPPORTED, f"{device_type} devices take no commands over serial")
    unknown = sorted(k for k in values if k not in accepted)
    if unknown:
        raise CommandError(UNSUPPORTED, f"{device_type} devices do not support {', '.join(unknown)}; "
                                        f"they take {', '.join(accepted)}", supported=list(accepted))
    if device_type == "window":
        return _window(values)
    if device_type == "led":
        return _led(values)
    return _interval(values["interval"])


def board_command(body: Any) -> dict[str, Any]:
    """A raw protocol command for ``POST /boards/<id>/cmd``: ``{"type": "ping", ...fields}``.

    Only the type is checked here; the board validates the fields and says why it refuses.
    """
    if not isinstance(body, dict):
        raise CommandError(INVALID_VALUE, 'the body must be a JSON object, e.g. {"type": "ping"}')
    kind = body.get("type")
    if kind not in BOARD_COMMANDS:
        raise CommandError(UNSUPPORTED, f"type must be one of {', '.join(BOARD_COMMANDS)}, got {kind!r}",
                           supported=list(BOARD_COMMANDS))
    return {k: v for k, v in body.items() if k not in ("id", "timeout")}


def parse_timeout(raw: Any, default: float) -> float:
    """``timeout`` of a command body is in milliseconds (the MQTT contract); seconds out."""
    if raw is None:
        return default
    if not _is_number(raw) or not 1 <= raw <= 300_000:
        raise CommandError(INVALID_VALUE, f"timeout must be milliseconds 1..300000, got {raw!r}")
    return raw / 1000.0


def parse_command_id(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, (str, int)) or isinstance(raw, bool) or not 0 < len(str(raw)) <= 64:
        raise CommandError(INVALID_VALUE, f"id must be a string of 1..64 characters, got {raw!r}")
    return str(raw)
