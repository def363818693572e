"""The logical devices a board feeds, and how board messages map onto their state.

A board speaks in board terms (one ``sensor`` line with every reading, ``window`` lines, acks);
the rest of the system speaks in devices (docs/architecture.md, "Device types and their state").
This module is the translation, plus the small state record each device keeps.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from shared.clock import iso_at
from shared.config import DeviceSpec
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


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return iso_at(timestamp)


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


@dataclass
class Device:
    """One logical device's current view. Mutated only under ``DeviceTable``'s lock."""

    spec: DeviceSpec
    state: dict[str, Any] = field(default_factory=dict)
    online: bool = False
    reason: str | None = "waiting for the board"
    last_seen: float | None = None

    def view(self) -> dict[str, Any]:
        return {
            "device_id": self.spec.device_id,
            "type": self.spec.type,
            "name": self.spec.name,
            "board": self.spec.board,
            "online": self.online,
            "state": dict(self.state),
            "last_seen": iso(self.last_seen),
            "reason": self.reason,
        }


class DeviceTable:
    """The devices of every board, by id and by (board, type); thread-safe.

    ``update`` returns what changed so the caller publishes a ``state`` event only for real
    changes, while ``last_seen`` moves with every reading.
    """

    def __init__(self, specs: tuple[DeviceSpec, ...]) -> None:
        self._lock = threading.Lock()
        self._devices = {spec.device_id: Device(spec) for spec in specs}
        self._by_board: dict[str, list[Device]] = {}
        self._by_type: dict[tuple[str, str], list[Device]] = {}  # looked up for every line
        for device in self._devices.values():
            self._by_board.setdefault(device.spec.board or "", []).append(device)
            self._by_type.setdefault((device.spec.board or "", device.spec.type), []).append(device)

    def ids(self) -> list[str]:
        return list(self._devices)

    def get(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def on_board(self, board_id: str) -> list[Device]:
        return list(self._by_board.get(board_id, ()))

    def of_type(self, board_id: str, device_type: str) -> list[Device]:
        return self._by_type.get((board_id, device_type), [])

    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.view() for d in self._devices.values()]

    def view(self, device_id: str) -> dict[str, Any] | None:
        with self._lock:
            device = self._devices.get(device_id)
            return device.view() if device else None

    def update(self, device: Device, props: dict[str, Any], now: float) -> dict[str, Any] | None:
        """Merge ``props``; the full new state when something changed (or it is the first
        reading), else None."""
        with self._lock:
            state = device.state
            changed = not state  # the first reading is news
            for key, value in props.items():
                if state.get(key, _MISSING) != value:
                    state[key] = value
                    changed = True
            device.last_seen = now
            return dict(state) if changed else None

    def touch(self, board_id: str, now: float) -> None:
        with self._lock:
            for device in self._by_board.get(board_id, ()):
                device.last_seen = now

    def set_online(self, board_id: str, online: bool, reason: str | None) -> list[Device]:
        """Set availability of a board's devices; returns those whose availability changed."""
        changed = []
        with self._lock:
            for device in self._by_board.get(board_id, ()):
                if device.online != online:
                    changed.append(device)
                device.online, device.reason = online, (None if online else reason)
        return changed


_MISSING = object()
