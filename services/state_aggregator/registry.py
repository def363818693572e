"""Every logical device of the instance, who owns it, and whether it is reachable right now.

The instance config is the single source of truth for which devices exist; handlers only tell
us how they are. A device whose owning service is not running is listed all the same, offline,
with the reason — so ``curl /devices`` always shows the whole instance.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from shared.config import DeviceSpec, GroupSpec, Settings
from shared.errors import NotFound

DISABLED = "disabled in the instance config"
SERVICE_NOT_RUNNING = "service not running"


class UnknownDevice(NotFound, KeyError):
    """A device the config does not name; still a KeyError for callers that ask "is it there?"."""

    def __init__(self, device_id: str, known: list[str]) -> None:
        super().__init__("UNKNOWN_DEVICE", f"No device {device_id!r} in this instance.", known=known)
        self.device_id = device_id
        self.known = known


class UnknownGroup(NotFound, KeyError):
    def __init__(self, group_id: str, known: list[str]) -> None:
        super().__init__("UNKNOWN_GROUP", f"No group {group_id!r} in this instance.", known=known)
        self.group_id = group_id
        self.known = known


@dataclass(frozen=True)
class Availability:
    online: bool = False
    last_seen: str | None = None
    reason: str | None = None


class DeviceRegistry:
    """Devices from the config plus their availability. Thread-safe; reads are copies."""

    def __init__(self, devices: Iterable[DeviceSpec], groups: Iterable[GroupSpec] = ()) -> None:
        self._specs: dict[str, DeviceSpec] = {d.device_id: d for d in devices}
        self._groups: dict[str, GroupSpec] = {g.group_id: g for g in groups}
        self._lock = threading.Lock()
        self._availability: dict[str, Availability] = {
            d.device_id: Availability(reason=DISABLED if not d.enabled else f"waiting for {d.service}")
            for d in self._specs.values()}

    @classmethod
    def from_settings(cls, settings: Settings) -> DeviceRegistry:
        return cls(settings.devices, settings.groups)

    # -- what exists

    def spec(self, device_id: str) -> DeviceSpec:
        try:
            return self._specs[device_id]
        except KeyError:
            raise UnknownDevice(device_id, self.known_ids()) from None

    def owner(self, device_id: Any) -> str | None:
        """The service that owns ``device_id``; None for an id the config does not name."""
        spec = self._specs.get(device_id) if isinstance(device_id, str) else None
        return spec.service if spec else None

    def known_ids(self) -> list[str]:
        return list(self._specs)

    def specs(self) -> list[DeviceSpec]:
        return list(self._specs.values())

    def services(self) -> list[str]:
        """Services that own at least one device, in config order."""
        return list(dict.fromkeys(d.service for d in self._specs.values()))

    def owned_by(self, service: str) -> list[DeviceSpec]:
        return [d for d in self._specs.values() if d.service == service]

    def group(self, group_id: str) -> GroupSpec:
        try:
            return self._groups[group_id]
        except KeyError:
            raise UnknownGroup(group_id, list(self._groups)) from None

    def groups(self) -> list[GroupSpec]:
        return list(self._groups.values())

    # -- how it is

    def availability(self, device_id: str) -> Availability:
        with self._lock:
            return self._availability[device_id]

    def all_availability(self) -> dict[str, Availability]:
        with self._lock:
            return dict(self._availability)

    def update(self, device_id: str, online: bool, reason: str | None,
               last_seen: str | None = None) -> Availability | None:
        """Set availability; returns the new value when online/reason changed, else None.

        A disabled device stays offline whatever its handler says: the config wins.
        """
        spec = self._specs.get(device_id)
        if spec is None:
            return None
        if not spec.enabled:
            online, reason = False, DISABLED
        if online:
            reason = None
        with self._lock:
            old = self._availability[device_id]
            new = Availability(online, last_seen or old.last_seen, reason)
            self._availability[device_id] = new
        return new if (old.online, old.reason) != (new.online, new.reason) else None

    def seen(self, device_id: str, timestamp: str | None) -> None:
        """The device said something (a reading, an event): remember when."""
        if device_id not in self._specs or not timestamp:
            return
        with self._lock:
            self._availability[device_id] = replace(self._availability[device_id], last_seen=timestamp)

    def mark_service_down(self, service: str, reason: str) -> dict[str, Availability]:
        """Every enabled device of ``service`` offline with ``reason``; returns those that changed."""
        changed = {}
        for spec in self.owned_by(service):
            new = self.update(spec.device_id, False, reason)
            if new is not None:
                changed[spec.device_id] = new
        return changed

    def counts(self) -> dict[str, Any]:
        with self._lock:
            values = list(self._availability.values())
        return {"devices": len(values), "online": sum(1 for a in values if a.online)}
