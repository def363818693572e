"""What the config package knows about device types, in one small module.

The schema's ``devices[].type`` enum is the list of types; the rules in validate.py check that
an automation's window and sensors have fitting types.
"""
from __future__ import annotations

from shared.config.instance_schema import schema

DEVICE_TYPES: tuple[str, ...] = tuple(schema()["$defs"]["device"]["properties"]["type"]["enum"])
