"""What a command may say, by device type, checked before any service is touched.

A command that fails here costs nothing else: no handler is called, no device is woken. The
rules per device type live in shared/devices.py, which the handlers use too, so a value the
board would refuse is refused here already, with a message that says what is expected. The
envelope around the values (id, timestamp, timeout) is shared/commands.py's, as everywhere.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.commands import CommandError
from shared.devices import InvalidCommand, normalize_command


def validate_values(device_type: str, values: Mapping[str, Any], automation: bool = False) -> dict[str, Any]:
    """The canonical values, or :class:`CommandError` (400) unless this device type takes them
    (``automation``: the device's source is a window automation, whose switch takes ``model`` too)."""
    try:
        return normalize_command(device_type, values, automation)
    except InvalidCommand as exc:
        raise CommandError(exc.code, exc.message, **exc.extra) from None
