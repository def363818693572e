"""What the config package knows about device types, in one small module.

The types and the automation roles are the device-type registry's (shared/devices.py), and the
schema's ``devices[].type`` enum is generated from it (``make docs``); the rules (rules.py) check
that an automation's window and sensors are devices of fitting types.
"""
from __future__ import annotations

from shared.devices import DEVICE_TYPES, automation_inputs

__all__ = ["DEVICE_TYPES", "ROLE_TYPES", "WINDOW_TYPE", "type_for_role"]

WINDOW_TYPE = "window"
"""The type of the device an automation moves."""

ROLE_TYPES = {role: type_name for role, (type_name, _) in automation_inputs().items()}
"""An automation's sensor role -> the device type it needs (outdoor_temperature: temperature)."""


def type_for_role(role: str) -> str:
    """The device type an automation's sensor in ``role`` must have."""
    return ROLE_TYPES.get(role, role)
