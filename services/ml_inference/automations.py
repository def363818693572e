"""The window automations as ml_inference keeps them: each one's mode and latest decision, and
the devices whose source is an automation (a ``switch``: on = auto, off = suggest only).

The mode a person chose survives restarts (``DATA_DIR/automations.json``); the instance
config's ``mode`` is the starting point, and ``off`` there cannot be switched on from outside.
Turning the switch on also ends a manual hold (policy.py) at once.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.commands import OFFLINE, REJECTED, UNKNOWN_DEVICE, UNSUPPORTED, CommandError
from shared.config import AutomationSpec, DeviceSpec, Settings
from shared.device_table import device_view, same_state
from shared.devices import InvalidCommand, normalize_command
from shared.errors import NotFound
from shared.sse import now_iso

from .inputs import WindowInputs
from .policy import HOLD, MOVE, OFF, Decision
from .recommender import Recommendation

log = logging.getLogger(__name__)

SERVICE = "ml_inference"
AUTO, SUGGEST = "auto", "suggest"
STATE_FILE = "automations.json"
SOURCE_FIELDS = ("automation",)
"""What a switch's view says of where it comes from (shared/device_table.py)."""


class Automation:
    """One automation's mode and what it last decided. Thread-safe."""

    def __init__(self, spec: AutomationSpec, mode: str, resumed_at: float = 0.0,
                 model_facts: Callable[[], dict[str, Any]] = dict) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._mode = OFF if spec.mode == OFF else mode
        self._resumed_at = resumed_at
        self._last: dict[str, Any] = {}
        self.evaluations = 0
        # What a person's command is compared with (corrections.why_not_a_correction).
        self.moment: tuple[float, str, WindowInputs] | None = None  # (evaluated at, action, inputs)
        self.last_move_at = 0.0
        # The active model version, its validation error and the versions to pick from (the
        # service's: the model is one for every automation).
        self.model_facts = model_facts

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def resumed_at(self) -> float:
        return self._resumed_at

    def check_switchable(self) -> None:
        if self.spec.mode == OFF:
            raise CommandError(REJECTED, f"automation {self.spec.automation_id} is off in the instance config "
                               "(config.window_automations[].mode); set it to auto or suggest to use its switch")

    def switch(self, on: bool) -> None:
        """On: automatic moves (and any manual hold ends now); off: suggestions only."""
        self.check_switchable()
        with self._lock:
            self._mode = AUTO if on else SUGGEST
            if on:
                self._resumed_at = time.time()

    def record(self, decision: Decision, recommendation: Recommendation, inputs: WindowInputs) -> None:
        with self._lock:
            self.evaluations += 1
            now = time.time()
            if decision.action != HOLD:  # a hold is the answer to the command being judged, not the situation
                self.moment = (now, decision.action, inputs)
            if decision.action == MOVE:
                self.last_move_at = now
            self._last = {"action": decision.action, "position": decision.position,
                          "model_position": round(recommendation.position, 1),
                          "confidence": round(recommendation.confidence, 3), "reason": decision.reason,
                          "model": recommendation.model, "inputs": inputs.to_dict(), "evaluated_at": now_iso(),
                          **({"held_until": decision.to_dict()["held_until"]} if decision.held_until else {})}

    def switch_state(self) -> dict[str, Any]:
        """The state of the automation's switch device: on/off, the mode, the latest decision
        (``recommended_by``: the version that made it) and the active model (``model``,
        ``model_error``, ``models``)."""
        facts = self.model_facts()
        with self._lock:
            last = {k: v for k, v in self._last.items() if k not in ("inputs", "evaluated_at", "model")}
            made_by = {"recommended_by": self._last["model"]} if "model" in self._last else {}
            return {"state": "on" if self._mode == AUTO else "off", "mode": self._mode, **last, **made_by, **facts}

    def view(self) -> dict[str, Any]:
        with self._lock:
            last = dict(self._last)
        return {"automation_id": self.spec.automation_id, "name": self.spec.name, "window": self.spec.window,
                "sensors": dict(self.spec.sensors), "mode": self._mode, "configured_mode": self.spec.mode,
                "min_change": self.spec.min_change, "min_position": self.spec.min_position,
                "max_position": self.spec.max_position, "interval": self.spec.interval,
                "manual_hold": self.spec.manual_hold, "evaluations": self.evaluations, "last": last or None,
                **self.model_facts()}


