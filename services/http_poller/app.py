"""The HTTP poller's REST API (docs/rest-api.md): routes only; ``HttpPoller`` does the work."""
from __future__ import annotations

import atexit
from typing import Any

from flask import Flask, request

from shared.commands import INVALID_VALUE, CommandError
from shared.config import Settings
from shared.devices import command_values
from shared.web import ApiError, install_error_handlers, json_response

from .poller import HttpPoller, UnknownEndpoint


def create_app(settings: Settings, poller: HttpPoller | None = None) -> Flask:
    """The Flask app. Without ``poller`` one is built from ``settings`` and started; a poller
    passed in is used as it is (the caller starts and stops it)."""
    if poller is None:
        poller = HttpPoller(settings).start()
        atexit.register(poller.stop)  # end the event streams and the polling on shutdown
    app = Flask(__name__)
    app.extensions["http_poller"] = poller
    install_error_handlers(app, poller.errors)
    poller.metrics.install(app)

    @app.errorhandler(CommandError)
    def _command_error(exc: CommandError):
        return json_response({"error": exc.code, "message": exc.message, **exc.extra}, exc.status)

    @app.errorhandler(UnknownEndpoint)
    def _unknown_endpoint(exc: UnknownEndpoint):
        return json_response({"error": "UNKNOWN_ENDPOINT", "message": f"No endpoint {exc.args[0]!r}.",
                              "known": list(poller.endpoints)}, 404)

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ApiError(INVALID_VALUE, "The body must be a JSON object.", 400)
        return data

    @app.get("/health")
    def health():
        status, report = poller.health()
        return json_response(report, status)

    @app.get("/sensors")
    def sensors():
        return json_response({"sensors": poller.sensors()})

    @app.get("/sensor/<device_id>")
    def sensor(device_id: str):
        if request.args.get("fresh", "").lower() in ("1", "true", "yes"):
            return json_response(poller.fresh_view(device_id))
        return json_response(poller.view(device_id))

    @app.get("/sensor/<device_id>/cached")
    def sensor_cached(device_id: str):
        return json_response(poller.view(device_id))

    @app.post("/sensor/<device_id>/cmd")
    def sensor_cmd(device_id: str):
        data = body()
        return json_response(poller.command(device_id, command_values(data), data.get("id"), data.get("timeout")))

    @app.get("/endpoints")
    def endpoints():
        return json_response({"endpoints": poller.endpoint_views()})

    @app.get("/endpoints/<endpoint_id>")
    def endpoint(endpoint_id: str):
        return json_response(poller.endpoint_view(endpoint_id))

    @app.get("/errors")
    def errors():
        return poller.errors.response()

    @app.get("/events")
    def events():
        return poller.events.flask_response(request.headers.get("Last-Event-ID"))

    return app
