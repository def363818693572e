"""The ML inference service's REST API (docs/rest-api.md): routes only; ``MlInference`` does the work."""
from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from shared import jsonio
from shared.config import Settings
from shared.errors import InvalidRequest
from shared.handler_api import handler_app
from shared.logs import clip
from shared.web import health_response, json_response

from .service import SERVICE, MlInference


def _body() -> Any:
    # Python's JSON reader takes NaN and Infinity: they reach the input checks and are refused there by name.
    try:
        return jsonio.loads_input(request.get_data())
    except ValueError as exc:  # malformed, or nested deeper than any input is
        raise InvalidRequest("INVALID_JSON", f"The request body is not valid JSON ({clip(str(exc), 120)}).") from None


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidRequest("INVALID_VALUE", f"{name}: must be a whole number {low}..{high}, got {raw!r}", field=name)
    return int(raw)


def create_app(settings: Settings, service: MlInference | None = None) -> Flask:
    """The Flask app. Without ``service`` one is built from ``settings`` and started (the model
    loads in the background); a service passed in is used as it is."""
    app, service = handler_app(__name__, SERVICE, settings, service, MlInference)

    @app.get("/health")
    def health() -> Response:
        return health_response(service.health_checks(), service=SERVICE, instance_id=settings.instance_id,
                               model=service.recommender.info().get("model"),
                               automations=len(service.automations.by_id))

    @app.post("/predict")
    def predict() -> Response:
        return json_response(service.predict(_body()))

    @app.get("/model")
    def model() -> Response:
        return json_response(service.model_info())

    @app.get("/models")
    def models() -> Response:
        active = service.learner.versions.active()
        return json_response({"active": active.version if active else None,
                              "versions": [v.to_dict() for v in service.learner.versions.list()]})

    @app.post("/models/<version>/activate")
    def activate(version: str) -> Response:
        return json_response(service.activate_model(version).to_dict())

    @app.post("/train")
    def train() -> Response:
        service.learner.request()
        return json_response({"queued": True, **service.learner.info()}, 202)

    @app.post("/corrections")
    def add_correction() -> Response:
        return json_response(service.correct(_body()))

    @app.get("/corrections")
    def corrections() -> Response:
        offset, limit = _int_arg("offset", 0, 0, 10**9), _int_arg("limit", 100, 1, 1000)
        window = request.args.get("window") or None
        items = service.learner.store.list(offset, limit, window)
        return json_response({"corrections": [c.to_dict() for c in items], "offset": offset, "limit": limit,
                              "total": service.learner.store.count(window),
                              "invalid": dict(service.learner.store.invalid)})

    @app.delete("/corrections")
    def forget() -> Response:
        return json_response({"deleted": service.learner.store.forget(request.args.get("window") or None)})

    @app.post("/model/reload")
    def model_reload() -> Response:
        info = service.reload()
        return json_response(info, 200 if info.get("reason") is None else 503)

    @app.get("/automations")
    def automations() -> Response:
        return json_response({"automations": service.automations.views()})

    @app.get("/automation/<automation_id>")
    def automation(automation_id: str) -> Response:
        return json_response(service.automations.get(automation_id).view())

    @app.post("/automation/<automation_id>/evaluate")
    def evaluate(automation_id: str) -> Response:
        return json_response(service.evaluate(automation_id, _body()))

    return app
