"""A simulated occupant: a person at a window whose taste differs from the comfort rule
(services/ml_inference/rule.py). The proof that learning works: the bench scenario ``learning``
uses ``preference`` and ``Occupant``; run as a program it lives next to a running instance.

The stated preference, on top of the rule:

* **humid** (above 65 %): 25 points more open;
* **loud** (sound above -35 dBFS): closed, whatever else;
* **never more than 60 %** when the outside is cold (below 10 °C).

The issue says "never more than 60 % at night". The model has no clock input, so a night rule
could never be learnt from what it sees; night is read as what it brings, a cold outside.

The occupant corrects the way a person would: some time after the situation (``delay``), a few
points off (``noise``), and now and then inconsistently (``slip``: another position altogether).

    python -m firmware.emulator.occupant --aggregator http://127.0.0.1:5003 --window living_window

watches the aggregator's ``/events`` for the window's automation (``automation_moved``, and
``automation_recommendation`` when it only suggests: both carry the inputs), and when the window is not where this
person wants it (by more than ``--bother`` points), moves it by REST after the delay
(``POST /device/<window>/cmd`` with the API token), as someone who walks to the window would.
The aggregator reports that command to ml_inference as a correction. Needs only the standard
library and the rule (no torch).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from services.ml_inference.inputs import InvalidInput, WindowInputs, parse_inputs
from services.ml_inference.rule import comfort_rule

HUMID, MORE_OPEN_WHEN_HUMID = 65.0, 25.0
LOUD = -35.0
COLD_OUTSIDE, COLD_MAX = 10.0, 60.0
WATCHED = ("automation_moved", "automation_recommendation")


def preference(inputs: WindowInputs) -> float:
    """Where this occupant wants the window (0..100)."""
    position, _ = comfort_rule(inputs)
    if inputs.humidity > HUMID:
        position += MORE_OPEN_WHEN_HUMID
    if inputs.sound_level is not None and inputs.sound_level > LOUD:
        position = 0.0
    if inputs.outdoor_temperature is not None and inputs.outdoor_temperature < COLD_OUTSIDE:
        position = min(position, COLD_MAX)
    return min(max(position, 0.0), 100.0)


@dataclass
class Occupant:
    seed: int = 1
    noise: float = 3.0
    slip: float = 0.05
    delay: tuple[float, float] = (30.0, 600.0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def correct(self, inputs: WindowInputs) -> tuple[float, float]:
        """``(position chosen, seconds after the situation)``: the preference, a few points off,
        sometimes something else entirely."""
        if self.rng.random() < self.slip:
            chosen = self.rng.choice([0.0, 50.0, 100.0])
        else:
            chosen = preference(inputs) + self.rng.gauss(0.0, self.noise)
        return round(min(max(chosen, 0.0), 100.0)), self.rng.uniform(*self.delay)


def situation(event: Mapping[str, Any], window: str) -> tuple[WindowInputs, float] | None:
    """``(inputs, where the automation put or would put the window)`` of an aggregator event about
    ``window``'s automation, or None for any other event (or one without usable inputs)."""
    if event.get("device_id") != window or event.get("event") not in WATCHED:
        return None
    data = event.get("data") or {}
    if event.get("event") == "automation_recommendation" and data.get("action") != "suggest":
        return None  # a move comes as automation_moved; a hold or a stay moves nothing to answer
    position = data.get("position")
    if not isinstance(position, (int, float)) or isinstance(position, bool):
        return None
    inputs = dict(data.get("inputs") or {})
    current = data.get("from") if event.get("event") == "automation_moved" else None
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        inputs["position"] = float(current)
    try:
        return parse_inputs(inputs), float(position)
    except InvalidInput:
        return None


def events(url: str, headers: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """The aggregator's ``/events`` (server-sent events) as dicts, for as long as the stream lasts."""
    request = urllib.request.Request(url.rstrip("/") + "/events", headers={**headers, "Accept": "text/event-stream"})
    with urllib.request.urlopen(request, timeout=60) as stream:
        data: list[str] = []
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif not line and data:
                try:
                    parsed = json.loads("\n".join(data))
                except ValueError:
                    parsed = None
                data = []
                if isinstance(parsed, dict):
                    yield parsed


class Person:
    """Answers a window's automation events like ``occupant`` would: one pending correction at a
    time, re-aimed at the latest situation (a person reacts to the room as it is when they get up)."""

    def __init__(self, occupant: Occupant, aggregator: str, window: str, headers: Mapping[str, str], *,
                 bother: float = 10.0, time_scale: float = 1.0) -> None:
        self.occupant, self.aggregator, self.window = occupant, aggregator.rstrip("/"), window
        self.headers, self.bother, self.time_scale = dict(headers), bother, time_scale
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.sent = 0

    def see(self, event: Mapping[str, Any]) -> float | None:
        """Take an event in; the delay (s) of the correction it schedules, or None."""
        found = situation(event, self.window)
        if found is None:
            return None
        inputs, automatic = found
        if abs(preference(inputs) - automatic) <= self.bother:
            return None
        chosen, delay = self.occupant.correct(inputs)
        delay *= self.time_scale
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(delay, self.move, (chosen,))
            self._timer.daemon = True
            self._timer.start()
        return delay

    def move(self, position: float) -> None:
        self.sent += 1
        body = json.dumps({"id": f"occupant-{os.getpid()}-{self.sent}", "values": {"position": position}}).encode()
        request = urllib.request.Request(f"{self.aggregator}/device/{self.window}/cmd", data=body, method="POST",
                                         headers={**self.headers, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                print(f"moved {self.window} to {position:g} % ({answer.status})", flush=True)
        except OSError as exc:
            print(f"moving {self.window} to {position:g} % failed: {exc}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m firmware.emulator.occupant", description=__doc__.splitlines()[0])
    p.add_argument("--aggregator", default="http://127.0.0.1:5003", help="the aggregator's URL")
    p.add_argument("--window", required=True, help="the window's device id (one with an automation)")
    p.add_argument("--seed", type=int, default=1, help="random seed (noise, delays, slips)")
    p.add_argument("--slip", type=float, default=0.05,
                   help="how often a correction is something else altogether (default 0.05)")
    p.add_argument("--bother", type=float, default=10.0,
                   help="points the window may be off before the person gets up (default 10)")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply the 30-600 s delays (0.01: seconds, for a demo)")
    args = p.parse_args(argv)
    token = os.environ.get("SENSOR_HUB_API_TOKEN")
    if not token:
        print("give the API token as SENSOR_HUB_API_TOKEN (the instance's DATA_DIR/api-token)", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    person = Person(Occupant(seed=args.seed, slip=args.slip), args.aggregator, args.window, headers, bother=args.bother,
                    time_scale=args.time_scale)
    while True:
        try:
            for event in events(args.aggregator, headers):
                delay = person.see(event)
                if delay is not None:
                    print(f"will correct {args.window} in {delay:.0f} s", flush=True)
        except KeyboardInterrupt:
            return 0
        except OSError as exc:
            print(f"events: {exc}; again in 5 s", file=sys.stderr, flush=True)
            time.sleep(5.0)  # a reconnect pause, not synchronisation


if __name__ == "__main__":
    sys.exit(main())
