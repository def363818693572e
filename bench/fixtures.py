"""Reusable parts for scenarios: a private broker, MQTT clients, emulated boards, the services
as real processes. Everything binds to loopback and is torn down through ``ctx.cleanup``.

    broker = start_broker(ctx)                       # private Mosquitto on a free port
    sub = MqttClient(broker.port, "sub"); sub.subscribe("a/#", on_message)
    board = start_emulator(ctx, "board-1")           # `python -m firmware.emulator`, with a control socket
    board.control.request({"motion": True})
    svc = start_service(ctx, "serial_handler", instance_doc, env)   # `python -m services.serial_handler`
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import requests

from bench.harness import Context, NotAvailable
from shared.api_token import ApiToken, resolve
from testkit.broker import MosquittoBroker, find_mosquitto
from testkit.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def require_files(*paths: str) -> None:
    """NotAvailable naming every part of the project that does not exist yet."""
    missing = [p for p in paths if not (ROOT / p).exists()]
    if missing:
        raise NotAvailable(", ".join(missing))


# --------------------------------------------------------------------------- broker


def start_broker(ctx: Context) -> MosquittoBroker:
    if find_mosquitto() is None:
        raise NotAvailable("mosquitto (apt-get install mosquitto; `make bench` installs it)")
    broker = MosquittoBroker()
    broker.start()
    ctx.cleanup.callback(broker.close)
    assert broker.process is not None
    ctx.track("mosquitto", broker.process.pid)
    return broker


def no_delay(client: mqtt.Client) -> None:
    """TCP_NODELAY on a paho client's socket (paho does not set it). Without it a small publish
    can wait behind the client's own unacknowledged PUBACK for the peer's delayed ACK (~40 ms),
    and the bench would measure itself instead of the connector."""
    sock = client.socket()
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class MqttClient:
    """A paho 2.x client on loopback with its network loop in a thread; connected on return."""

    def __init__(self, port: int, name: str, max_inflight: int = 20, host: str = "127.0.0.1") -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{os.getpid()}")
        self.client.max_inflight_messages_set(max_inflight)
        self.connected = threading.Event()
        self.handlers: list[tuple[str, Callable[[mqtt.MQTTMessage, float], None]]] = []
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(10):
            self.close()
            raise RuntimeError(f"MQTT client {name} could not connect to {host}:{port}")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        no_delay(client)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        at = time.perf_counter()   # first thing: the receive time is what latencies are made of
        for pattern, handler in self.handlers:
            if mqtt.topic_matches_sub(pattern, message.topic):
                handler(message, at)

    def subscribe(self, pattern: str, handler: Callable[[mqtt.MQTTMessage, float], None], qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK, so nothing published afterwards is missed."""
        self.handlers.append((pattern, handler))
        done = threading.Event()
        previous = self.client.on_subscribe
        self.client.on_subscribe = lambda *a: done.set()
        result, _ = self.client.subscribe(pattern, qos=qos)
        if result != mqtt.MQTT_ERR_SUCCESS or not done.wait(10):
            raise RuntimeError(f"subscription to {pattern} failed")
        self.client.on_subscribe = previous

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------- processes


