"""The devices a handler service owns and their current view: one table, one change rule.

The serial handler (devices fed by boards), the HTTP poller (devices behind endpoints) and
ml_inference (the automations' switches) each keep the ``DeviceView`` of the Handler API
(docs/architecture.md): ``device_id``, ``type``, ``name``, where it comes from (``board``;
``endpoint`` and ``key``; ``automation``), ``online``, ``state``, ``last_seen``, ``reason``.
What a board line or an endpoint's answer *means* stays in each service; holding the result,
deciding whether it is news and showing it is here, so the three cannot drift apart.

The change rule (:func:`same_value`): a ``state`` event goes out only when a property's value
really changed. Numerically equal numbers are the same reading (``21`` then ``21.0``: a sensor
whose JSON writer drops the ``.0`` is not moving); a bool is not a number (``true`` then ``1``
is a change), and anything else must be equal and of the same type.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.clock import iso
from shared.config import DeviceSpec


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same_value(old: Any, new: Any) -> bool:
    """True when ``new`` is no change from ``old`` (the module's change rule)."""
    if _is_number(old) and _is_number(new):
        return old == new
    return type(old) is type(new) and old == new


def same_state(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Two whole states are the same: the same properties, each :func:`same_value`."""
    return old is not None and old.keys() == new.keys() and all(same_value(old[k], new[k]) for k in new)


def device_view(spec: DeviceSpec, source_fields: Iterable[str], *, online: bool, state: Mapping[str, Any],
                last_seen: float | None, reason: str | None) -> dict[str, Any]:
    """The Handler API's ``DeviceView`` of one device; ``source_fields`` name the ``DeviceSpec``
    fields that say where it comes from (``("board",)``, ``("endpoint", "key")``...)."""
    return {"device_id": spec.device_id, "type": spec.type, "name": spec.name,
            **{name: getattr(spec, name) for name in source_fields},
            "online": online, "state": dict(state), "last_seen": iso(last_seen), "reason": reason}


@dataclass
class Device:
    """One device's current view. Mutated only under ``DeviceTable``'s lock."""

    spec: DeviceSpec
    reason: str | None
    state: dict[str, Any] = field(default_factory=dict)
    online: bool = False
    last_seen: float | None = None
    problem: str | None = None  # the error code that keeps it offline, so a service records it once


class DeviceTable:
    """Every device of a service, by id, by source (board, endpoint) and by (source, type);
    thread-safe.

    ``update`` says what changed, so a ``state`` event goes out only for a real change (or the
    first reading), while ``last_seen`` moves with every reading; ``set_online`` says when the
    availability changed (online, or the reason why not), so it is announced once.
    """

    def __init__(self, specs: Iterable[DeviceSpec], source_fields: tuple[str, ...], waiting: str) -> None:
        """``source_fields``: the spec fields a view shows after the name; ``waiting``: the
        reason a device is offline until its source first speaks."""
        self._lock = threading.Lock()
        self._source_fields = source_fields
        self._devices = {spec.device_id: Device(spec, reason=waiting) for spec in specs}
        self._by_source: dict[str, list[Device]] = {}
        self._by_type: dict[tuple[str, str], list[Device]] = {}  # looked up for every board line
        for device in self._devices.values():
            self._by_source.setdefault(device.spec.source_id, []).append(device)
            self._by_type.setdefault((device.spec.source_id, device.spec.type), []).append(device)

    # -- lookups

    def ids(self) -> list[str]:
        return list(self._devices)

    def get(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def of_source(self, source_id: str) -> list[Device]:
        """The devices a board or an endpoint feeds, in config order."""
        return list(self._by_source.get(source_id, ()))

    def of_type(self, source_id: str, device_type: str) -> list[Device]:
        return self._by_type.get((source_id, device_type), [])

    # -- views

    def view(self, device: Device) -> dict[str, Any]:
        with self._lock:
            return self._view(device)

    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._view(d) for d in self._devices.values()]

    def _view(self, device: Device) -> dict[str, Any]:
        return device_view(device.spec, self._source_fields, online=device.online, state=device.state,
                           last_seen=device.last_seen, reason=device.reason)

    # -- changes

    def update(self, device: Device, props: Mapping[str, Any], now: float) -> dict[str, Any] | None:
        """Merge ``props``; the full new state when something changed (or it is the first
        reading), else None."""
        with self._lock:
            state = device.state
            changed = not state and bool(props)  # the first reading is news
            for key, value in props.items():
                if key not in state or not same_value(state[key], value):
                    state[key] = value
                    changed = True
            device.last_seen = now
            return dict(state) if changed else None

    def touch(self, source_id: str, now: float) -> None:
        """The source spoke: every device of it was seen now, whether or not a reading changed."""
        with self._lock:
            for device in self._by_source.get(source_id, ()):
                device.last_seen = now

    def set_online(self, device: Device, online: bool, reason: str | None, problem: str | None = None) -> bool:
        """Set a device's availability; True when it changed (online, or the reason why not)."""
        with self._lock:
            return self._set_online(device, online, reason, problem)

    def set_source_online(self, source_id: str, online: bool, reason: str | None) -> list[Device]:
        """Set the availability of every device of a board or endpoint; those whose changed."""
        with self._lock:
            return [d for d in self._by_source.get(source_id, ()) if self._set_online(d, online, reason, None)]

    @staticmethod
    def _set_online(device: Device, online: bool, reason: str | None, problem: str | None) -> bool:
        reason = None if online else reason
        changed = device.online != online or device.reason != reason
        device.online, device.reason, device.problem = online, reason, problem
        return changed
