"""What the config package knows about device types, in one small module.

The schema's ``devices[].type`` enum is the list of types; the rules (rules.py) check that an
automation's window and sensors are devices of fitting types.
"""
from __future__ import annotations

from shared.config.instance_schema import schema

DEVICE_TYPES: tuple[str, ...] = tuple(schema()["$defs"]["device"]["properties"]["type"]["enum"])

WINDOW_TYPE = "window"
"""The type of the device an automation moves."""

ROLE_TYPES = {"outdoor_temperature": "temperature"}
"""An automation's sensor role -> the device type it needs, where the two names differ; every
other role (temperature, humidity, motion, sound_level) is named after its type."""


def type_for_role(role: str) -> str:
    """The device type an automation's sensor in ``role`` must have."""
    return ROLE_TYPES.get(role, role)
