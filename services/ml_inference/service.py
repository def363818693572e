"""``MlInference``: the service's domain object (no Flask). Owns the ``Recommender`` (the model),
the ``Automations`` (modes, decisions, switch devices), the event stream, the error log and the
metrics; ``app.py`` only translates HTTP to these methods.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from shared.commands import REJECTED, Command, CommandError
from shared.config import Settings
from shared.devices import is_number
from shared.error_log import ErrorLog
from shared.errors import DomainError, InvalidRequest, Unavailable
from shared.metrics import Metrics
from shared.sse import EventPublisher

from .automations import SERVICE, Automations
from .inputs import InvalidInput, WindowInputs, parse_batch, parse_inputs
from .learner import Learner
from .learning_metrics import LearningMetrics
from .policy import ManualCommand, WindowFacts, decide
from .recommender import ModelUnavailable, Recommendation, Recommender
from .versions import REJECTED as REJECTED_VERSION
from .versions import ModelVersion, UnknownVersion

UNKNOWN_VERSION = "UNKNOWN_VERSION"
"""A model version ml_inference does not have (the code of REST's activate too)."""

log = logging.getLogger(__name__)


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest("INVALID_VALUE", f"{field}: {message}" if field else message, field=field)


class MlInference:
    def __init__(self, settings: Settings, publisher: EventPublisher | None = None) -> None:
        self.settings = settings
        self.events = publisher or EventPublisher()
        self.errors = ErrorLog(SERVICE)
        self.metrics = Metrics(SERVICE)
        self.recommender = Recommender(settings.ml, on_problem=self._problem)
        self._predictions = self.metrics.counter("predictions", "Inputs the model was asked about", ("endpoint",))
        self._inference = self.metrics.histogram(
            "inference_seconds", "Encoding and forward pass of one request",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1))
        self._decisions = self.metrics.counter("automation_decisions", "Automation decisions", ("automation", "action"))
        self.metrics.gauge_function("model_ready", "1 when a model is loaded", lambda: float(self.recommender.ready))
        self.learner = Learner(settings.data_dir, settings.ml.model_path, self.recommender,
                               train_after=settings.ml.train_after, on_trained=self._trained,
                               on_synced=lambda: self.automations.publish_all())
        self.learning_metrics = LearningMetrics(self.metrics, self.learner)
        self.automations = Automations(settings, on_state=self._publish_state, model_facts=self._model_facts,
                                       use_model=self._use_model)

    def start(self) -> MlInference:
        self.recommender.start()
        self.learner.start()
        return self

    def stop(self) -> None:
        self.learner.stop()
        self.events.close()

    def health_checks(self) -> dict[str, tuple[bool, str]]:
        return {"model": self.recommender.health()}

    # -- the handler API (shared.handler_api): the automations' switch devices

    def sensors(self) -> list[dict[str, Any]]:
        return self.automations.sensors()

    def view(self, device_id: str) -> dict[str, Any]:
        return self.automations.device_view(device_id)

    def fresh_view(self, device_id: str) -> dict[str, Any]:
        return self.view(device_id)  # nothing to ask a device for: a switch is always current

    def command(self, device_id: str, command: Command) -> dict[str, Any]:
        return self.automations.command(device_id, command.values, command.cmd_id)  # instant: no timeout to honour

    # -- the model

    def predict(self, body: Any) -> dict[str, Any]:
        """One input object -> one recommendation; a list -> ``predictions`` in the same order."""
        try:
            batch, is_batch = parse_batch(body)
        except InvalidInput as exc:
            raise _invalid(exc.field, exc.message) from None
        results, elapsed_ms = self._predict(batch, "predict")
        if not is_batch:
            return {**results[0].to_dict(), "inference_ms": round(elapsed_ms, 3)}
        return {"predictions": [{"position": r.to_dict()["position"], "confidence": r.to_dict()["confidence"]}
                                for r in results],
                "count": len(results), "model": results[0].model, "inference_ms": round(elapsed_ms, 3)}

    def _predict(self, batch: list[WindowInputs], endpoint: str) -> tuple[list[Recommendation], float]:
        try:
            results, elapsed_ms = self.recommender.predict(batch)
        except ModelUnavailable as exc:
            raise Unavailable("MODEL_UNAVAILABLE", f"No model to ask: {exc.reason}") from None
        self._predictions.labels(endpoint).inc(len(batch))
        self._inference.observe(elapsed_ms / 1000.0)
        return results, elapsed_ms

    def reload(self) -> dict[str, Any]:
        """Read the model file again (after replacing it); the answer is ``GET /model``."""
        self.recommender.load()
        return self.recommender.info()

    # -- the automations

    def evaluate(self, automation_id: str, body: Any) -> dict[str, Any]:
        """The window automation's question: given these facts, what should the window do?

        Body: ``{"inputs": {...}, "window": {"position", "moving", "online"}, "manual": {"at",
        "cmd_id"} | null}``. The window's position is the model's ``position`` input unless the
        inputs name one."""
        automation = self.automations.get(automation_id)
        if not isinstance(body, dict):
            raise _invalid("", "the body must be a JSON object with inputs, window and manual")
        window = _window_facts(body.get("window"))
        raw_inputs = body.get("inputs")
        if isinstance(raw_inputs, dict) and raw_inputs.get("position") is None and window.position is not None:
            raw_inputs = {**raw_inputs, "position": window.position}
        try:
            inputs = parse_inputs(raw_inputs, "inputs")
        except InvalidInput as exc:
            raise _invalid(exc.field, exc.message) from None
        manual = _manual_command(body.get("manual"))
        [recommendation], elapsed_ms = self._predict([inputs], "evaluate")
        decision = decide(automation.spec, automation.mode, recommendation, window, manual, automation.resumed_at,
                          self.settings.ml.confidence_threshold, time.time())
        automation.record(decision, recommendation, inputs)
        self.learning_metrics.predicted(automation.spec.window, recommendation.confidence)
        self._decisions.labels(automation_id, decision.action).inc()
        self.automations.publish(automation)
        return {"automation": automation_id, "mode": automation.mode, **decision.to_dict(),
                "recommendation": recommendation.to_dict(), "inference_ms": round(elapsed_ms, 3)}

    # -- learning (learner.py)

    def model_info(self) -> dict[str, Any]:
        """``GET /model``: the model in use, its version's validation and calibration, the learning."""
        return {**self.recommender.info(), "learning": self.learner.info()}

    def correct(self, body: Any) -> dict[str, Any]:
        """``POST /corrections``: a person's command as a sample (docs/automation.md, "Learning")."""
        if not isinstance(body, dict):
            raise _invalid("", "the body must be a JSON object with window (or automation), position and inputs")
        automation = None
        if body.get("automation") is not None:
            automation = self.automations.get(str(body["automation"]))
            if body.get("window") not in (None, automation.spec.window):
                raise _invalid("window", f"automation {automation.spec.automation_id} moves "
                                         f"{automation.spec.window}, not {body.get('window')}")
        result = self.learner.correct(body, automation)
        window = body.get("window") or (automation.spec.window if automation else "?")
        self.learning_metrics.corrected(str(window), result["stored"])
        return result

    def _model_facts(self) -> dict[str, Any]:
        """The active version, its validation error and the versions to pick from, for the
        automations' state (so on MQTT, and Home Assistant's select). Empty before the first
        model is recorded."""
        versions = self.learner.versions
        active = versions.active()
        if active is None:
            return {}
        error = active.validation.get("corrections_mae")
        return {"model": active.version, "model_error": active.validation.get("rule_mae") if error is None else error,
                "models": versions.choices()}

    def activate_model(self, version: str) -> ModelVersion:
        """``POST /models/<version>/activate``: any version, a rejected one too (a person may know
        better); every automation's state then names it."""
        activated = self.learner.activate(version)
        self.automations.publish_all()
        return activated

    def _use_model(self, label: str) -> None:
        """A ``model`` command to an automation's switch (MQTT, Home Assistant): a version that
        passed its checks, by full name or ``<sha12>``. A rejected one is refused with its reason
        (the select never offers it); REST's activate is the deliberate way to use one anyway."""
        try:
            version = self.learner.versions.find(label)
        except UnknownVersion:
            raise CommandError(UNKNOWN_VERSION, f"No model version {label!r} (GET /models lists them).",
                               status=404, known=self.learner.versions.choices()) from None
        if version.status == REJECTED_VERSION:
            raise CommandError(REJECTED, f"model version {version.version} was rejected when it was trained "
                               f"({version.reason}); POST /models/{version.version}/activate on ml_inference "
                               "uses it anyway", version=version.version, reason=version.reason)
        try:
            self.activate_model(version.version)
        except DomainError as exc:  # MODEL_INVALID: the file fails its checks; the active model stays
            raise CommandError(exc.code, exc.message, status=409, **exc.extra) from None
        log.info("model version %s activated by a command", version.version)

    def _trained(self, version: ModelVersion) -> None:
        if version.training_s is not None:
            self.learning_metrics.training.observe(version.training_s)
        self.events.publish("model", version.to_dict())
        self.automations.publish_all()  # a new active version, or a new one to pick from

    # -- events

    def _publish_state(self, device_id: str, state: dict[str, Any]) -> None:
        self.events.publish("state", {"device_id": device_id, "state": state})

    def _problem(self, code: str, message: str) -> None:
        record = self.errors.add(code, message, severity="error")
        self.events.publish("error", dict(record))


def _window_facts(data: Any) -> WindowFacts:
    if data is None:
        return WindowFacts()
    if not isinstance(data, dict):
        raise _invalid("window", "must be an object like {\"position\": 40, \"moving\": false}")
    position = data.get("position")
    if position is not None and (not is_number(position) or not 0 <= position <= 100):
        raise _invalid("window.position", f"must be a number 0..100 or null, got {position!r}")
    for flag in ("moving", "online"):
        if flag in data and not isinstance(data[flag], bool):
            raise _invalid(f"window.{flag}", f"must be true or false, got {data[flag]!r}")
    return WindowFacts(position=None if position is None else float(position), moving=data.get("moving", False),
                       online=data.get("online", True))


def _manual_command(data: Any) -> ManualCommand | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not is_number(data.get("at")):
        raise _invalid("manual", "must be null or an object like {\"at\": <epoch seconds>, \"cmd_id\": \"...\"}")
    cmd_id = data.get("cmd_id")
    return ManualCommand(at=float(data["at"]), cmd_id=None if cmd_id is None else str(cmd_id))
