"""The routes every handler service serves alike: the "Handler API" of docs/architecture.md.

The aggregator treats serial_handler, http_poller and ml_inference the same way, so they share
one implementation of ``/sensors``, ``/sensor/<id>`` (``?fresh=1``), ``/sensor/<id>/cached``,
``POST /sensor/<id>/cmd``, ``/errors`` and ``/events``; each service adds its own ``/health``
and whatever it has beyond devices (boards, endpoints, the model).
"""
from __future__ import annotations

from typing import Any, Protocol

from flask import Flask, Response, request

from shared.commands import INVALID_VALUE, CommandError
from shared.devices import command_values
from shared.sse import EventPublisher
from shared.web import ApiError, ErrorLog, json_response


class HandlerDevices(Protocol):
    """What a handler service's domain object offers the shared routes."""

    errors: ErrorLog
    events: EventPublisher

    def sensors(self) -> list[dict[str, Any]]: ...

    def view(self, device_id: str) -> dict[str, Any]: ...

    def fresh_view(self, device_id: str) -> dict[str, Any]: ...

    def command(self, device_id: str, values: Any, cmd_id: Any = None,
                timeout_ms: Any = None) -> dict[str, Any]: ...


def json_object_body() -> dict[str, Any]:
    """The request's JSON object, or INVALID_VALUE (400) naming what was wrong."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(INVALID_VALUE, "The body must be a JSON object.", 400)
    return data


def _wants_fresh() -> bool:
    return request.args.get("fresh", "").lower() in ("1", "true", "yes")


def install_handler_api(app: Flask, devices: HandlerDevices) -> None:
    """Add the shared routes (and the JSON answer of a failed command) to ``app``."""

    @app.errorhandler(CommandError)
    def _command_error(exc: CommandError) -> Response:
        return json_response({"error": exc.code, "message": exc.message, **exc.extra}, exc.status)

    @app.get("/sensors")
    def sensors() -> Response:
        return json_response({"sensors": devices.sensors()})

    @app.get("/sensor/<device_id>")
    def sensor(device_id: str) -> Response:
        return json_response(devices.fresh_view(device_id) if _wants_fresh() else devices.view(device_id))

    @app.get("/sensor/<device_id>/cached")
    def sensor_cached(device_id: str) -> Response:
        return json_response(devices.view(device_id))

    @app.post("/sensor/<device_id>/cmd")
    def sensor_cmd(device_id: str) -> Response:
        data = json_object_body()
        return json_response(devices.command(device_id, command_values(data), data.get("id"), data.get("timeout")))

    @app.get("/errors")
    def errors() -> Response:
        return devices.errors.response()

    @app.get("/events")
    def events() -> Response:
        return devices.events.flask_response(request.headers.get("Last-Event-ID"))
