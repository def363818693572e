"""The serial handler's REST API (docs/rest-api.md): routes only; ``SerialHandler`` does the work."""
from __future__ import annotations

import atexit
from typing import Any

from flask import Flask, request

from shared.config import Settings
from shared.devices import command_values
from shared.web import ApiError, health_response, install_error_handlers, json_response

from .commands import INVALID_VALUE, CommandError
from .handler import SerialHandler, UnknownBoard


def create_app(settings: Settings, handler: SerialHandler | None = None) -> Flask:
    """The Flask app. Without ``handler`` one is built from ``settings`` and started (its links
    open their ports); a handler passed in is used as it is (the caller starts and stops it)."""
    if handler is None:
        handler = SerialHandler(settings).start()
        atexit.register(handler.stop)  # end the event streams and close the ports on shutdown
    app = Flask(__name__)
    app.extensions["serial_handler"] = handler
    install_error_handlers(app, handler.errors)
    handler.metrics.install(app)

    @app.errorhandler(CommandError)
    def _command_error(exc: CommandError):
        return json_response({"error": exc.code, "message": exc.message, **exc.extra}, exc.status)

    @app.errorhandler(UnknownBoard)
    def _unknown_board(exc: UnknownBoard):
        return json_response({"error": "UNKNOWN_BOARD", "message": f"No board {exc.args[0]!r}.",
                              "known": list(handler.links)}, 404)

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ApiError(INVALID_VALUE, "The body must be a JSON object.", 400)
        return data

    @app.get("/health")
    def health():
        return health_response(handler.health_checks(), service="serial_handler",
                               boards={b: link.state for b, link in handler.links.items()})

    @app.get("/sensors")
    def sensors():
        return json_response({"sensors": handler.sensors()})

    @app.get("/sensor/<device_id>")
    def sensor(device_id: str):
        if request.args.get("fresh", "").lower() in ("1", "true", "yes"):
            return json_response(handler.fresh_view(device_id))
        return json_response(handler.view(device_id))

    @app.get("/sensor/<device_id>/cached")
    def sensor_cached(device_id: str):
        return json_response(handler.view(device_id))

    @app.post("/sensor/<device_id>/cmd")
    def sensor_cmd(device_id: str):
        data = body()
        return json_response(handler.command(device_id, command_values(data), data.get("id"), data.get("timeout")))

    @app.get("/boards")
    def boards():
        return json_response({"boards": handler.boards()})

    @app.get("/boards/<board_id>")
    def board(board_id: str):
        return json_response(handler.board(board_id))

    @app.post("/boards/<board_id>/cmd")
    def board_cmd(board_id: str):
        return json_response(handler.board_command(board_id, body()))

    @app.get("/errors")
    def errors():
        return handler.errors.response()

    @app.get("/events")
    def events():
        return handler.events.flask_response(request.headers.get("Last-Event-ID"))

    return app
