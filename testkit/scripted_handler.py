"""A handler service whose devices the test drives: the handler API of docs/architecture.md
on a real loopback HTTP server, backed by a real EventPublisher.

It stands in for any handler (http_poller, ml_inference, or serial_handler edge cases a board
cannot produce on demand: a REJECTED command, a hang, a stream that drops while the process
lives). It records every command and every pull so tests can assert what reached it. Like a
real handler it names its instance on every answer (``X-Instance-Id``): the example instance's
unless told otherwise.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, jsonify, request

from shared.server import ThreadedServer, run_in_thread
from shared.sse import EventPublisher, now_iso
from shared.web import install_instance_header

EXAMPLE_INSTANCE_ID = "sensor_hub_01"
"""The instance of instances/sensor_hub_01.json, which the aggregator tests build on."""


class ScriptedHandler:
    def __init__(self, devices: Iterable[tuple[str, str]], port: int,
                 instance_id: str = EXAMPLE_INSTANCE_ID) -> None:
        """``devices``: (device_id, type) pairs; all online with an empty state at first."""
        self.port = port
        self.instance_id = instance_id
        self.lock = threading.Lock()
        self.views: dict[str, dict[str, Any]] = {
            device_id: {"device_id": device_id, "type": device_type, "online": True, "state": {},
                        "last_seen": None, "reason": None}
            for device_id, device_type in devices}
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.reads: list[tuple[str, bool]] = []  # (device_id, fresh)
        self.sensors_pulls = 0
        self.replies: dict[str, tuple[int, dict[str, Any]]] = {}  # device_id -> canned answer
        self.stream_broken = False  # /events answers 503: a follower can never connect
        self.publisher = EventPublisher(heartbeat_s=1.0)
        self.server: ThreadedServer | None = None
        self.app = self._build_app()

    # -- driving it

    def start(self) -> ScriptedHandler:
        self.server = run_in_thread(self.app, port=self.port)
        return self

    def stop(self) -> None:
        """Like the process dying: the port closes and open streams are cut."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def restart(self) -> None:
        """A new process: a new stream epoch, same devices and port."""
        self.stop()
        self.publisher = EventPublisher(heartbeat_s=1.0)
        self.start()

    def drop_streams(self) -> None:
        """The stream breaks while the process lives (a new publisher epoch on reconnect)."""
        old, self.publisher = self.publisher, EventPublisher(heartbeat_s=1.0)
        old.close()
        if self.server is not None:
            self.server._server.cut_connections()

    def set_state(self, device_id: str, **state: Any) -> None:
        with self.lock:
            view = self.views[device_id]
            view["state"] = {**view["state"], **state}
            view["last_seen"] = now_iso()
        self.publisher.publish("state", {"device_id": device_id, "state": state})

    def set_online(self, device_id: str, online: bool, reason: str | None = None) -> None:
        with self.lock:
            self.views[device_id].update(online=online, reason=None if online else reason)
        self.publisher.publish("availability", {"device_id": device_id, "online": online,
                                                "reason": None if online else reason})

    def commands_for(self, device_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for d, body in self.commands if d == device_id]

    # -- the handler API

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        install_instance_header(app, self.instance_id)

        def unknown(device_id: str) -> tuple[Response, int]:
            return jsonify(error="UNKNOWN_DEVICE", message=f"no device {device_id}", known=list(self.views)), 404

        @app.get("/health")
        def health():
            return jsonify(status="ok")

        @app.get("/sensors")
        def sensors():
            with self.lock:
                self.sensors_pulls += 1
                return jsonify(sensors=[dict(v) for v in self.views.values()])

        @app.get("/sensor/<device_id>")
        def sensor(device_id: str):
            with self.lock:
                if device_id not in self.views:
                    return unknown(device_id)
                self.reads.append((device_id, request.args.get("fresh") == "1"))
                return jsonify(self.views[device_id])

        @app.post("/sensor/<device_id>/cmd")
        def command(device_id: str):
            body = request.get_json(force=True)
            with self.lock:
                if device_id not in self.views:
                    return unknown(device_id)
                self.commands.append((device_id, body))
                canned = self.replies.get(device_id)
            if canned is not None:
                status, reply = canned
                return jsonify({**reply, "cmd_id": body.get("id")}), status
            return jsonify(status="success", cmd_id=body.get("id"), result=body["values"])

        @app.get("/errors")
        def errors():
            return jsonify(errors=[{"timestamp": now_iso(), "source": "scripted", "error_code": "NOISE",
                                    "message": "a test error", "severity": "warning"}])

        @app.get("/events")
        def events():
            if self.stream_broken:
                return jsonify(error="BROKEN", message="the stream is broken on purpose"), 503
            return self.publisher.flask_response(request.headers.get("Last-Event-ID"))

        @app.post("/emit")
        def emit():
            body = request.get_json(force=True)
            count, rate = int(body["count"]), float(body.get("rate", 1000))
            threading.Thread(target=self.emit, args=(count, rate, body.get("tag", ""), body.get("kind", "state"),
                                                     int(body.get("first", 0))), daemon=True).start()
            return jsonify(started=count)

        return app

    def emit(self, count: int, rate: float, tag: str = "", kind: str = "state", first: int = 0) -> None:
        """``count`` events at ``rate``/s over the devices in turn, keys ``first``, ``first + 1``...,
        each carrying ``bench: {tag, key, sent_at}`` (``perf_counter``, machine-wide on Linux) so a
        reader in another process can time its arrival (the aggregator fan-out benchmark).

        ``kind`` ``state``: a reading ``{"value": key}``, also kept as the device's state (what a
        pull answers); ``event``: a button press with ``data: {"press": "short", "mark": key}``.
        Every key is a unique mark the chaos tests look for on MQTT."""
        ids = list(self.views)
        clock = time.perf_counter
        start = clock()
        for n in range(count):
            key = first + n
            due = start + n / rate
            while (now := clock()) < due:
                time.sleep(min(due - now, 0.001))  # pacing the load, not synchronising
            device_id = ids[key % len(ids)]
            bench = {"tag": tag, "key": key, "sent_at": clock()}
            if kind == "event":
                self.publisher.publish("event", {"device_id": device_id, "event": "button",
                                                 "data": {"press": "short", "mark": key}, "bench": bench})
                continue
            with self.lock:
                self.views[device_id]["state"] = {**self.views[device_id]["state"], "value": key}
            self.publisher.publish("state", {"device_id": device_id, "state": {"value": key}, "bench": bench})


def main(argv: list[str]) -> None:
    """``python -m testkit.scripted_handler PORT INSTANCE_FILE``: play the
    serial handler for every board device of the instance (benchmarks), until killed."""
    port, path = int(argv[0]), argv[1]
    doc = json.loads(open(path, encoding="utf-8").read())
    devices = [(d["device_id"], d["type"]) for d in doc["devices"] if "board" in d.get("source", {})]
    handler = ScriptedHandler(devices, port, doc["instance_id"])
    for index, (device_id, _) in enumerate(devices):
        handler.views[device_id]["state"] = {"value": index}
        handler.views[device_id]["last_seen"] = now_iso()
    handler.start()
    print(f"READY {len(devices)} devices on 127.0.0.1:{port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