class Process:
    """A child process logging to a file, stopped with SIGTERM (then SIGKILL) on cleanup."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 stdout_pipe: bool = False) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE if stdout_pipe else self._log,
                                      stderr=self._log, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                # Its own session: a gunicorn worker that outlived the master goes too.
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()


def start_process(ctx: Context, name: str, argv: list[str], env: dict[str, str] | None = None,
                  stdout_pipe: bool = False, track: bool | str = True) -> Process:
    """``track``: report the process under its name (True), under a group name (a string,
    e.g. every emulator as ``emulators``), or not at all (False)."""
    process = Process(name, argv, ctx.workdir / f"{name}.log", env, stdout_pipe)
    ctx.cleanup.callback(process.stop)
    if track:
        ctx.track(track if isinstance(track, str) else name, process.pid)
    return process


# --------------------------------------------------------------------------- emulated boards


class EmulatorControl:
    """The emulator's control socket: one JSON request per line, one JSON reply per line."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")
        self.lock = threading.Lock()

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.sock.sendall(json.dumps(body, separators=(",", ":")).encode() + b"\n")
            reply = json.loads(self.reader.readline() or b"{}")
        if not reply.get("ok"):
            raise RuntimeError(f"emulator refused {body}: {reply}")
        return reply

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class PipelinedControl:
    """A second control connection for load: ``send()`` does not wait for the reply; a thread
    reads the replies (so the emulator never blocks on a full socket) and counts refusals."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.replies = 0
        self.refused: list[str] = []
        self._thread = threading.Thread(target=self._drain, name=f"control replies {path.name}", daemon=True)
        self._thread.start()

    def send(self, body: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(body, separators=(",", ":")).encode() + b"\n")

    def _drain(self) -> None:
        with self.sock.makefile("rb") as reader:
            for line in reader:
                self.replies += 1
                if b'"ok": true' not in line and b'"ok":true' not in line:
                    self.refused.append(line.decode(errors="replace")[:200])

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(2)


class Emulator:
    def __init__(self, process: Process, pty: str, link: Path, control: EmulatorControl,
                 sender: PipelinedControl) -> None:
        self.process = process
        self.pty = pty
        self.link = link
        self.control = control
        self.sender = sender


def start_emulator(ctx: Context, board_id: str, interval_ms: int = 5000, link: Path | None = None,
                   timestamps: bool = False, config: dict[str, Any] | None = None,
                   extra: list[str] | None = None) -> Emulator:
    """``python -m firmware.emulator`` with a control socket (``.control`` waits for replies,
    ``.sender`` pipelines requests for load), a --link and its own flash
    directory; ``config`` is written to the board's stored config before it boots (e.g.
    ``{"motion_hold_ms": 50}``)."""
    require_files("firmware/emulator/__main__.py")
    link = link or ctx.workdir / f"tty-{board_id}"
    control_path = ctx.workdir / f"ctl-{board_id}.sock"
    state_dir = ctx.workdir / f"flash-{board_id}"
    state_dir.mkdir(exist_ok=True)
    if config:
        (state_dir / "config.json").write_text(json.dumps({"config": config}))
    argv = [PYTHON, "-m", "firmware.emulator", "--link", str(link), "--board-id", board_id,
            "--control", str(control_path), "--interval-ms", str(interval_ms), "--seed", "1",
            "--motion-rate", "0", "--state-dir", str(state_dir)]
    if timestamps:
        argv.append("--timestamps")
    process = start_process(ctx, f"emulator-{board_id}", argv + (extra or []), stdout_pipe=True, track="emulators")
    pty = ""
    deadline = time.monotonic() + 20
    assert process.popen.stdout is not None
    while time.monotonic() < deadline:
        line = process.popen.stdout.readline().decode().strip()
        if not line:
            process.check_alive()
            continue
        if line.startswith("PTY "):
            pty = line[4:]
        if line == "READY":
            break
    else:
        raise RuntimeError(f"emulator {board_id} did not become ready: {process.log_tail()}")
    control = EmulatorControl(control_path)
    ctx.cleanup.callback(control.close)
    sender = PipelinedControl(control_path)
    ctx.cleanup.callback(sender.close)
    return Emulator(process, pty, link, control, sender)


# --------------------------------------------------------------------------- services


class Service:
    def __init__(self, name: str, process: Process, url: str) -> None:
        self.name = name
        self.process = process
        self.url = url

    def get(self, path: str, timeout: float = 10.0) -> requests.Response:
        return requests.get(self.url + path, timeout=timeout)


def write_instance(ctx: Context, doc: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    """Write the instance file; returns its directory and the environment that points at it."""
    instances = ctx.workdir / "instances"
    instances.mkdir(exist_ok=True)
    (instances / f"{doc['instance_id']}.json").write_text(json.dumps(doc, indent=1))
    data = ctx.workdir / "data"
    data.mkdir(exist_ok=True)
    env = {"INSTANCE_NAME": doc["instance_id"], "INSTANCES_DIR": str(instances), "DATA_DIR": str(data),
           "LOG_LEVEL": "WARNING", "IOT2MQTT_PATH": str(ctx.workdir)}
    return instances, env


def api_token(env: dict[str, str]) -> ApiToken:
    """The instance's API token, as its programs have it (a secret in ``env``, else the data
    folder's ``api-token``, made by whichever comes first, race-free)."""
    return resolve(env, Path(env["DATA_DIR"]))