class Automations:
    """Every automation of the instance, and the devices they provide (the handler API's devices)."""

    def __init__(self, settings: Settings, on_state: Callable[[str, dict[str, Any]], None],
                 model_facts: Callable[[], dict[str, Any]] = dict,
                 use_model: Callable[[str], None] | None = None) -> None:
        """``model_facts``: the active model for the switches' state; ``use_model``: activates a
        version for a ``model`` command (CommandError when it cannot)."""
        self._path = settings.data_dir / STATE_FILE
        self._use_model = use_model
        saved = _read_saved(self._path)
        self.by_id: dict[str, Automation] = {}
        for spec in settings.automations:
            entry = saved.get(spec.automation_id, {})
            mode = entry.get("mode") if entry.get("mode") in (AUTO, SUGGEST) else spec.mode
            resumed = entry.get("resumed_at") if isinstance(entry.get("resumed_at"), (int, float)) else 0.0
            self.by_id[spec.automation_id] = Automation(spec, mode, float(resumed), model_facts)
        self.devices: dict[str, DeviceSpec] = {d.device_id: d for d in settings.devices_of(SERVICE)}
        self._on_state = on_state
        self._seen: dict[str, float] = {}
        self._published: dict[str, dict[str, Any]] = {}
        self._save_lock = threading.Lock()

    def get(self, automation_id: str) -> Automation:
        automation = self.by_id.get(automation_id)
        if automation is None:
            raise NotFound("UNKNOWN_AUTOMATION", f"No automation {automation_id!r} in this instance.",
                           known=list(self.by_id))
        return automation

    def views(self) -> list[dict[str, Any]]:
        return [a.view() for a in self.by_id.values()]

    # -- the devices

    def device(self, device_id: str) -> DeviceSpec:
        spec = self.devices.get(device_id)
        if spec is None:
            raise CommandError(UNKNOWN_DEVICE, f"No device {device_id!r} on ml_inference.", known=list(self.devices))
        return spec

    def device_view(self, device_id: str) -> dict[str, Any]:
        spec = self.device(device_id)
        if not spec.enabled:
            return device_view(spec, SOURCE_FIELDS, online=False, state={}, last_seen=None,
                               reason="disabled in the instance config")
        if spec.type != "switch":
            return device_view(spec, SOURCE_FIELDS, online=False, state={}, last_seen=None,
                               reason=f"an automation provides switch devices only, not {spec.type}")
        return device_view(spec, SOURCE_FIELDS, online=True, state=self.get(spec.automation or "").switch_state(),
                           last_seen=self._seen.get(device_id), reason=None)

    def sensors(self) -> list[dict[str, Any]]:
        return [self.device_view(device_id) for device_id in self.devices]

    def command(self, device_id: str, values: Any, cmd_id: str | None = None) -> dict[str, Any]:
        """A switch command: ``{"state": "on"}`` (automatic moves) or ``"off"`` (suggest only),
        and/or ``{"model": "<version>"}`` (use that model version: a rollback); the envelope
        (``cmd_id``) was read by shared/commands.py."""
        spec = self.device(device_id)
        if spec.type != "switch":
            raise CommandError(UNSUPPORTED, f"{device_id} is a {spec.type} device; an automation only serves "
                               "switch devices")
        if not spec.enabled:
            raise CommandError(OFFLINE, f"{device_id} is disabled in the instance config")
        try:
            normalized = normalize_command("switch", values, automation=True)
        except InvalidCommand as exc:
            raise CommandError(exc.code, exc.message, **exc.extra) from None
        automation = self.get(spec.automation or "")
        if "state" in normalized:
            automation.check_switchable()  # before the model changes: a refused command changes nothing
        if "model" in normalized:
            if self._use_model is None:
                raise CommandError(UNSUPPORTED, "this service has no model versions to choose from")
            self._use_model(normalized["model"])  # publishes every automation's state: the model is theirs
        if "state" in normalized:
            automation.switch(normalized["state"] == "on")
            self._save()
            log.info("automation %s switched %s (mode %s)", automation.spec.automation_id, normalized["state"],
                     automation.mode)
        state = self.publish(automation)
        return {"status": "success", "cmd_id": cmd_id, "result": state}

    def publish_all(self) -> None:
        """Every automation's switches, after something all of them share changed (the model)."""
        for automation in self.by_id.values():
            self.publish(automation)

    def publish(self, automation: Automation) -> dict[str, Any]:
        """Tell the switches of ``automation`` what it is now (a state event when something
        changed, not at every evaluation); returns the switch state."""
        state = automation.switch_state()
        for spec in self.devices.values():
            if spec.automation == automation.spec.automation_id and spec.type == "switch" and spec.enabled:
                self._seen[spec.device_id] = time.time()
                if not same_state(self._published.get(spec.device_id), state):
                    self._published[spec.device_id] = state
                    self._on_state(spec.device_id, state)
        return state

    def _save(self) -> None:
        """The modes people chose, written atomically so a crash leaves the old file or the new."""
        data = {a.spec.automation_id: {"mode": a.mode, "resumed_at": a.resumed_at}
                for a in self.by_id.values() if a.mode != OFF}
        with self._save_lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self._path.name}.", dir=self._path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2)
            os.replace(tmp, self._path)


def _read_saved(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s (%s): automations start in their configured modes", path, exc)
        return {}
    return data if isinstance(data, dict) else {}
