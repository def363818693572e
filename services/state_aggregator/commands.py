"""What a command may say, by device type, checked before any service is touched.

A command that fails here costs nothing else: no handler is called, no device is woken. The
rules per device type live in shared/devices.py, which the handlers use too, so a value the
board would refuse is refused here already, with a message that says what is expected.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.devices import InvalidCommand, command_values, is_number, normalize_command

COMMAND_TIMEOUT_MS_RANGE = (1, 120_000)


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
    values = command_values(body)
    if not isinstance(values, dict):
        raise invalid(f"values must be an object, not {type(values).__name__}")
    cmd_id = body.get("id")
    if cmd_id is not None and (not isinstance(cmd_id, (str, int)) or isinstance(cmd_id, bool)):
        raise invalid("id must be a string or an integer")
    timeout = body.get("timeout")
    if timeout is not None:
        low, high = COMMAND_TIMEOUT_MS_RANGE
        if not is_number(timeout) or not low <= timeout <= high:
            raise invalid(f"timeout must be a number of milliseconds {low}..{high}, got {timeout!r}")
    return CommandRequest(values=values, cmd_id=None if cmd_id is None else str(cmd_id),
                          timeout_ms=timeout)


def validate_values(device_type: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical values, or :class:`CommandError` (400) unless this device type takes them."""
    try:
        return normalize_command(device_type, values)
    except InvalidCommand as exc:
        raise CommandError(400, exc.code, exc.message, **exc.extra) from None
