"""How board messages map onto the state of the logical devices a board feeds.

A board speaks in board terms (one ``sensor`` line with every reading, ``window`` lines, acks);
the rest of the system speaks in devices (docs/architecture.md, "Device types and their state").
This module is the translation; the devices' table and its change rule are shared/device_table.py.
"""
from __future__ import annotations

from typing import Any

from shared.devices import board_fields, device_type

from .lines import Message

# sensor-line field -> (device type, state property), from the registry (shared/devices.py)
SENSOR_PROPERTIES: dict[str, tuple[str, str]] = {name: (type_name, prop.name)
                                                 for name, (type_name, prop) in board_fields().items()}
MOTION_EVENTS = {"motion_started": True, "motion_stopped": False}
# alert -> the device type it is about (sensor_failure names its sensor itself)
ALERT_DEVICES = {"high_temperature": "temperature", "low_battery": "battery"}
LED_PROPERTIES = tuple(p.name for p in device_type("led").properties)
WINDOW_PROPERTIES = tuple(p.name for p in device_type("window").properties)


def sensor_updates(message: Message) -> dict[str, dict[str, Any]]:
    """A ``sensor`` line split by device type: ``{"temperature": {"temperature": 21.5}, ...}``.

    A ``null`` reading (the sensor failed this round) updates nothing: the last good value stays.
    """
    updates: dict[str, dict[str, Any]] = {}
    for name, (type_name, prop) in SENSOR_PROPERTIES.items():
        value = message.get(name)
        if value is not None:
            updates.setdefault(type_name, {})[prop] = value
    return updates


def window_update(fields: dict[str, Any]) -> dict[str, Any]:
    update = {k: fields[k] for k in WINDOW_PROPERTIES if k in fields}
    if "position" in update and "target" not in update:
        update["target"] = update["position"]
    return update


def led_update(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in LED_PROPERTIES if k in result}


def led_report(report: Any) -> dict[str, Any]:
    """The LED's state as a board reports it unasked (``status.led``): only the properties whose
    value a board can really have (docs/serial-protocol.md, ``led``), so a garbled report
    cannot put an LED into a state no command could."""
    if not isinstance(report, dict):
        return {}
    checks = {
        "state": lambda v: v in ("on", "off"),
        "color": lambda v: isinstance(v, str) and len(v) == 7 and v[0] == "#"
        and all(c in "0123456789abcdefABCDEF" for c in v[1:]),
        "brightness": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255,
        "blink": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10_000,
    }
    return {k: report[k] for k in LED_PROPERTIES if k in report and checks[k](report[k])}
