"""The HTTP poller's REST API (docs/rest-api.md): routes only; ``HttpPoller`` does the work."""
from __future__ import annotations

from flask import Flask

from shared.config import Settings
from shared.handler_api import handler_app
from shared.web import json_response

from .poller import HttpPoller


def create_app(settings: Settings, poller: HttpPoller | None = None) -> Flask:
    """The Flask app. Without ``poller`` one is built from ``settings`` and started; a poller
    passed in is used as it is (the caller starts and stops it)."""
    app, poller = handler_app(__name__, "http_poller", settings, poller, HttpPoller)

    @app.get("/health")
    def health():
        status, report = poller.health()
        return json_response(report, status)

    @app.get("/endpoints")
    def endpoints():
        return json_response({"endpoints": poller.endpoint_views()})

    @app.get("/endpoints/<endpoint_id>")
    def endpoint(endpoint_id: str):
        return json_response(poller.endpoint_view(endpoint_id))

    return app
