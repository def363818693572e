"""What a window automation decides in the aggregator, as plain data and a clock: no threads,
no I/O, no sleeping (docs/automation.md; the runner that carries it out is automation.py).

ml_inference decides what a recommendation means for the window (policy.py there: limits,
min_change, confidence threshold, mode, manual hold). What is left to the aggregator, and lives
here, is everything around that question:

* **when to ask** — a change of an input (``state``/``availability``) schedules an evaluation
  ``debounce`` seconds later, and later changes within that time join it; the window stopping
  or coming online does the same; a command to the automation's switch or ml_inference coming
  or going asks at once; besides, every ``interval`` seconds (every ``retry`` while paused).
* **what to ask with** — the facts: the online inputs' readings (a stale value of a device that
  went away is not an input; without a temperature or humidity the automation waits), where
  the window is, and the last command a person gave it.
* **whose command it was** — every command to the window that the automation did not send
  itself is a person's, whatever its outcome; one that arrives while an evaluation is under
  way cancels the move that evaluation would make.
* **pause and resume** — ml_inference not answering pauses the automation (one
  ``AUTOMATION_PAUSED`` per pause); its next answer resumes it (``automation_resumed``).
* **what to say** — ``automation_recommendation`` when the decision changed,
  ``automation_moved`` when the board acknowledged a move, ``AUTOMATION_COMMAND_FAILED`` when not.

A round, as the runner drives it: ``take_trigger()`` once ``next_due()`` has come, ``ask()``
with a snapshot of the devices (None: waiting), then ``answered()`` or ``unavailable()``,
``move()`` (a ``Move`` to send, or None) and ``moved()`` with the window's answer, and
``round_over()`` to schedule the next interval. The ``on_*`` methods may come in between.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.clock import iso_at
from shared.commands import bounded_id
from shared.config import AutomationSpec

log = logging.getLogger(__name__)

STARTING, RUNNING, WAITING, PAUSED, STOPPED = "starting", "running", "waiting", "paused", "stopped"


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds for scheduling: never jumps."""

    def time(self) -> float:
        """Epoch seconds: a person's command is stamped with it, and ml_inference compares the
        stamp with its own clock (``manual_hold``)."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


@dataclass(frozen=True)
class DeviceView:
    """What the aggregator knows of one device right now."""

    online: bool = False
    state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    """Ask ml_inference what to do with these facts (``POST /automation/<id>/evaluate``)."""

    facts: dict[str, Any]
    trigger: str
    manual_seen: int  # how many commands a person had given the window: one more cancels its move


@dataclass(frozen=True)
class Move:
    """Send the window this command (through the aggregator's routing, like an MQTT command)."""

    cmd_id: str
    position: Any
    record: dict[str, Any]  # the decision it carries out

    @property
    def body(self) -> dict[str, Any]:
        return {"id": self.cmd_id, "values": {"position": self.position}}


@dataclass(frozen=True)
class Event:
    """An event about the window on the aggregator's stream."""

    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Alert:
    """An ``error`` record (``GET /errors`` and an ``error`` event) about the window."""

    code: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


Effect = Event | Alert


class AutomationCore:
    """One automation's decisions. Not thread-safe: the runner serialises the calls."""

    def __init__(self, spec: AutomationSpec, clock: Clock, input_property: Mapping[str, str],
                 required_inputs: tuple[str, ...], switches: frozenset[str] = frozenset(),
                 debounce: float = 0.02, retry: float = 5.0) -> None:
        """``input_property``: sensor role -> the state property that carries its reading;
        ``required_inputs``: the roles without which there is nothing to ask; ``switches``: the
        automation's own devices (a command to one asks again at once)."""
        self.spec = spec
        self._clock = clock
        self._input_property, self._required = input_property, required_inputs
        self._switches = switches
        self._inputs = frozenset(spec.sensors.values())
        self._debounce, self._retry = debounce, min(retry, spec.interval)
        self._due: float | None = None  # clock.monotonic() of the next evaluation
        self._trigger = "start"
        self._own_commands: set[str] = set()
        self._manual: dict[str, Any] | None = None  # {"at": epoch, "cmd_id"}
        self._manual_count = 0
        self._status, self._reason = STARTING, None
        # Paused until ml_inference answers again (waiting for an input meanwhile does not end a pause).
        self._paused = False
        self._last: dict[str, Any] | None = None
        self._last_move: dict[str, Any] | None = None
        self._pending: tuple[dict[str, Any], int] | None = None  # a move answered, not yet sent
        self._published: tuple[Any, ...] | None = None
        self.evaluations = 0
        self.moves = 0
        self._sent = 0

    # -- when to ask. Each returns True when the next evaluation came earlier (wake the runner).

    def start(self) -> bool:
        return self._schedule("start", self._debounce)

    def on_event(self, kind: str, data: Mapping[str, Any]) -> bool:
        """An event the aggregator published."""
        device_id = data.get("device_id")
        if device_id in self._inputs and kind in ("state", "availability"):
            return self._schedule(f"{device_id} changed", self._debounce)
        if device_id != self.spec.window:
            return False
        if kind == "state":
            state = data.get("state")
            if isinstance(state, Mapping) and state.get("moving") is False:
                return self._schedule(f"{device_id} stopped moving", self._debounce)
        elif kind == "availability" and data.get("online"):
            return self._schedule(f"{device_id} online", self._debounce)
        return False

    def on_command(self, device_id: str, cmd_id: str, status: int) -> bool:
        """A command went to a device. One for the window that is not ours is a person's (whatever
        its outcome: a move that timed out may still have happened); one that flipped our switch
        changes what the policy says (switching on also ends a hold)."""
        if device_id in self._switches and status == 200:
            return self._schedule(f"{device_id} commanded", 0.0)
        if device_id != self.spec.window or cmd_id in self._own_commands:
            return False
        self._manual = {"at": self._clock.time(), "cmd_id": cmd_id}
        self._manual_count += 1
        log.info("automation %s: %s was commanded by hand (%s); automatic moves hold off for %g s",
                 self.spec.automation_id, device_id, cmd_id, self.spec.manual_hold)
        return self._schedule(f"manual command {cmd_id}", self._debounce)

    def on_ml_changed(self, reason: str) -> bool:
        """ml_inference went down or came back: find out now rather than at the next interval."""
        return self._schedule(reason, 0.0)

    def next_due(self) -> float | None:
        """``clock.monotonic()`` of the next evaluation (None before ``start``)."""
        return self._due

    def take_trigger(self) -> str | None:
        """Why to evaluate now, or None when it is not time yet."""
        if self._due is None or self._due > self._clock.monotonic():
            return None
        self._due = None
        return self._trigger

    def round_over(self) -> None:
        """An evaluation ended, however: the next one after the interval (the retry when paused)."""
        self._schedule("interval", self._retry if self._status == PAUSED else self.spec.interval)

    def _schedule(self, reason: str, delay: float) -> bool:
        # The earliest wins: a burst of changes within ``delay`` makes one evaluation.
        due = self._clock.monotonic() + delay
        if self._due is not None and due >= self._due:
            return False
        self._due, self._trigger = due, reason
        return True

    # -- what to ask with

    def ask(self, trigger: str, devices: Mapping[str, DeviceView]) -> Ask | None:
        """The evaluation request from a snapshot of the inputs and the window (a device missing
        from ``devices`` counts as offline); None when a required input is missing (waiting)."""
        facts = self.facts(devices)
        if isinstance(facts, str):
            self._set_status(WAITING, facts)
            return None
        return Ask(facts, trigger, self._manual_count)

    def facts(self, devices: Mapping[str, DeviceView]) -> dict[str, Any] | str:
        """The facts, or why there is nothing to evaluate yet."""
        inputs: dict[str, Any] = {}
        for role, device_id in self.spec.sensors.items():
            device = devices.get(device_id) or DeviceView()
            # Only an online device's reading counts: a stale value of one that went away is no input.
            value = device.state.get(self._input_property.get(role, role)) if device.online else None
            if value is None and role in self._required:
                return f"waiting for {device_id} ({'no reading yet' if device.online else 'offline'})"
            if value is not None:
                inputs[role] = value
        window = devices.get(self.spec.window) or DeviceView()
        position = window.state.get("position")
        known = isinstance(position, (int, float)) and not isinstance(position, bool)
        return {"inputs": inputs,
                "window": {"position": position if known else None, "moving": window.state.get("moving") is True,
                           "online": window.online},
                "manual": dict(self._manual) if self._manual else None}

    # -- what the answer means

    def answered(self, ask: Ask, answer: Mapping[str, Any]) -> list[Effect]:
        """ml_inference answered: resume if paused, say what it decided when that changed, and
        keep a ``move`` for ``move()``."""
        self.evaluations += 1
        effects: list[Effect] = []
        if self._paused:
            self._paused = False
            log.info("automation %s resumed", self.spec.automation_id)
            effects.append(Event("automation_resumed", {"automation": self.spec.automation_id}))
        self._set_status(RUNNING, None)
        record = {**answer, "inputs": ask.facts["inputs"], "window": ask.facts["window"], "trigger": ask.trigger,
                  "evaluated_at": iso_at(self._clock.time())}
        self._last = record
        effects.extend(self._announce(record))
        self._pending = (record, ask.manual_seen) if answer.get("action") == "move" else None
        return effects

    def unavailable(self, reason: str) -> list[Effect]:
        """ml_inference could not answer: paused, said once per pause."""
        self._set_status(PAUSED, reason)
        if self._paused:
            return []
        self._paused = True
        log.warning("automation %s paused: %s", self.spec.automation_id, reason)
        return [Alert("AUTOMATION_PAUSED", f"automation {self.spec.automation_id} paused: {reason}")]

    def move(self) -> Move | None:
        """The move the last answer asked for, unless a person commanded the window since that
        evaluation began (the person wins). Its command id is ours until ``moved()``."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        record, manual_seen = pending
        if self._manual_count != manual_seen:
            log.info("automation %s: not moving %s, a person commanded it meanwhile (%s)",
                     self.spec.automation_id, self.spec.window, self._manual["cmd_id"])
            return None
        self._sent += 1
        cmd_id = bounded_id(f"auto-{self.spec.automation_id}-{self._sent}")
        self._own_commands.add(cmd_id)
        return Move(cmd_id, record["position"], record)

    def moved(self, move: Move, status: int, reply: Mapping[str, Any]) -> list[Effect]:
        """The window's answer to a move (the routing's HTTP status and body)."""
        self.forget(move)
        record = move.record
        data = {"automation": self.spec.automation_id, "cmd_id": move.cmd_id, "position": move.position,
                "from": record["window"]["position"],
                "confidence": (record.get("recommendation") or {}).get("confidence"), "inputs": record["inputs"],
                "trigger": record["trigger"]}
        if status == 200:
            self.moves += 1
            moved = {**data, "result": reply.get("result")}
            self._last_move = {**moved, "at": iso_at(self._clock.time())}
            log.info("automation %s moved %s to %s %% (%s)", self.spec.automation_id, self.spec.window,
                     move.position, move.cmd_id)
            return [Event("automation_moved", moved)]
        message = (f"moving {self.spec.window} to {move.position} % failed: {reply.get('error')} "
                   f"{reply.get('message', '')}").strip()
        log.warning("automation %s: %s (%s)", self.spec.automation_id, message, move.cmd_id)
        return [Alert("AUTOMATION_COMMAND_FAILED", message, {"cmd_id": move.cmd_id, "http_status": status})]

    def forget(self, move: Move) -> None:
        """The move's command came back (or never went): its id is no longer one in flight."""
        self._own_commands.discard(move.cmd_id)

    # -- what it says

    def _announce(self, record: dict[str, Any]) -> list[Effect]:
        """An ``automation_recommendation`` when the decision changed (not every interval)."""
        key = (record.get("action"), record.get("position"), record.get("mode"))
        if key == self._published:
            return []
        self._published = key
        recommendation = record.get("recommendation") or {}
        return [Event("automation_recommendation", {
            "automation": self.spec.automation_id, "action": record.get("action"), "position": record.get("position"),
            "confidence": recommendation.get("confidence"), "model_position": recommendation.get("position"),
            "model": recommendation.get("model"), "mode": record.get("mode"), "reason": record.get("reason"),
            **({"held_until": record["held_until"]} if record.get("held_until") else {}),
            "inputs": record["inputs"], "trigger": record["trigger"]})]

    def _set_status(self, status: str, reason: str | None) -> None:
        changed = (self._status, self._reason) != (status, reason)
        self._status, self._reason = status, reason
        if changed and status == WAITING:
            log.info("automation %s: %s", self.spec.automation_id, reason)

    def stopped(self) -> None:
        self._status = STOPPED

    @property
    def paused(self) -> bool:
        return self._status == PAUSED

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows about this automation."""
        return {"status": self._status, "reason": self._reason, "window": self.spec.window,
                "evaluations": self.evaluations, "moves": self.moves, "last": self._last,
                "last_move": self._last_move, "manual": self._manual}
