"""Routes of the state aggregator (:5003): HTTP in, StateAggregator calls, JSON out."""
from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, request

from shared.bridge_report import broker_link
from shared.commands import decode_payload
from shared.config import DEVICE_TYPES, Settings
from shared.errors import InvalidRequest
from shared.metrics import Metrics
from shared.web import json_response, service_app

from .aggregator import SERVICE, StateAggregator
from .history import parse_since
from .page import install_page

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidRequest("INVALID_VALUE", f"?{name}= takes true or false, not {raw!r}")


def _connected_gauge(connected: bool | None) -> float:
    return float("nan") if connected is None else float(connected)


def _since() -> float | None:
    raw = request.args.get("since")
    if raw is None or raw == "":
        return None
    try:
        return parse_since(raw, time.time())
    except ValueError as exc:
        raise InvalidRequest("INVALID_VALUE", str(exc), field="since") from None


def _points() -> int | None:
    raw = request.args.get("points")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise InvalidRequest("INVALID_VALUE", f"?points= takes a whole number 1..10000, not {raw[:20]!r}",
                             field="points")
    return int(raw)


def _body() -> Any:
    """A command body, whatever its Content-Type; an empty one is ``{}`` (a sensor's "read now")."""
    return decode_payload(request.get_data(), allow_empty=True)


def create_app(settings: Settings, aggregator: StateAggregator | None = None) -> Flask:
    """The aggregator app; builds and starts a StateAggregator unless one is given."""
    aggregator = aggregator or StateAggregator(settings)
    aggregator.start()
    metrics = Metrics(SERVICE)
    app = service_app(__name__, settings, aggregator.error_log, metrics)
    app.config["aggregator"] = aggregator
    install_page(app)
    metrics.gauge_function("devices_online", "Devices online", lambda: aggregator.registry.counts()["online"])
    metrics.gauge_function("event_clients", "Connected /events clients",
                           lambda: aggregator.publisher.stats()["clients"])
    metrics.gauge_function("cache_hits", "Cache hits", lambda: aggregator.cache.stats()["hits"])
    metrics.gauge_function("cache_refreshes", "Cache refreshes", lambda: aggregator.cache.stats()["refreshes"])
    metrics.gauge_function("mqtt_broker_connected", "The bridge's broker link: 1 up, 0 down, NaN no current report",
                           lambda: _connected_gauge(broker_link(settings.run_dir)["connected"]))

    @app.get("/health")
    def health() -> Response:
        status, body = aggregator.health()
        return json_response(body, status)

    @app.get("/devices")
    def devices() -> Response:
        device_type = request.args.get("type") or None
        if device_type is not None and device_type not in DEVICE_TYPES:
            raise InvalidRequest("INVALID_VALUE", f"?type={device_type} is not a device type",
                                 known=list(DEVICE_TYPES))
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

    @app.get("/device/<device_id>/history")
    def device_history(device_id: str) -> Response:
        return json_response(aggregator.history_of(device_id, _since(), _points()))

    @app.get("/history")
    def history() -> Response:
        return json_response(aggregator.histories(_since(), _points()))

    @app.get("/overview")
    def overview() -> Response:
        return json_response(aggregator.overview())

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
