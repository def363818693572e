"""Routes of the state aggregator (:5003): HTTP in, StateAggregator calls, JSON out."""
from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from shared.bridge_report import broker_link
from shared.commands import CommandError, decode_payload
from shared.config import DEVICE_TYPES, Settings
from shared.web import (
    ApiError,
    Metrics,
    install_api_token,
    install_error_handlers,
    install_instance_header,
    json_response,
)

from .aggregator import SERVICE, StateAggregator
from .registry import UnknownDevice, UnknownGroup

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ApiError("INVALID_VALUE", f"?{name}= takes true or false, not {raw!r}", 400)


def _connected_gauge(connected: bool | None) -> float:
    return float("nan") if connected is None else float(connected)


def _body() -> Any:
    """A command body, whatever its Content-Type; an empty one is ``{}`` (a sensor's "read now")."""
    return decode_payload(request.get_data(), allow_empty=True)


def create_app(settings: Settings, aggregator: StateAggregator | None = None) -> Flask:
    """The aggregator app; builds and starts a StateAggregator unless one is given."""
    aggregator = aggregator or StateAggregator(settings)
    aggregator.start()
    app = Flask(__name__)
    app.config["aggregator"] = aggregator
    install_error_handlers(app, aggregator.error_log)
    install_instance_header(app, settings.instance_id)
    install_api_token(app, settings.api_token)
    metrics = Metrics(SERVICE)
    metrics.install(app)
    metrics.gauge_function("devices_online", "Devices online", lambda: aggregator.registry.counts()["online"])
    metrics.gauge_function("event_clients", "Connected /events clients",
                           lambda: aggregator.publisher.stats()["clients"])
    metrics.gauge_function("cache_hits", "Cache hits", lambda: aggregator.cache.stats()["hits"])
    metrics.gauge_function("cache_refreshes", "Cache refreshes", lambda: aggregator.cache.stats()["refreshes"])
    metrics.gauge_function("mqtt_broker_connected", "The bridge's broker link: 1 up, 0 down, NaN no current report",
                           lambda: _connected_gauge(broker_link(settings.run_dir)["connected"]))

    @app.errorhandler(UnknownDevice)
    def _unknown_device(exc: UnknownDevice) -> Response:
        return json_response({"error": "UNKNOWN_DEVICE", "message": f"No device {exc.device_id!r} in this "
                              "instance.", "known": exc.known}, 404)

    @app.errorhandler(UnknownGroup)
    def _unknown_group(exc: UnknownGroup) -> Response:
        return json_response({"error": "UNKNOWN_GROUP", "message": f"No group {exc.group_id!r} in this "
                              "instance.", "known": exc.known}, 404)

    @app.errorhandler(CommandError)
    def _command_error(exc: CommandError) -> Response:
        return json_response(exc.to_dict(), exc.status)

    @app.get("/health")
    def health() -> Response:
        status, body = aggregator.health()
        return json_response(body, status)

    @app.get("/devices")
    def devices() -> Response:
        device_type = request.args.get("type") or None
        if device_type is not None and device_type not in DEVICE_TYPES:
            raise ApiError("INVALID_VALUE", f"?type={device_type} is not a device type",
                           400, known=list(DEVICE_TYPES))
        include = request.args.get("include", "")
        views = aggregator.device_views(include_state="state" in include.split(","),
                                        type=device_type, online=_flag("online"), encoded=True)
        return json_response({"devices": views, "count": len(views), "instance_id": settings.instance_id})

    @app.get("/device/<device_id>")
    def device(device_id: str) -> Response:
        return json_response(aggregator.device_view(device_id, fresh=bool(_flag("fresh"))))

    @app.post("/device/<device_id>/force-refresh")
    def force_refresh(device_id: str) -> Response:
        return json_response(aggregator.force_refresh(device_id))

    @app.post("/device/<device_id>/cmd")
    def device_command(device_id: str) -> Response:
        status, body = aggregator.command(device_id, _body())
        return json_response(body, status)

    @app.get("/groups")
    def groups() -> Response:
        return json_response({"groups": aggregator.group_views()})

    @app.post("/group/<group_id>/cmd")
    def group_command(group_id: str) -> Response:
        status, body = aggregator.group_command(group_id, _body())
        return json_response(body, status)

    @app.get("/cache/stats")
    def cache_stats() -> Response:
        return json_response(aggregator.cache_stats())

    @app.post("/cache/clear")
    def cache_clear() -> Response:
        return json_response({"cleared": aggregator.cache.clear()})

    @app.get("/errors")
    def errors() -> Response:
        return json_response({"errors": aggregator.errors()})

    @app.get("/events")
    def events() -> Response:
        return aggregator.publisher.flask_response(request.headers.get("Last-Event-ID"))

    return app
