"""Device commands (``values`` of ``POST /sensor/<id>/cmd``) -> protocol commands.

Validation happens before anything is sent (shared/devices.py, the rules the aggregator
uses too): a bad value costs the board nothing and the caller gets ``INVALID_VALUE`` or
``UNSUPPORTED`` with a sentence saying what is expected. The board still
validates again (it is the authority); its refusals come back as ``REJECTED``.
"""
from __future__ import annotations

from typing import Any

from shared.commands import (  # noqa: F401 - the codes every handler shares, re-exported
    HTTP_STATUS,
    INVALID_VALUE,
    OFFLINE,
    REJECTED,
    TIMEOUT,
    UNKNOWN_DEVICE,
    UNSUPPORTED,
    CommandError,
)
from shared.devices import SENSOR_TYPES, InvalidCommand, normalize_command
from shared.logs import excerpt

# What a board drives: its sensors, the window motor and the LED (no switch output).
SERIAL_TYPES = SENSOR_TYPES | {"window", "led"}
BOARD_COMMANDS = ("ping", "hello", "read", "config", "led", "window", "calibrate", "reset")


def build_command(device_type: str, values: Any) -> dict[str, Any]:
    """The protocol command (without ``id``) for a device command, or ``CommandError``.

    The values are checked by the rules every program shares (shared/devices.py); this only
    maps the canonical values onto the serial protocol.
    """
    if device_type not in SERIAL_TYPES:
        raise CommandError(UNSUPPORTED, f"{device_type} devices take no commands over serial")
    try:
        normalized = normalize_command(device_type, values)
    except InvalidCommand as exc:
        raise CommandError(exc.code, exc.message, **exc.extra) from None
    if device_type == "window":
        if normalized.get("stop"):
            return {"type": "window", "stop": True}
        return {"type": "window", "position": normalized["position"]}
    if device_type == "led":
        return {"type": "led", **normalized}
    if not normalized:  # a sensor command with no values asks for a reading now
        return {"type": "read"}
    return {"type": "config", "interval_ms": max(1, round(normalized["interval"] * 1000))}


def board_command(fields: dict[str, Any]) -> dict[str, Any]:
    """A raw protocol command for ``POST /boards/<id>/cmd``: ``{"type": "ping", ...fields}`` (the
    envelope's ``id``, ``timestamp`` and ``timeout`` already taken out, shared/commands.py).

    Only the type is checked here; the board validates the fields and says why it refuses.
    """
    kind = fields.get("type")
    if kind not in BOARD_COMMANDS:
        raise CommandError(UNSUPPORTED, f"type must be one of {', '.join(BOARD_COMMANDS)}, got {excerpt(kind)}",
                           supported=list(BOARD_COMMANDS))
    return dict(fields)
