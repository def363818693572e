"""The handler side of a device command: its error codes and the command envelope.

Every handler service (serial_handler, http_poller, ...) answers ``POST /sensor/<id>/cmd`` with
the same codes and HTTP statuses (docs/architecture.md, "Handler API") and reads ``id`` and
``timeout`` of the body the same way; this is that one definition. What the values may be is
shared/devices.py.
"""
from __future__ import annotations

from typing import Any

from shared.devices import is_number

# Command error codes and their HTTP statuses (docs/architecture.md, "Handler API").
TIMEOUT = "TIMEOUT"
REJECTED = "REJECTED"
OFFLINE = "OFFLINE"
UNSUPPORTED = "UNSUPPORTED"
INVALID_VALUE = "INVALID_VALUE"
UNKNOWN_DEVICE = "UNKNOWN_DEVICE"
HTTP_STATUS = {TIMEOUT: 504, REJECTED: 409, OFFLINE: 503, UNSUPPORTED: 400, INVALID_VALUE: 400,
               UNKNOWN_DEVICE: 404}


class CommandError(Exception):
    """A command that failed; ``code`` is one of the codes above."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def parse_timeout(raw: Any, default: float) -> float:
    """``timeout`` of a command body is in milliseconds (the MQTT contract); seconds out."""
    if raw is None:
        return default
    if not is_number(raw) or not 1 <= raw <= 300_000:
        raise CommandError(INVALID_VALUE, f"timeout must be milliseconds 1..300000, got {raw!r}")
    return raw / 1000.0


def parse_command_id(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, (str, int)) or isinstance(raw, bool) or not 0 < len(str(raw)) <= 64:
        raise CommandError(INVALID_VALUE, f"id must be a string of 1..64 characters, got {raw!r}")
    return str(raw)
