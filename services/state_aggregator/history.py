"""The recent readings of every device, for the status page's sparklines
(``GET /device/<id>/history``, ``GET /history``).

Bounded by construction: one ring per configured device (never per id an event names), each
holding at most ``capacity`` points of two 8-byte floats, at most one point per ``resolution_s``
slot (a reading in the same slot as the last point replaces it, so the last point is always the
current reading). With the defaults, 360 points of 10 s: an hour, 5.6 KiB a device, 5.5 MiB
for 1,000 devices however fast they report. What is recorded is a device's reading: the one
property its type is about (``READINGS``), when it is a number (a boolean counts as 0/1).
"""
from __future__ import annotations

import math
import re
import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

CAPACITY = 360
RESOLUTION_S = 10.0
POINT_BYTES = 16
"""Two doubles: the time (epoch seconds) and the value."""

READINGS: dict[str, tuple[str, str | None]] = {
    # device type: (the state property that is its reading, its unit)
    "temperature": ("temperature", "°C"),
    "humidity": ("humidity", "%"),
    "pressure": ("pressure", "hPa"),
    "illuminance": ("illuminance", "lx"),
    "sound_level": ("sound_level", "dBFS"),
    "battery": ("battery", "%"),
    "motion": ("motion", None),
    "window": ("position", "%"),
    "led": ("brightness", None),
}


class Ring:
    """Points ``(t, value)`` in time order, at most ``capacity``, oldest dropped first."""

    __slots__ = ("capacity", "resolution", "_times", "_values", "_start")

    def __init__(self, capacity: int, resolution: float) -> None:
        self.capacity, self.resolution = capacity, resolution
        self._times, self._values = array("d"), array("d")
        self._start = 0  # index of the oldest point once the arrays are full

    def __len__(self) -> int:
        return len(self._times)

    def _last_index(self) -> int:
        return (self._start - 1) % len(self._times)

    def add(self, t: float, value: float) -> None:
        if self._times:
            last = self._last_index()
            # Same slot as the last point, or a clock that stepped back: the last point is now this one.
            slot = math.floor(t / self.resolution)
            if t < self._times[last] or slot == math.floor(self._times[last] / self.resolution):
                self._times[last], self._values[last] = max(t, self._times[last]), value
                return
        if len(self._times) < self.capacity:
            self._times.append(t)
            self._values.append(value)
            return
        self._times[self._start], self._values[self._start] = t, value
        self._start = (self._start + 1) % self.capacity

    def points(self, since: float | None = None) -> list[list[float]]:
        """``[[t, value], ...]`` oldest first, only those at or after ``since``."""
        n = len(self._times)
        order = [(self._start + i) % n for i in range(n)] if self._start else range(n)
        times = [self._times[i] for i in order]
        first = 0 if since is None else bisect_left(times, since)
        return [[times[k], self._values[order[k]]] for k in range(first, n)]


def reading_of(device_type: str, state: Mapping[str, Any]) -> float | None:
    """The number a device's state says for its reading, or None (no such property, not a number)."""
    prop = READINGS.get(device_type, (None, None))[0]
    value = state.get(prop) if prop else None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


class ReadingHistory:
    """Every device's ring; thread-safe (events arrive on the handlers' stream threads)."""

    def __init__(self, devices: Iterable[tuple[str, str]], capacity: int = CAPACITY,
                 resolution_s: float = RESOLUTION_S) -> None:
        """``devices``: ``(device_id, type)`` of every configured device."""
        if capacity < 1 or resolution_s <= 0:
            raise ValueError("capacity must be >= 1 and resolution_s > 0")
        self.capacity, self.resolution_s = capacity, resolution_s
        self._types = dict(devices)
        self._rings: dict[str, Ring] = {}
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        """What the points of every device can take at most (the arrays' own overhead aside)."""
        return sum(1 for t in self._types.values() if t in READINGS) * self.capacity * POINT_BYTES

    def record(self, device_id: str, state: Mapping[str, Any], at: float) -> bool:
        """Note the device's reading if ``state`` carries one; whether it did."""
        device_type = self._types.get(device_id)
        value = reading_of(device_type, state) if device_type else None
        if value is None:
            return False
        with self._lock:
            ring = self._rings.get(device_id)
            if ring is None:
                ring = self._rings[device_id] = Ring(self.capacity, self.resolution_s)
            ring.add(at, value)
        return True

    def describe(self, device_id: str) -> dict[str, Any]:
        """What a device's history is of: ``property`` and ``unit`` (both None for a type without a reading)."""
        prop, unit = READINGS.get(self._types[device_id], (None, None))
        return {"property": prop, "unit": unit}

    def points(self, device_id: str, since: float | None = None) -> list[list[float]]:
        """The device's points at or after ``since`` (KeyError for a device not configured)."""
        if device_id not in self._types:
            raise KeyError(device_id)
        with self._lock:
            ring = self._rings.get(device_id)
            return ring.points(since) if ring is not None else []

    def stats(self) -> dict[str, Any]:
        with self._lock:
            points = sum(len(r) for r in self._rings.values())
        return {"capacity": self.capacity, "resolution_s": self.resolution_s, "points": points,
                "max_bytes": self.max_bytes}


def thin(points: list[list[float]], most: int) -> list[list[float]]:
    """At most ``most`` points spread evenly over the list, the newest always kept (a sparkline
    ``most`` pixels wide needs no more)."""
    if most < 1 or len(points) <= most:
        return points
    step = len(points) / most
    return [points[min(len(points) - 1, math.ceil((i + 1) * step) - 1)] for i in range(most)]


_AGO = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_since(raw: str, now: float) -> float:
    """``?since=``: ISO 8601 (naive means local time), epoch seconds, or a span back from now
    (``90s``, ``15m``, ``1h``); epoch seconds. ValueError with a sentence for anything else."""
    text = raw.strip()
    if match := _AGO.match(text):
        return now - float(match[1]) * _UNIT_S[match[2]]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"since={raw!r} is not a time")
        return value
    if "T" in text:  # an unencoded "+01:00" arrives as " 01:00" in a query string
        text = text.replace(" ", "+")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"since={raw[:40]!r} is not ISO 8601, epoch seconds or a span such as 15m or 1h") from None
    return parsed.timestamp() if parsed.tzinfo else parsed.astimezone().timestamp()
