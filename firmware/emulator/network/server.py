"""The simulator's HTTP server: one loopback port, one or several simulated devices.

With one device it answers at the root (``http://127.0.0.1:8081/sensor/temperature``); with
several, each under its own prefix (``/d0/sensor/temperature``, ``/d1/...``), so fifty
endpoints cost one process and one port. ``/_sim/...`` (or ``/<prefix>/_sim/...``) is the
control path tests and people use:

* ``GET /_sim/state``: readings, relays, cover, light, fault and request counters;
* ``POST /_sim/set`` ``{"temperature": 25.0, "motion": true, "switch": true, "position": 40}``;
* ``POST /_sim/fault`` ``{"fault": "hang"|"slow"|"error"|"garbage"|"huge"|"none", "delay": 2}``.
"""
from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .dialects import DIALECTS, encode
from .model import SimulatedDevice

HANG_LIMIT_S = 300.0
HUGE_BYTES = 4 << 20


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NetworkSimulator:
    """``NetworkSimulator("esphome").start()``; ``.url`` / ``.urls``, ``.devices``, ``.stop()``."""

    def __init__(self, profile: str, count: int = 1, host: str = "127.0.0.1", port: int = 0, seed: int = 0,
                 drift: bool = True, cover_speed: float = 20.0, prefix: str = "d") -> None:
        if profile not in DIALECTS:
            raise ValueError(f"profile must be one of {', '.join(DIALECTS)}, got {profile!r}")
        if not is_loopback(host):
            raise ValueError(f"the simulator serves loopback only, not {host!r}")
        self.profile = profile
        names = [f"{prefix}{i}" for i in range(count)] if count > 1 else [""]
        self.devices: dict[str, SimulatedDevice] = {
            name: SimulatedDevice(name or profile, profile, seed=seed + i, drift=drift, cover_speed=cover_speed)
            for i, name in enumerate(names)}
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self.base = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        return [f"{self.base}/{name}" if name else self.base for name in self.devices]

    def device(self, name: str = "") -> SimulatedDevice:
        return self.devices[name] if name else next(iter(self.devices.values()))

    def start(self) -> NetworkSimulator:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"simulator {self.base}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for device in self.devices.values():
            device.cleared.set()  # let hanging requests go
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def route(self, path: str) -> tuple[SimulatedDevice | None, str]:
        """The device a path is for, and the path within it."""
        if "" in self.devices:
            return self.devices[""], path
        name, _, rest = path.lstrip("/").partition("/")
        return self.devices.get(name), "/" + rest if rest else ""


def _handler(sim: NetworkSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a poller's pooled connections are reused
        server_version = "sensor-hub-simulator"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle and delayed ACKs
            # add 40 ms to every keep-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            device, path = sim.route(split.path)
            if device is None:
                self._send(404, {"error": "NOT_FOUND", "message": f"no simulated device at {split.path}"})
                return
            if path.startswith("/_sim/"):
                self._control(device, method, path, payload)
                return
            device.count(path or "/")
            if not self._fault(device):
                return
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            status, body = DIALECTS[sim.profile](device, method, path, query)
            self._send(status, body)

        def _fault(self, device: SimulatedDevice) -> bool:
            """Misbehave as the device's fault says; False when the answer was already given."""
            fault = device.fault
            if fault.kind == "slow":
                sim.stopping.wait(fault.delay)
            elif fault.kind == "hang":
                device.cleared.wait(HANG_LIMIT_S)
                self.close_connection = True
                return False
            elif fault.kind == "error":
                self._send(fault.status, b"<html><body>500 Internal Server Error</body></html>", "text/html")
                return False
            elif fault.kind == "garbage":
                self._send(200, b"<html><head><title>Login</title></head>\x00\xff</html>", "text/html")
                return False
            elif fault.kind == "huge":
                self._send_endless()
                return False
            return True

        def _control(self, device: SimulatedDevice, method: str, path: str, payload: bytes) -> None:
            try:
                data = json.loads(payload or b"{}")
                if path == "/_sim/state" and method == "GET":
                    self._send(200, device.snapshot())
                elif path == "/_sim/set" and method == "POST":
                    device.set(data)
                    self._send(200, device.snapshot())
                elif path == "/_sim/fault" and method == "POST":
                    device.set_fault(data.get("fault", "none"), float(data.get("delay", 0)),
                                     int(data.get("status", 500)))
                    self._send(200, {"fault": device.fault.kind})
                else:
                    self._send(404, {"error": "NOT_FOUND", "message": f"{method} {path}"})
            except (ValueError, KeyError, TypeError) as exc:
                self._send(400, {"error": "INVALID_VALUE", "message": str(exc)})

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else encode(body)
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client gave up first

        def _send_endless(self) -> None:
            """A JSON array that goes on and on, without a length: only a bounded read survives it."""
            self.close_connection = True
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"[")
                chunk = b"0," * 32768
                sent = 0
                started = time.monotonic()
                while sent < HUGE_BYTES and time.monotonic() - started < 30:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                self.wfile.write(b"0]")
            except OSError:
                pass

    return Handler
