"""A small real HTTP server that speaks the state aggregator's API (docs/architecture.md):
``GET /devices?include=state``, ``POST /device/<id>/cmd``, ``POST /group/<id>/cmd``,
``GET /health`` and ``GET /events`` (a real shared.sse.EventPublisher). Tests drive it:
``set_state``, ``emit_event``, ``set_online``, and read the commands it received. Like the real
one it names its instance on every answer (``X-Instance-Id``): the settings' unless
``instance_id`` says otherwise (another instance's aggregator on the bridge's port); and like the
real one it carries out a command only with the settings' API token (shared/web.py)."""
from __future__ import annotations

import threading
import time
from typing import Any

from flask import Flask, jsonify, request

from shared.config import Settings
from shared.server import ThreadedServer, run_in_thread
from shared.sse import EventPublisher
from shared.web import install_api_token, install_instance_header


class FakeAggregator:
    def __init__(self, settings: Settings, port: int = 0, instance_id: str | None = None) -> None:
        self.instance_id = instance_id or settings.instance_id
        self.publisher = EventPublisher(heartbeat_s=1.0)
        self.lock = threading.Lock()
        self.devices: dict[str, dict[str, Any]] = {
            d.device_id: {"device_id": d.device_id, "name": d.name, "type": d.type, "service": d.service,
                          "enabled": d.enabled, "groups": list(d.groups), "online": True, "last_seen": None,
                          "reason": None, "state": {}}
            for d in settings.devices}
        self.groups = {g.group_id: list(g.devices) for g in settings.groups}
        self.commands: list[dict[str, Any]] = []
        self.command_error: dict[str, Any] | None = None  # {"status": 409, "error": "REJECTED", ...}
        self.command_delay = 0.0
        self.api_token = settings.api_token
        self.app = self._build()
        self.port = port
        self.server: ThreadedServer | None = None

    def start(self) -> FakeAggregator:
        self.server = run_in_thread(self.app, port=self.port)
        self.port = self.server.port
        return self

    def stop(self) -> None:
        if self.server:
            self.publisher.close()
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- driving it
    def set_state(self, device_id: str, **props: Any) -> None:
        with self.lock:
            self.devices[device_id]["state"].update(props)
        self.publisher.publish("state", {"device_id": device_id, "state": props})

    def set_online(self, device_id: str, online: bool, reason: str | None = None) -> None:
        with self.lock:
            self.devices[device_id]["online"] = online
        self.publisher.publish("availability", {"device_id": device_id, "online": online, "reason": reason})

    def emit_event(self, device_id: str, event: str, data: dict[str, Any] | None = None) -> None:
        self.publisher.publish("event", {"device_id": device_id, "event": event, "data": data or {}})

    def emit_error(self, device_id: str | None, code: str, message: str) -> None:
        data = {"source": "serial_handler", "error_code": code, "message": message, "severity": "error"}
        if device_id:
            data["device_id"] = device_id
        self.publisher.publish("error", data)

    def _build(self) -> Flask:
        app = Flask(__name__)
        install_instance_header(app, self.instance_id)
        install_api_token(app, self.api_token)

        @app.get("/health")
        def health():
            return jsonify(status="ok")

        @app.get("/devices")
        def devices():
            with self.lock:
                return jsonify(devices=[dict(d, state=dict(d["state"])) for d in self.devices.values()])

        @app.get("/events")
        def events():
            return self.publisher.flask_response(request.headers.get("Last-Event-ID"))

        @app.post("/device/<device_id>/cmd")
        def device_cmd(device_id: str):
            body = request.get_json(silent=True) or {}
            with self.lock:
                self.commands.append({"kind": "device", "target": device_id, **body})
                known = device_id in self.devices
            if self.command_delay:
                time.sleep(self.command_delay)  # a slow board, on the server side
            if not known:
                return jsonify(error="UNKNOWN_DEVICE", message=f"no device {device_id}"), 404
            if self.command_error:
                error = dict(self.command_error)
                status = error.pop("status", 409)
                return jsonify(**error), status
            values = body.get("values", {})
            if "position" in values:
                self.set_state(device_id, position=values["position"], target=values["position"], moving=False)
            return jsonify(status="success", cmd_id=body.get("id"), result={"applied": values})

        @app.post("/group/<group_id>/cmd")
        def group_cmd(group_id: str):
            body = request.get_json(silent=True) or {}
            with self.lock:
                self.commands.append({"kind": "group", "target": group_id, **body})
            if group_id not in self.groups:
                return jsonify(error="UNKNOWN_GROUP", message=f"no group {group_id}"), 404
            return jsonify(status="success", results={d: {"status": "success"} for d in self.groups[group_id]})

        return app
