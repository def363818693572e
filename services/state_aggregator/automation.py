"""Window automations, run by the aggregator: watch the inputs, ask ml_inference, move the window.

A ``WindowAutomation`` decides nothing itself. It gathers the facts the aggregator holds — the
inputs' latest states, where the window is, the last command a person gave the window — asks
ml_inference (``POST /automation/<id>/evaluate``, where the whole policy lives: limits,
min_change, confidence threshold, mode, manual hold), and carries out a ``move`` through the
aggregator's normal command routing, with the id ``auto-<automation>-<n>``, so the board
acknowledges it like any MQTT command. See docs/automation.md.

* Push, not poll: every event the aggregator publishes passes ``on_event``; a change of an
  input schedules an evaluation ``debounce`` seconds later (the readings of one sensor line
  arrive as several events within a millisecond: one evaluation for all of them). Besides, it
  evaluates every ``interval`` seconds.
* Never fight a user: every command to the window that the automation did not send itself
  (MQTT, REST, a group command) is reported to ml_inference as the last manual command, and the
  policy holds automatic moves off for ``manual_hold`` seconds. A person's command that arrives
  while an evaluation is under way cancels the move that evaluation would make. A command to
  the automation's own switch re-evaluates at once (switching it on ends a hold).
* ml_inference down or without a model: the automation pauses (``/health`` says why, an
  ``error`` event ``AUTOMATION_PAUSED`` is published once) and retries every few seconds; it
  never raises into the aggregator.

Events on the aggregator's stream (about the window device, so the bridge carries them to
``devices/<window>/events``): ``automation_recommendation`` when the decision changes,
``automation_moved`` when the board acknowledged a move, ``automation_resumed`` after a pause.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from shared.commands import Command, CommandError, bounded_id
from shared.config import AutomationSpec, DeviceSpec
from shared.sse import now_iso
from shared.web import ErrorLog

from .cache import TtlCache
from .handlers import HandlerClient, HandlerReplyError, HandlerUnavailable
from .registry import DeviceRegistry
from .routing import CommandRouter

log = logging.getLogger(__name__)

SOURCE = "state_aggregator"
ML_SERVICE = "ml_inference"
DEBOUNCE_S = 0.02
RETRY_S = 5.0
"""While paused, ml_inference is asked again this often (or at the interval, if that is shorter)."""
EVALUATE_TIMEOUT_S = 3.0
# sensor role -> the state property that carries its reading
INPUT_PROPERTY = {"temperature": "temperature", "humidity": "humidity", "outdoor_temperature": "temperature",
                  "motion": "motion", "sound_level": "sound_level"}
REQUIRED_INPUTS = ("temperature", "humidity")

STARTING, RUNNING, WAITING, PAUSED, STOPPED = "starting", "running", "waiting", "paused", "stopped"


class WindowAutomation:
    """One automation: its own thread, woken by input changes, its interval, or a stop."""

    def __init__(self, spec: AutomationSpec, cache: TtlCache, registry: DeviceRegistry, router: CommandRouter,
                 ml: HandlerClient | None, publish: Callable[[str, dict[str, Any]], Any], error_log: ErrorLog,
                 debounce: float = DEBOUNCE_S, retry: float = RETRY_S) -> None:
        self.spec = spec
        self._cache, self._registry, self._router, self._ml = cache, registry, router, ml
        self._publish, self._error_log = publish, error_log
        self._debounce, self._retry = debounce, min(retry, spec.interval)
        self._inputs = frozenset(spec.sensors.values())
        # Its own devices (a switch whose source is this automation): a command to one re-evaluates.
        self._switches = frozenset(d.device_id for d in registry.specs() if d.automation == spec.automation_id)
        self._cond = threading.Condition()
        self._due: float | None = None  # monotonic time of the next evaluation
        self._trigger_reason = "start"
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._own_commands: set[str] = set()
        self._manual: dict[str, Any] | None = None  # {"at": epoch, "cmd_id"}
        self._status, self._reason = STARTING, None
        self._last: dict[str, Any] | None = None
        self._last_move: dict[str, Any] | None = None
        self._published: tuple[Any, ...] | None = None
        self.evaluations = 0
        self.moves = 0
        self._sent = 0

    # -- lifecycle

    def start(self) -> WindowAutomation:
        if self._thread is None:
            self._schedule("start", self._debounce)
            self._thread = threading.Thread(target=self._run, name=f"automation {self.spec.automation_id}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._status = STOPPED

    # -- what the aggregator tells us (must be quick: called on its event threads)

    def on_event(self, kind: str, data: Mapping[str, Any]) -> None:
        device_id = data.get("device_id")
        if device_id in self._inputs and kind in ("state", "availability"):
            self._schedule(f"{device_id} changed", self._debounce)
        elif device_id == self.spec.window and kind == "state":
            state = data.get("state")
            if isinstance(state, Mapping) and state.get("moving") is False:
                self._schedule(f"{device_id} stopped moving", self._debounce)
        elif device_id == self.spec.window and kind == "availability" and data.get("online"):
            self._schedule(f"{device_id} online", self._debounce)

    def on_command(self, spec: DeviceSpec, request: Command, cmd_id: str, status: int) -> None:
        """A command went to a device. One for the window that is not ours is a person's (whatever
        its outcome: a move that timed out may still have happened); one that flipped our switch
        changes what the policy says (switching on also ends a hold)."""
        if spec.device_id in self._switches and status == 200:
            self._schedule(f"{spec.device_id} commanded", 0.0)
            return
        if spec.device_id != self.spec.window:
            return
        with self._lock:
            if cmd_id in self._own_commands:
                return
            self._manual = {"at": time.time(), "cmd_id": cmd_id}
        log.info("automation %s: %s was commanded by hand (%s); automatic moves hold off for %g s",
                 self.spec.automation_id, spec.device_id, cmd_id, self.spec.manual_hold)
        self._schedule(f"manual command {cmd_id}", self._debounce)
        self._report_correction(request)

    def _report_correction(self, request: Command) -> None:
        """A person chose a position: tell ml_inference, which decides whether it counts as a
        correction and learns from it (docs/automation.md, "Learning"). In a thread of its own:
        this runs on the aggregator's command path and must not wait for ml_inference."""
        position = request.values.get("position")
        if self._ml is None or isinstance(position, bool) or not isinstance(position, (int, float)):
            return
        body = {"automation": self.spec.automation_id, "window": self.spec.window, "position": position,
                "at": request.received, "source": "aggregator"}
        ml = self._ml

        def post() -> None:
            try:
                ml.post("/corrections", body, timeout=EVALUATE_TIMEOUT_S)
            except (HandlerUnavailable, HandlerReplyError) as exc:
                log.info("automation %s: correction not reported to %s (%s)", self.spec.automation_id, ML_SERVICE,
                         exc)

        threading.Thread(target=post, name=f"correction {self.spec.automation_id}", daemon=True).start()

    def on_service(self, service: str) -> None:
        """ml_inference went down or came back: find out now rather than at the next interval."""
        if service == ML_SERVICE:
            self._schedule(f"{service} changed", 0.0)

    # -- the loop

    def _schedule(self, reason: str, delay: float) -> None:
        with self._cond:
            due = time.monotonic() + delay
            if self._due is None or due < self._due:
                self._due, self._trigger_reason = due, reason
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (self._due is None or self._due > time.monotonic()):
                    self._cond.wait(None if self._due is None else max(0.0, self._due - time.monotonic()))
                if self._stopping:
                    return
                trigger, self._due = self._trigger_reason, None
            try:
                self._evaluate(trigger)
            except Exception:  # noqa: BLE001 - an automation must never take the aggregator down
                log.exception("automation %s: evaluation failed", self.spec.automation_id)
            period = self._retry if self._status == PAUSED else self.spec.interval
            self._schedule("interval", period)

    def _evaluate(self, trigger: str) -> None:
        facts = self._facts()
        if isinstance(facts, str):
            self._set_status(WAITING, facts)
            return
        if self._ml is None:
            self._pause(f"{ML_SERVICE} is not a configured service")
            return
        started = time.time()
        try:
            answer = self._ml.post(f"/automation/{self.spec.automation_id}/evaluate", facts,
                                   timeout=EVALUATE_TIMEOUT_S)
        except HandlerUnavailable as exc:
            self._pause(f"{ML_SERVICE}: {exc.reason}")
            return
        except HandlerReplyError as exc:
            self._pause(f"{ML_SERVICE} answered HTTP {exc.status} {exc.body.get('error', '')}: "
                        f"{exc.body.get('message', '')}".strip())
            return
        self.evaluations += 1
        self._resume()
        record = {**answer, "inputs": facts["inputs"], "window": facts["window"], "trigger": trigger,
                  "evaluated_at": now_iso()}
        with self._lock:
            self._last = record
        self._announce(record)
        if answer.get("action") == "move":
            self._move(record, started)

    def _facts(self) -> dict[str, Any] | str:
        """The evaluation request, or why there is nothing to evaluate yet."""
        inputs: dict[str, Any] = {}
        for role, device_id in self.spec.sensors.items():
            value = self._reading(device_id, INPUT_PROPERTY.get(role, role))
            if value is None and role in REQUIRED_INPUTS:
                online = self._online(device_id)
                return f"waiting for {device_id} ({'no reading yet' if online else 'offline'})"
            if value is not None:
                inputs[role] = value
        entry = self._cache.peek(self.spec.window)
        state = entry.state if entry is not None else {}
        position = state.get("position")
        window = {"position": position if isinstance(position, (int, float)) and not isinstance(position, bool)
                  else None, "moving": state.get("moving") is True, "online": self._online(self.spec.window)}
        with self._lock:
            manual = dict(self._manual) if self._manual else None
        return {"inputs": inputs, "window": window, "manual": manual}

    def _online(self, device_id: str) -> bool:
        try:
            return self._registry.availability(device_id).online
        except KeyError:
            return False

    def _reading(self, device_id: str, prop: str) -> Any:
        """The device's current reading, or None when it is offline or has none (a stale value
        from a device that went away is not an input)."""
        if not self._online(device_id):
            return None
        entry = self._cache.peek(device_id)
        return None if entry is None else entry.state.get(prop)

    def _move(self, record: dict[str, Any], evaluated_at: float) -> None:
        window, position = self.spec.window, record["position"]
        with self._lock:
            manual = self._manual
            if manual is not None and manual["at"] >= evaluated_at:
                log.info("automation %s: not moving %s, a person commanded it meanwhile (%s)",
                         self.spec.automation_id, window, manual["cmd_id"])
                return
            self._sent += 1
            cmd_id = bounded_id(f"auto-{self.spec.automation_id}-{self._sent}")
            self._own_commands.add(cmd_id)
        body = {"id": cmd_id, "values": {"position": position}}
        try:
            status, reply = self._router.send(window, body)
        except CommandError as exc:  # refused before any service was asked (the window is disabled...)
            status, reply = exc.status, exc.to_dict()
        finally:
            with self._lock:
                self._own_commands.discard(cmd_id)
        data = {"automation": self.spec.automation_id, "cmd_id": cmd_id, "position": position,
                "from": record["window"]["position"],
                "confidence": record.get("recommendation", {}).get("confidence"), "inputs": record["inputs"],
                "trigger": record["trigger"]}
        if status == 200:
            self.moves += 1
            moved = {**data, "result": reply.get("result")}
            with self._lock:
                self._last_move = {**moved, "at": now_iso()}
            log.info("automation %s moved %s to %s %% (%s)", self.spec.automation_id, window, position, cmd_id)
            self._event("automation_moved", moved)
            return
        message = f"moving {window} to {position} % failed: {reply.get('error')} {reply.get('message', '')}".strip()
        log.warning("automation %s: %s (%s)", self.spec.automation_id, message, cmd_id)
        self._error("AUTOMATION_COMMAND_FAILED", message, cmd_id=cmd_id, http_status=status)

    # -- reporting

    def _announce(self, record: dict[str, Any]) -> None:
        """An ``automation_recommendation`` event when the decision changed (not every interval)."""
        key = (record.get("action"), record.get("position"), record.get("mode"))
        if key == self._published:
            return
        self._published = key
        recommendation = record.get("recommendation") or {}
        self._event("automation_recommendation", {
            "automation": self.spec.automation_id, "action": record.get("action"), "position": record.get("position"),
            "confidence": recommendation.get("confidence"), "model_position": recommendation.get("position"),
            "model": recommendation.get("model"), "mode": record.get("mode"), "reason": record.get("reason"),
            **({"held_until": record["held_until"]} if record.get("held_until") else {}),
            "inputs": record["inputs"], "trigger": record["trigger"]})

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self._publish("event", {"device_id": self.spec.window, "event": name, "data": data, "source": SOURCE})

    def _error(self, code: str, message: str, severity: str = "warning", **extra: Any) -> None:
        record = self._error_log.add(code, message, severity=severity, device_id=self.spec.window,
                                     automation=self.spec.automation_id, **extra)
        self._publish("error", dict(record))

    def _set_status(self, status: str, reason: str | None) -> None:
        with self._lock:
            changed = (self._status, self._reason) != (status, reason)
            self._status, self._reason = status, reason
        if changed and status == WAITING:
            log.info("automation %s: %s", self.spec.automation_id, reason)

    def _pause(self, reason: str) -> None:
        with self._lock:
            first = self._status != PAUSED
        self._set_status(PAUSED, reason)
        if first:
            log.warning("automation %s paused: %s", self.spec.automation_id, reason)
            self._error("AUTOMATION_PAUSED", f"automation {self.spec.automation_id} paused: {reason}")

    def _resume(self) -> None:
        with self._lock:
            was_paused = self._status == PAUSED
        self._set_status(RUNNING, None)
        if was_paused:
            log.info("automation %s resumed", self.spec.automation_id)
            self._event("automation_resumed", {"automation": self.spec.automation_id})

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows about this automation."""
        with self._lock:
            return {"status": self._status, "reason": self._reason, "window": self.spec.window,
                    "evaluations": self.evaluations, "moves": self.moves, "last": self._last,
                    "last_move": self._last_move, "manual": self._manual}


class WindowAutomations:
    """Every automation of the instance; the aggregator's one handle on them."""

    def __init__(self, automations: list[WindowAutomation]) -> None:
        self.by_id = {a.spec.automation_id: a for a in automations}

    @classmethod
    def build(cls, specs: tuple[AutomationSpec, ...], cache: TtlCache, registry: DeviceRegistry,
              router: CommandRouter, ml: HandlerClient | None, publish: Callable[[str, dict[str, Any]], Any],
              error_log: ErrorLog, **options: Any) -> WindowAutomations:
        return cls([WindowAutomation(spec, cache, registry, router, ml, publish, error_log, **options)
                    for spec in specs])

    def start(self) -> None:
        for automation in self.by_id.values():
            automation.start()

    def stop(self) -> None:
        for automation in self.by_id.values():
            automation.stop()

    def on_event(self, kind: str, data: Mapping[str, Any]) -> None:
        for automation in self.by_id.values():
            automation.on_event(kind, data)

    def on_command(self, spec: DeviceSpec, request: Command, cmd_id: str, status: int) -> None:
        for automation in self.by_id.values():
            automation.on_command(spec, request, cmd_id, status)

    def on_service(self, service: str) -> None:
        for automation in self.by_id.values():
            automation.on_service(service)

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {automation_id: a.status() for automation_id, a in self.by_id.items()}

    @property
    def paused(self) -> list[str]:
        return [i for i, a in self.by_id.items() if a.status()["status"] == PAUSED]
