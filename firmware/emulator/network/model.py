"""One simulated network sensor: what it measures and drives, whatever dialect it speaks.

Readings drift slowly (a sine over ten minutes plus the seed's phase, rounded like a real
sensor), unless a test pinned them; the relay and the light obey commands; the cover moves at
``cover_speed`` %/s towards its target. Faults make the device misbehave on purpose: ``slow``
(answers after ``delay`` s), ``error`` (an HTTP 500 page), ``garbage`` (200 with HTML),
``hang`` (never answers), ``huge`` (a JSON body that does not end).
"""
from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# name -> (centre, swing, decimals)
READINGS: dict[str, tuple[float, float, int]] = {
    "temperature": (21.0, 1.5, 1), "humidity": (45.0, 5.0, 1), "pressure": (1013.0, 4.0, 1),
    "illuminance": (180.0, 60.0, 0), "sound_level": (-52.0, 6.0, 1), "battery": (86.0, 1.0, 0),
    "battery_voltage": (3.95, 0.03, 2), "co2": (800.0, 150.0, 0),
}
FAULTS = ("none", "slow", "error", "garbage", "hang", "huge")
DRIFT_PERIOD_S = 600.0


@dataclass
class Fault:
    kind: str = "none"
    delay: float = 0.0
    status: int = 500


@dataclass
class SimulatedDevice:
    """The physical truth of one device; every dialect reads and drives the same model."""

    name: str
    profile: str
    seed: int = 0
    drift: bool = True
    cover_speed: float = 20.0
    pinned: dict[str, Any] = field(default_factory=dict)
    relays: dict[str, bool] = field(default_factory=dict)
    light: dict[str, Any] = field(default_factory=lambda: {"on": False, "brightness": 255, "color": "#ffffff"})
    motion: bool = False
    fault: Fault = field(default_factory=Fault)
    requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.cleared = threading.Event()  # set to release requests held by a ``hang``
        self._phase = random.Random(self.seed).uniform(0, 2 * math.pi)
        self._cover = {"from": 0.0, "target": 0, "since": time.monotonic()}

    # -- readings

    def reading(self, name: str) -> float:
        with self.lock:
            if name in self.pinned:
                return self.pinned[name]
        centre, swing, decimals = READINGS[name]
        if not self.drift:
            return round(centre, decimals)
        angle = 2 * math.pi * time.time() / DRIFT_PERIOD_S + self._phase + len(name)
        return round(centre + swing * math.sin(angle), decimals)

    def motion_now(self) -> bool:
        with self.lock:
            return bool(self.pinned.get("motion", self.motion))

    # -- relay and light

    def relay(self, relay_id: str = "0") -> bool:
        with self.lock:
            return self.relays.setdefault(relay_id, False)

    def set_relay(self, on: bool, relay_id: str = "0") -> bool:
        """Switch the relay; returns what it was."""
        with self.lock:
            was = self.relays.get(relay_id, False)
            self.relays[relay_id] = on
            return was

    def set_light(self, **values: Any) -> None:
        with self.lock:
            self.light.update({k: v for k, v in values.items() if v is not None})

    # -- cover

    def cover(self) -> dict[str, Any]:
        """``{"position": int, "target": int, "moving": bool}`` now."""
        with self.lock:
            c = self._cover
            elapsed = time.monotonic() - c["since"]
            distance = c["target"] - c["from"]
            travelled = min(abs(distance), elapsed * self.cover_speed)
            position = c["from"] + math.copysign(travelled, distance) if distance else c["from"]
            return {"position": int(position + 0.5), "target": c["target"], "moving": travelled < abs(distance)}

    def move_cover(self, target: int) -> None:
        with self.lock:
            now = self.cover()["position"]
            self._cover = {"from": float(now), "target": max(0, min(100, int(target))), "since": time.monotonic()}

    def stop_cover(self) -> None:
        with self.lock:
            position = self.cover()["position"]
            self._cover = {"from": float(position), "target": position, "since": time.monotonic()}

    # -- control

    def set(self, values: dict[str, Any]) -> None:
        """Pin readings or set states: ``{"temperature": 25.0, "motion": true, "switch": true,
        "position": 40, "light": {"on": true}}``; ``null`` unpins a reading."""
        with self.lock:
            for key, value in values.items():
                if key in READINGS or key == "motion":
                    if value is None:
                        self.pinned.pop(key, None)
                    else:
                        self.pinned[key] = value
                elif key == "switch":
                    self.relays["0"] = bool(value)
                elif key == "position":
                    self._cover = {"from": float(value), "target": int(value), "since": time.monotonic()}
                elif key == "light" and isinstance(value, dict):
                    self.light.update(value)
                else:
                    raise KeyError(key)

    def set_fault(self, kind: str, delay: float = 0.0, status: int = 500) -> None:
        if kind not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, got {kind!r}")
        with self.lock:
            self.fault = Fault(kind, delay, status)
            if kind == "hang":
                self.cleared.clear()
            else:
                self.cleared.set()

    def count(self, path: str) -> None:
        with self.lock:
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"name": self.name, "profile": self.profile, "readings": {n: self.reading(n) for n in READINGS},
                    "motion": self.motion_now(), "relays": dict(self.relays), "cover": self.cover(),
                    "light": dict(self.light), "fault": self.fault.kind, "requests": self.requests,
                    "by_path": dict(self.by_path)}
