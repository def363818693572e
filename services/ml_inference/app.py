"""The ML inference service's REST API (docs/rest-api.md): routes only; ``MlInference`` does the work."""
from __future__ import annotations

import atexit
from typing import Any

from flask import Flask, Response, request

from shared.commands import CommandError
from shared.config import Settings
from shared.devices import command_values
from shared.web import ApiError, health_response, install_error_handlers, json_response

from .service import SERVICE, MlInference


def _body() -> Any:
    # Python's JSON reader takes NaN and Infinity: they reach the input checks and are refused there by name.
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise ApiError("INVALID_JSON", "The request body is not valid JSON.", 400)
    return body


def create_app(settings: Settings, service: MlInference | None = None) -> Flask:
    """The Flask app. Without ``service`` one is built from ``settings`` and started (the model
    loads in the background); a service passed in is used as it is."""
    if service is None:
        service = MlInference(settings).start()
        atexit.register(service.stop)  # end the event streams on shutdown
    app = Flask(__name__)
    app.extensions[SERVICE] = service
    install_error_handlers(app, service.errors)
    service.metrics.install(app)

    @app.errorhandler(CommandError)
    def _command_error(exc: CommandError) -> Response:
        return json_response({"error": exc.code, "message": exc.message, **exc.extra}, exc.status)

    @app.get("/health")
    def health() -> Response:
        return health_response(service.health_checks(), service=SERVICE, model=service.recommender.info()
                               .get("model"), automations=len(service.automations.by_id))

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

    @app.get("/sensors")
    def sensors() -> Response:
        return json_response({"sensors": service.automations.sensors()})

    @app.get("/sensor/<device_id>")
    @app.get("/sensor/<device_id>/cached")
    def sensor(device_id: str) -> Response:
        # Nothing to ask a device for: an automation's switch is always current.
        return json_response(service.automations.device_view(device_id))

    @app.post("/sensor/<device_id>/cmd")
    def sensor_cmd(device_id: str) -> Response:
        body = _body()
        if not isinstance(body, dict):
            raise ApiError("INVALID_VALUE", "The body must be a JSON object.", 400)
        return json_response(service.automations.command(device_id, command_values(body), body.get("id")))

    @app.get("/errors")
    def errors() -> Response:
        return service.errors.response()

    @app.get("/events")
    def events() -> Response:
        return service.events.flask_response(request.headers.get("Last-Event-ID"))

    return app
