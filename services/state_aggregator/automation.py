"""Window automations, run by the aggregator: watch the inputs, ask ml_inference, move the window.

Who decides what (docs/automation.md, docs/architecture.md):

* ml_inference's policy decides what a recommendation means for the window (``POST
  /automation/<id>/evaluate``: limits, min_change, confidence threshold, mode, manual hold).
* ``AutomationCore`` (automation_core.py, pure: plain data and a clock) decides everything the
  aggregator decides: when to ask (a changed input after a 20 ms debounce, the interval, the
  retry while paused, the switch commanded, ml_inference back), the facts to ask with, whose
  command a command to the window was (a person's command during an evaluation cancels its
  move), pause and resume, and which events to publish.
* ``WindowAutomation`` here is the thin runner: a thread per automation that feeds the core the
  aggregator's events and commands and a snapshot of the devices, asks ml_inference, sends a
  ``move`` through the aggregator's normal command routing (the id ``auto-<automation>-<n>``, so
  the board acknowledges it like any MQTT command) and publishes what the core says. It never
  raises into the aggregator; ml_inference is asked with a deadline.

Events on the aggregator's stream (about the window device, so the bridge carries them to
``devices/<window>/events``): ``automation_recommendation`` when the decision changes,
``automation_moved`` when the board acknowledged a move, ``automation_resumed`` after a pause;
``error`` events ``AUTOMATION_PAUSED`` (once per pause) and ``AUTOMATION_COMMAND_FAILED``.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from shared.commands import Command, CommandError
from shared.config import AutomationSpec, DeviceSpec
from shared.devices import automation_inputs
from shared.error_log import ErrorLog

from .automation_core import Alert, AutomationCore, Clock, DeviceView, Effect, Move, SystemClock
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
# sensor role -> the state property that carries its reading (the registry's automation inputs)
INPUT_PROPERTY = {role: spec.prop for role, (_, spec) in automation_inputs().items()}
REQUIRED_INPUTS = tuple(role for role, (_, spec) in automation_inputs().items() if spec.required)


class WindowAutomation:
    """One automation: a thread that carries out what its ``AutomationCore`` decides. It feeds the
    core the aggregator's events and commands and a snapshot of the devices, asks ml_inference,
    sends the moves and publishes what the core says; it decides nothing itself."""

    def __init__(self, spec: AutomationSpec, cache: TtlCache, registry: DeviceRegistry, router: CommandRouter,
                 ml: HandlerClient | None, publish: Callable[[str, dict[str, Any]], Any], error_log: ErrorLog,
                 debounce: float = DEBOUNCE_S, retry: float = RETRY_S, clock: Clock | None = None) -> None:
        self.spec = spec
        self._cache, self._registry, self._router, self._ml = cache, registry, router, ml
        self._publish, self._error_log = publish, error_log
        self._clock = clock or SystemClock()
        # Its own devices (a switch whose source is this automation): a command to one re-evaluates.
        switches = frozenset(d.device_id for d in registry.specs() if d.automation == spec.automation_id)
        self._core = AutomationCore(spec, self._clock, INPUT_PROPERTY, REQUIRED_INPUTS, switches,
                                    debounce=debounce, retry=retry)
        self._devices = frozenset((*spec.sensors.values(), spec.window))  # what the snapshot holds
        self._cond = threading.Condition()  # guards the core: every call to it holds this
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> WindowAutomation:
        if self._thread is None:
            self._tell(self._core.start)
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
        with self._cond:
            self._core.stopped()

    # -- what the aggregator tells us (must be quick: called on its event threads)

    def on_event(self, kind: str, data: Mapping[str, Any]) -> None:
        if data.get("device_id") in self._devices:  # most events are about other devices: no lock for them
            self._tell(self._core.on_event, kind, data)

    def on_command(self, spec: DeviceSpec, request: Command, cmd_id: str, status: int) -> None:
        """A command went to a device (the routing's observer): the core tells a person's from ours."""
        self._tell(self._core.on_command, spec.device_id, cmd_id, status)
        if spec.device_id == self.spec.window:
            with self._cond:
                manual = self._core.status()["manual"]
            if manual is not None and manual.get("cmd_id") == cmd_id:  # the core took it as a person's
                self._report_correction(request)

    def _report_correction(self, request: Command) -> None:
        """A person chose a position: tell ml_inference, which decides whether it counts as a
        correction and learns from it (docs/automation.md, "Learning from the person at the
        window"). In a thread of its own: this runs on the command path and must not wait."""
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
            self._tell(self._core.on_ml_changed, f"{service} changed")

    def _tell(self, method: Callable[..., bool], *args: Any) -> None:
        with self._cond:
            if method(*args):  # the next evaluation came earlier: wake the thread
                self._cond.notify_all()

    # -- the loop

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (trigger := self._core.take_trigger()) is None:
                    due = self._core.next_due()
                    self._cond.wait(None if due is None else max(0.0, due - self._clock.monotonic()))
                if self._stopping:
                    return
            try:
                self._round(trigger)
            except Exception:  # noqa: BLE001 - an automation must never take the aggregator down
                log.exception("automation %s: evaluation failed", self.spec.automation_id)
            with self._cond:
                self._core.round_over()

    def _round(self, trigger: str) -> None:
        devices = self._snapshot()
        with self._cond:
            ask = self._core.ask(trigger, devices)
        if ask is None:  # waiting for an input
            return
        if self._ml is None:
            self._carry_out(self._core.unavailable, f"{ML_SERVICE} is not a configured service")
            return
        try:
            answer = self._ml.post(f"/automation/{self.spec.automation_id}/evaluate", ask.facts,
                                   timeout=EVALUATE_TIMEOUT_S)
        except HandlerUnavailable as exc:
            self._carry_out(self._core.unavailable, f"{ML_SERVICE}: {exc.reason}")
            return
        except HandlerReplyError as exc:
            self._carry_out(self._core.unavailable, f"{ML_SERVICE} answered HTTP {exc.status} "
                            f"{exc.body.get('error', '')}: {exc.body.get('message', '')}".strip())
            return
        self._carry_out(self._core.answered, ask, answer)
        with self._cond:
            move = self._core.move()
        if move is not None:
            self._send(move)

    def _snapshot(self) -> dict[str, DeviceView]:
        """The inputs and the window as the aggregator has them now."""
        views = {}
        for device_id in self._devices:
            try:
                online = self._registry.availability(device_id).online
            except KeyError:
                online = False
            entry = self._cache.peek(device_id)
            views[device_id] = DeviceView(online, entry.state if entry is not None else {})
        return views

    def _send(self, move: Move) -> None:
        """The move through the aggregator's routing, like an MQTT command (the board acks it)."""
        try:
            status, reply = self._router.send(self.spec.window, move.body)
        except CommandError as exc:  # refused before any service was asked (the window is disabled...)
            status, reply = exc.status, exc.to_dict()
        except BaseException:
            with self._cond:
                self._core.forget(move)
            raise
        self._carry_out(self._core.moved, move, status, reply)

    def _carry_out(self, method: Callable[..., list[Effect]], *args: Any) -> None:
        """Tell the core, then publish what it says (outside the lock: publishing reaches the
        aggregator's subscribers)."""
        with self._cond:
            effects = method(*args)
        for effect in effects:
            if isinstance(effect, Alert):
                record = self._error_log.add(effect.code, effect.message, severity="warning",
                                             device_id=self.spec.window, automation=self.spec.automation_id,
                                             **effect.extra)
                self._publish("error", dict(record))
            else:
                self._publish("event", {"device_id": self.spec.window, "event": effect.name, "data": effect.data,
                                        "source": SOURCE})

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows about this automation."""
        with self._cond:
            return self._core.status()

    @property
    def paused(self) -> bool:
        with self._cond:
            return self._core.paused


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
        return [i for i, a in self.by_id.items() if a.paused]
