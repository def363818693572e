"""The ML inference service's REST API (docs/rest-api.md): routes only; ``MlInference`` does the work."""
from __future__ import annotations

import atexit
from typing import Any

from flask import Flask, Response, request

from shared import jsonio
from shared.config import Settings
from shared.errors import InvalidRequest
from shared.handler_api import install_handler_api
from shared.logs import clip
from shared.web import (
    health_response,
    install_api_token,
    install_error_handlers,
    install_instance_header,
    install_metrics,
    json_response,
)

from .service import SERVICE, MlInference


def _body() -> Any:
    # Python's JSON reader takes NaN and Infinity: they reach the input checks and are refused there by name.
    try:
        return jsonio.loads_input(request.get_data())
    except ValueError as exc:  # malformed, or nested deeper than any input is
        raise InvalidRequest("INVALID_JSON", f"The request body is not valid JSON ({clip(str(exc), 120)}).") from None


def create_app(settings: Settings, service: MlInference | None = None) -> Flask:
    """The Flask app. Without ``service`` one is built from ``settings`` and started (the model
    loads in the background); a service passed in is used as it is."""
    if service is None:
        service = MlInference(settings).start()
        atexit.register(service.stop)  # end the event streams on shutdown
    app = Flask(__name__)
    app.extensions[SERVICE] = service
    install_error_handlers(app, service.errors)
    install_instance_header(app, settings.instance_id)
    install_api_token(app, settings.api_token)
    install_metrics(app, service.metrics)
    install_handler_api(app, service)

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
        return json_response(service.recommender.info())

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
