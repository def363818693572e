"""The HTTP poller's REST API (docs/rest-api.md): routes only; ``HttpPoller`` does the work."""
from __future__ import annotations

import atexit

from flask import Flask

from shared.config import Settings
from shared.handler_api import install_handler_api
from shared.web import (
    install_api_token,
    install_error_handlers,
    install_instance_header,
    install_metrics,
    json_response,
)

from .poller import HttpPoller


def create_app(settings: Settings, poller: HttpPoller | None = None) -> Flask:
    """The Flask app. Without ``poller`` one is built from ``settings`` and started; a poller
    passed in is used as it is (the caller starts and stops it)."""
    if poller is None:
        poller = HttpPoller(settings).start()
        atexit.register(poller.stop)  # end the event streams and the polling on shutdown
    app = Flask(__name__)
    app.extensions["http_poller"] = poller
    install_error_handlers(app, poller.errors)
    install_instance_header(app, settings.instance_id)
    install_api_token(app, settings.api_token)
    install_metrics(app, poller.metrics)
    install_handler_api(app, poller)

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
