"""The devices behind HTTP endpoints and their current view (``DeviceView`` of the handler API)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from shared.clock import iso_at
from shared.config import DeviceSpec

WAITING = "waiting for the first poll"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return iso_at(timestamp)


@dataclass
class Device:
    """One device's current view. Mutated only under ``DeviceTable``'s lock."""

    spec: DeviceSpec
    state: dict[str, Any] = field(default_factory=dict)
    online: bool = False
    reason: str | None = WAITING
    last_seen: float | None = None
    problem: str | None = None  # the error code that keeps it offline, so it is recorded once
    commanded_at: float = 0.0   # time.monotonic() of the last command that changed it

    def view(self) -> dict[str, Any]:
        return {"device_id": self.spec.device_id, "type": self.spec.type, "name": self.spec.name,
                "endpoint": self.spec.endpoint, "key": self.spec.key, "online": self.online,
                "state": dict(self.state), "last_seen": iso(self.last_seen), "reason": self.reason}


class DeviceTable:
    """Every device of every endpoint, by id and by endpoint; thread-safe.

    ``update`` says what changed, so a ``state`` event goes out only for a real change (or the
    first reading), while ``last_seen`` moves with every good poll.
    """

    def __init__(self, specs: tuple[DeviceSpec, ...]) -> None:
        self._lock = threading.Lock()
        self._devices = {spec.device_id: Device(spec) for spec in specs}
        self._by_endpoint: dict[str, list[Device]] = {}
        for device in self._devices.values():
            self._by_endpoint.setdefault(device.spec.endpoint or "", []).append(device)

    def ids(self) -> list[str]:
        return list(self._devices)

    def get(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def on_endpoint(self, endpoint_id: str) -> list[Device]:
        return list(self._by_endpoint.get(endpoint_id, ()))

    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.view() for d in self._devices.values()]

    def view(self, device_id: str) -> dict[str, Any]:
        with self._lock:
            return self._devices[device_id].view()

    def update(self, device: Device, props: dict[str, Any], now: float) -> dict[str, Any] | None:
        """Merge ``props``; the full new state when something changed (or it is the first
        reading), else None."""
        with self._lock:
            state = device.state
            changed = not state and bool(props)
            for key, value in props.items():
                if key not in state or state[key] != value or type(state[key]) is not type(value):
                    state[key] = value
                    changed = True
            device.last_seen = now
            return dict(state) if changed else None

    def set_online(self, device: Device, online: bool, reason: str | None, problem: str | None = None) -> bool:
        """Set a device's availability; True when it changed (online, or the reason why not)."""
        with self._lock:
            reason = None if online else reason
            changed = device.online != online or device.reason != reason
            device.online, device.reason, device.problem = online, reason, problem
            return changed