def authorization(env: dict[str, str]) -> dict[str, str]:
    """The header a state-changing call to the instance's services needs."""
    return api_token(env).header()


def install_default_model(scope: Any, env: dict[str, str]) -> Path:
    """Put ml_inference's default model where the instance's DATA_DIR expects it (the default
    ``models/window.pt``). It is trained once per bench invocation (seconds of CPU, with the
    service's own training command) and copied for every scenario after that, so no scenario
    pays for training and they all measure the same weights."""
    trained = scope.session.workdir / "window.pt"
    if not trained.exists():
        subprocess.run([PYTHON, "-m", "services.ml_inference.train", "--out", str(trained)], cwd=ROOT,
                       check=True, capture_output=True, timeout=600)
    target = Path(env["DATA_DIR"]) / "models" / "window.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained, target)
    return target


def start_service(ctx: Context, name: str, doc: dict[str, Any], env: dict[str, str],
                  ready_timeout: float = 60.0, healthy: bool = False) -> Service:
    """``python -m services.<name>`` on the port the instance gives it; ready when it answers
    ``/health`` at all (``healthy=True``: when it answers 200)."""
    require_files(f"services/{name}/__main__.py")
    port = doc["config"]["services"][name]["port"]
    process = start_process(ctx, name, [PYTHON, "-m", f"services.{name}"], env=env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        process.check_alive()
        response = requests.get(url + "/health", timeout=2)
        return response.status_code == 200 if healthy else response.status_code in (200, 503)

    wait_for(up, timeout=ready_timeout, interval=0.05, message=f"{name} on {url}")
    return Service(name, process, url)


def start_bridge(ctx: Context, env: dict[str, str], broker: MosquittoBroker, instance_id: str,
                 base: str = "IoT2mqtt", ready_timeout: float = 60.0) -> Process:
    """``python mqtt_bridge.py``; ready when it publishes ``online`` on the instance status."""
    require_files("mqtt_bridge.py")
    online = threading.Event()
    probe = MqttClient(broker.port, "status-probe")
    probe.subscribe(f"{base}/v1/instances/{instance_id}/status",
                    lambda m, at: online.set() if m.payload == b"online" else None)
    bridge_env = {**env, "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port), "MQTT_BASE_TOPIC": base,
                  "MQTT_CLIENT_PREFIX": f"bench{os.getpid()}", "HA_DISCOVERY": "false"}
    process = start_process(ctx, "mqtt_bridge", [PYTHON, "mqtt_bridge.py"], env=bridge_env)
    try:
        wait_for(lambda: process.check_alive() or online.is_set(), timeout=ready_timeout, interval=0.05,
                 message="mqtt_bridge to publish online")
    finally:
        probe.close()
    return process


def free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


# --------------------------------------------------------------------------- a real browser


def start_browser(ctx: Context) -> Any:
    """Debian's chromium under playwright-core (testkit/browser.py), tracked as ``browser``
    (the driver and every chromium process under it)."""
    from testkit.browser import Browser, missing

    if problem := missing():
        raise NotAvailable(problem)
    browser = Browser(stderr_path=ctx.workdir / "browser.log")
    ctx.cleanup.callback(browser.close)
    ctx.track("browser", browser.proc.pid)
    return browser


NAVIGATION_TIMING = """(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return nav && nav.loadEventEnd > 0 ? {load_ms: nav.loadEventEnd, dom_ready_ms: nav.domContentLoadedEventEnd} : null;
})()"""
"""Milliseconds from the navigation's start to the end of the page's load event, and to DOMContentLoaded."""
