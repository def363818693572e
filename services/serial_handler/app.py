"""The serial handler's REST API (docs/rest-api.md): routes only; ``SerialHandler`` does the work."""
from __future__ import annotations

from flask import Flask

from shared.config import Settings
from shared.handler_api import command_body, handler_app
from shared.web import health_response, json_response

from .handler import SerialHandler


def create_app(settings: Settings, handler: SerialHandler | None = None) -> Flask:
    """The Flask app. Without ``handler`` one is built from ``settings`` and started (its links
    open their ports); a handler passed in is used as it is (the caller starts and stops it)."""
    app, handler = handler_app(__name__, "serial_handler", settings, handler, SerialHandler)

    @app.get("/health")
    def health():
        return health_response(handler.health_checks(), service="serial_handler", instance_id=settings.instance_id,
                               boards={b: link.state for b, link in handler.links.items()})

    @app.get("/boards")
    def boards():
        return json_response({"boards": handler.boards()})

    @app.get("/boards/<board_id>")
    def board(board_id: str):
        return json_response(handler.board(board_id))

    @app.post("/boards/<board_id>/cmd")
    def board_cmd(board_id: str):
        return json_response(handler.board_command(board_id, command_body()))

    return app
