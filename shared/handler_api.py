"""The routes every handler service serves alike: the "Handler API" of docs/architecture.md.

The aggregator treats serial_handler, http_poller and ml_inference the same way, so they share
one implementation of ``/sensors``, ``/sensor/<id>`` (``?fresh=1``), ``/sensor/<id>/cached``,
``POST /sensor/<id>/cmd``, ``/errors`` and ``/events``; each service adds its own ``/health``
and whatever it has beyond devices (boards, endpoints, the model).
"""
from __future__ import annotations

import atexit
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flask import Flask, Response, request

from shared.commands import Command, decode_payload, parse_command
from shared.error_log import ErrorLog
from shared.metrics import Metrics
from shared.sse import EventPublisher
from shared.web import json_response, service_app

if TYPE_CHECKING:
    from shared.config import Settings


class HandlerDevices(Protocol):
    """What a handler service's domain object offers the shared routes."""

    errors: ErrorLog
    events: EventPublisher

    def sensors(self) -> list[dict[str, Any]]: ...

    def view(self, device_id: str) -> dict[str, Any]: ...

    def fresh_view(self, device_id: str) -> dict[str, Any]: ...

    def command(self, device_id: str, command: Command) -> dict[str, Any]: ...


class HandlerService(HandlerDevices, Protocol):
    """A handler service's domain core as its app builds it: the shared routes' devices, its
    metrics, and a life cycle (``start()`` returns the core, started)."""

    metrics: Metrics

    def start(self) -> Any: ...

    def stop(self) -> None: ...


Core = TypeVar("Core", bound=HandlerService)


def handler_app(import_name: str, service_name: str, settings: Settings, core: Core | None,
                build: Callable[[Settings], Core]) -> tuple[Flask, Core]:
    """The app every handler service's ``create_app`` starts from, and its core.

    Without ``core`` one is built from ``settings``, started, and stopped at exit (its event
    streams end, its ports close); a core passed in is used as it is (the caller starts and stops
    it). The app has every service's answers (shared/web.py ``service_app``) and the shared
    routes; the service adds ``/health`` and its own."""
    if core is None:
        core = build(settings)
        core.start()
        atexit.register(core.stop)
    app = service_app(import_name, settings, core.errors, core.metrics)
    app.extensions[service_name] = core
    install_handler_api(app, core)
    return app, core


def command_body() -> Command:
    """The request's command envelope (shared/commands.py), whatever its Content-Type; an empty
    body is ``{}``. CommandError (a JSON 400) for anything else."""
    return parse_command(decode_payload(request.get_data(), allow_empty=True))


def _wants_fresh() -> bool:
    return request.args.get("fresh", "").lower() in ("1", "true", "yes")


def install_handler_api(app: Flask, devices: HandlerDevices) -> None:
    """Add the shared routes to ``app`` (a failed command's JSON answer is install_error_handlers')."""

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
        return json_response(devices.command(device_id, command_body()))

    @app.get("/errors")
    def errors() -> Response:
        return json_response(devices.errors.to_dict())

    @app.get("/events")
    def events() -> Response:
        return devices.events.flask_response(request.headers.get("Last-Event-ID"))
