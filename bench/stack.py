"""The whole connector for end-to-end scenarios: a private broker, N emulated boards, the
serial handler, the state aggregator and the MQTT bridge, all real processes on loopback.

The end-to-end scenarios of one invocation share one stack (``shared_stack(ctx)``): starting it
takes seconds, and each scenario's CPU figures are deltas over its own rounds anyway.

Board ``b<i>`` feeds the devices ``b<i>_temperature``, ``_humidity``, ``_motion``, ``_window`` and
``_led``. The boards are quiet (a periodic line only every minute, no simulated motion) so that
every message the scenarios look for is one they caused.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.fixtures import (
    PYTHON,
    Emulator,
    MqttClient,
    install_default_model,
    require_files,
    start_bridge,
    start_broker,
    start_emulator,
    start_process,
    start_service,
    write_instance,
)
from bench.harness import Context, NotAvailable, SharedScope
from shared.config import ConfigError, settings_from_dict
from shared.topics import Topics
from testkit.helpers import free_port

INSTANCE = "bench_hub"
BASE = "IoT2mqtt"
BOARD_DEVICES = ("temperature", "humidity", "motion", "window", "led")
PARTS = ("firmware/emulator/__main__.py", "services/serial_handler/__main__.py",
         "services/state_aggregator/__main__.py", "mqtt_bridge.py")
QUIET_BOARD = {"interval_ms": 60_000, "status_interval_ms": 60_000, "motion_hold_ms": 50}


def instance_document(workdir: Path, boards: int, per_type: int = 1) -> dict[str, Any]:
    """``boards`` boards, each feeding ``per_type`` devices of every type in BOARD_DEVICES
    (``b<i>_<type>``, or ``b<i>_<type>_<n>`` when there are several)."""
    ports = {}
    for name in ("serial_handler", "http_poller", "state_aggregator", "ml_inference"):
        port = free_port()
        while port in ports.values():
            port = free_port()
        ports[name] = port
    serial_ports, devices = [], []
    for index in range(boards):
        board_id = f"b{index}"
        serial_ports.append({"board_id": board_id, "name": f"Bench board {index}",
                             "port": str(workdir / f"tty-{board_id}"), "baudrate": 115200,
                             "silence_timeout": 300, "command_timeout": 5})
        for kind in BOARD_DEVICES:
            for n in range(per_type):
                suffix = f"_{n}" if per_type > 1 else ""
                devices.append({"device_id": f"{board_id}_{kind}{suffix}", "name": f"Board {index} {kind}{suffix}",
                                "type": kind, "source": {"board": board_id}})
    return {
        "instance_id": INSTANCE, "connector_type": "sensor-hub", "friendly_name": "Bench hub", "enabled": True,
        "update_interval": 3600, "devices": devices, "groups": [],
        "config": {"serial_ports": serial_ports, "http_endpoints": [], "window_automations": [],
                   "cache_ttl": 30,
                   "services": {name: {"host": "127.0.0.1", "port": port} for name, port in ports.items()}},
    }


AUTOMATION = "auto_b0"


def add_automation(doc: dict[str, Any]) -> None:
    """A window automation on board ``b0``: its temperature, humidity and motion feed the model, its
    window moves. The interval is an hour, so every move a scenario sees is one a reading caused."""
    doc["config"]["window_automations"].append({
        "automation_id": AUTOMATION, "name": "Bench fresh air", "window": "b0_window",
        "sensors": {"temperature": "b0_temperature", "humidity": "b0_humidity", "motion": "b0_motion"},
        "mode": "auto", "min_change": 10, "interval": 3600})


# One device of each of these per HTTP endpoint, keyed by the name the simulator's JSON uses.
HTTP_DEVICES = ("temperature", "humidity", "pressure", "illuminance", "sound_level", "battery", "motion", "switch",
                "window", "led")


@dataclass(frozen=True)
class HttpHalf:
    """HTTP endpoints served by one network-simulator process (``/d0`` ... on one port), each
    with ``per_endpoint`` devices (``h<i>_<type>``), polled by ``services.http_poller``."""

    endpoints: int = 50
    per_endpoint: int = 10
    profile: str = "json"
    poll_interval: float = 5.0

    def add_to(self, doc: dict[str, Any], port: int) -> None:
        for index in range(self.endpoints):
            endpoint_id = f"h{index}"
            doc["config"]["http_endpoints"].append({
                "endpoint_id": endpoint_id, "url": f"http://127.0.0.1:{port}/d{index}", "profile": self.profile,
                "poll_interval": self.poll_interval, "timeout": 5})
            for kind in HTTP_DEVICES[: self.per_endpoint]:
                doc["devices"].append({"device_id": f"{endpoint_id}_{kind}", "type": kind,
                                       "source": {"endpoint": endpoint_id, "key": kind}})


class Stack:
    """A running connector. ``topics`` builds topic names; ``processes`` maps names to pids."""

    def __init__(self, scope: Context | SharedScope, boards: int = 4, per_type: int = 1,
                 board_config: dict[str, Any] | None = None, http: HttpHalf | None = None,
                 automation: bool = False) -> None:
        """``automation``: ml_inference runs too (its default model trained before the clock starts),
        with ``add_automation``'s window automation on b0, and the boards' motors are fast (1000 %/s)."""
        require_files(*PARTS)
        self.topics = Topics(BASE, INSTANCE)
        self.doc = instance_document(scope.workdir, boards, per_type)
        if automation:
            require_files("services/ml_inference/__main__.py")
            add_automation(self.doc)
        if http is not None:
            require_files("services/http_poller/__main__.py", "firmware/emulator/network/__main__.py")
            simulator_port = free_port()
            http.add_to(self.doc, simulator_port)
        board_config = board_config or QUIET_BOARD
        _, self.env = write_instance(scope, self.doc)
        try:
            settings_from_dict(self.doc, {"INSTANCE_NAME": INSTANCE})
        except ConfigError as exc:   # the bench's own instance is wrong: say so plainly
            raise RuntimeError(f"the bench instance does not validate: {exc}") from exc
        self.broker = start_broker(scope)
        self.boards: list[Emulator] = []
        for spec in self.doc["config"]["serial_ports"]:
            self.boards.append(start_emulator(scope, spec["board_id"], interval_ms=board_config["interval_ms"],
                                              link=Path(spec["port"]), config=board_config,
                                              extra=["--motor-speed", "1000"] if automation else None))
        if http is not None:  # the network sensors are up already too
            self.simulator = start_process(scope, "simulator", [
                PYTHON, "-m", "firmware.emulator.network", "--profile", http.profile, "--port", str(simulator_port),
                "--count", str(http.endpoints)], track="simulator")
            from testkit.helpers import wait_for

            wait_for(lambda: _answers(f"http://127.0.0.1:{simulator_port}/d0/_sim/state"), timeout=20,
                     interval=0.05, message="the network simulator")
        if automation:  # loads its model before the cold-start clock
            install_default_model(scope, self.env)
            self.ml_inference = start_service(scope, "ml_inference", self.doc, self.env, ready_timeout=180,
                                              healthy=True)
        # Cold start: from launching the first service to every device online and the bridge
        # online (the boards are already running, as they would be at a container start).
        launched = time.perf_counter()
        self.serial_handler = start_service(scope, "serial_handler", self.doc, self.env)
        if http is not None:
            self.http_poller = start_service(scope, "http_poller", self.doc, self.env)
        self.aggregator = start_service(scope, "state_aggregator", self.doc, self.env)
        self.bridge = start_bridge(scope, self.env, self.broker, INSTANCE, BASE)
        self.wait_online()
        self.cold_start_s = time.perf_counter() - launched
        self.probe = MqttClient(self.broker.port, "stack-probe", max_inflight=1000)
        scope.cleanup.callback(self.probe.close)
        self.processes = {name: list(pids) for name, pids in scope.tracked.items()}

    def wait_online(self, timeout: float = 60.0) -> None:
        """Every board's devices online as the aggregator sees them (a board says hello first)."""
        from testkit.helpers import wait_for

        wanted = {d["device_id"] for d in self.doc["devices"]}

        def all_online() -> bool:
            body = self.aggregator.get("/devices").json()
            items = body.get("devices", body) if isinstance(body, dict) else body
            online = {d.get("device_id") for d in items if isinstance(d, dict) and d.get("online")}
            return wanted <= online

        wait_for(all_online, timeout=timeout, interval=0.1, message="every bench device online")

    def track_into(self, ctx: Context) -> None:
        for name, pids in self.processes.items():
            for pid in pids:
                ctx.track(name, pid)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def shared_stack(ctx: Context, boards: int = 4) -> Stack:
    """The invocation's stack (started by the first scenario that asks), tracked for ``ctx``.

    A stack that could not start is remembered, so every later scenario reports the same reason
    instead of trying again."""
    def start(scope: SharedScope) -> Stack | BaseException:
        try:
            return Stack(scope, boards)
        except (NotAvailable, Exception) as exc:  # noqa: BLE001 - re-raised for every scenario below
            return exc

    stack = ctx.shared(f"stack-{boards}", start)
    if isinstance(stack, BaseException):
        raise stack
    stack.track_into(ctx)
    return stack
