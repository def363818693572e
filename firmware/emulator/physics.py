"""A simulated room: what the board's sensors would measure, evolving with wall-clock time.

Temperature and humidity follow a daily cycle plus a slow random walk, people walk past the PIR
in bursts, the room is louder while someone is there, its CO2 rises while someone is there and
settles back towards outdoor air when nobody is, and the battery discharges. Any value can
be pinned through the control channel (`{"set": {...}}`) and unpinned with null.
"""
from __future__ import annotations

import math
import random
import time

PINNABLE = ("temperature", "humidity", "battery_v", "sound_dbfs", "co2")
OUTDOOR_CO2_PPM = 420.0
OCCUPIED_CO2_PPM = 1400.0   # where a closed room with someone in it is heading
CO2_TIME_CONSTANT_S = 1200.0


class Room:
    def __init__(self, seed: int | None = None, motion_per_hour: float = 12.0,
                 battery_drain_v_per_h: float = 0.02, clock=time.time) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.motion_per_hour = motion_per_hour
        self.drain = battery_drain_v_per_h
        self.pinned: dict[str, float] = {}
        self.started = clock()
        self.base_temperature = 20.0 + self.rng.uniform(-1.5, 1.5)
        self.base_humidity = 45.0 + self.rng.uniform(-5, 5)
        self.battery_start = 4.05 + self.rng.uniform(-0.05, 0.05)
        self.walk_t = 0.0
        self.walk_h = 0.0
        self.co2 = 600.0 + self.rng.uniform(-50, 50)
        self.forced_motion: bool | None = None
        self.burst_until = 0.0
        self.next_burst = self._schedule_burst(self.started)
        self.pir_level = False
        self.last_step = self.started

    # --- evolution ------------------------------------------------------------------------

    def _schedule_burst(self, now: float) -> float:
        if self.motion_per_hour <= 0:
            return math.inf
        return now + self.rng.expovariate(self.motion_per_hour / 3600.0)

    def step(self) -> bool:
        """Advance the random walks and the PIR; returns the PIR level now."""
        now = self.clock()
        dt = max(0.0, min(now - self.last_step, 60.0))
        self.last_step = now
        # Ornstein-Uhlenbeck walks: wander but return towards the daily curve.
        self.walk_t += -self.walk_t * dt / 1800.0 + self.rng.gauss(0, 0.02) * math.sqrt(dt)
        self.walk_h += -self.walk_h * dt / 1800.0 + self.rng.gauss(0, 0.05) * math.sqrt(dt)
        target = OCCUPIED_CO2_PPM if self.pir_level else OUTDOOR_CO2_PPM
        self.co2 += (target - self.co2) * dt / CO2_TIME_CONSTANT_S
        if self.forced_motion is not None:
            self.pir_level = self.forced_motion
            return self.pir_level
        if now >= self.next_burst:
            self.burst_until = now + self.rng.uniform(5.0, 40.0)
            self.next_burst = self._schedule_burst(self.burst_until)
        self.pir_level = now < self.burst_until
        return self.pir_level

    def _day_phase(self) -> float:
        t = time.localtime(self.clock())
        hours = t.tm_hour + t.tm_min / 60.0 + t.tm_sec / 3600.0
        return math.sin(2 * math.pi * (hours - 9.0) / 24.0)  # warmest mid-afternoon

    # --- what the sensors see -------------------------------------------------------------

    def temperature(self) -> float:
        if "temperature" in self.pinned:
            return self.pinned["temperature"]
        return self.base_temperature + 3.0 * self._day_phase() + self.walk_t

    def humidity(self) -> float:
        if "humidity" in self.pinned:
            return self.pinned["humidity"]
        return max(0.0, min(100.0, self.base_humidity - 8.0 * self._day_phase() + self.walk_h))

    def battery_v(self) -> float:
        if "battery_v" in self.pinned:
            return self.pinned["battery_v"]
        hours = (self.clock() - self.started) / 3600.0
        return max(3.0, self.battery_start - self.drain * hours)

    def sound_dbfs(self) -> float:
        if "sound_dbfs" in self.pinned:
            return self.pinned["sound_dbfs"]
        if self.pir_level:
            return -38.0 + self.rng.gauss(0, 4.0)
        return -62.0 + self.rng.gauss(0, 1.5)

    def co2_ppm(self) -> float:
        if "co2" in self.pinned:
            return self.pinned["co2"]
        return self.co2 + self.rng.gauss(0, 5.0)

    def set(self, values: dict) -> None:
        """Pin (or with None unpin) readings; raises ValueError naming a bad field."""
        for key, value in values.items():
            if key not in PINNABLE:
                raise ValueError(f"cannot set {key!r}; settable: {', '.join(PINNABLE)}")
            if value is None:
                self.pinned.pop(key, None)
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number or null")
            else:
                self.pinned[key] = float(value)

    def snapshot(self) -> dict:
        return {"temperature": round(self.temperature(), 2), "humidity": round(self.humidity(), 2),
                "battery_v": round(self.battery_v(), 3), "co2": round(self.pinned.get("co2", self.co2)),
                "pir": self.pir_level, "pinned": dict(self.pinned)}
