"""The whole connector as real processes, for end-to-end and soak tests: an emulated board on a
pty, ``python -m services.serial_handler``, ``python -m services.state_aggregator`` and
``python mqtt_bridge.py``, and a private Mosquitto (with persistence, so a watching subscriber
keeps its session across a broker outage). ``kill()`` is kill -9 of one program, ``spawn()``
starts it again (the chaos tests)."""
from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests

from testkit.broker import MosquittoBroker
from testkit.emulator_process import EmulatorProcess
from testkit.example import ROOT, deep_merge, example_document
from testkit.helpers import free_port, wait_for
from testkit.simulator import SimulatorProcess

BOARD = "living_room_esp32"
AUTOMATION_SWITCH = "living_window_auto_switch"


class ConnectorStack:
    """One board's devices end to end; ``interval_ms`` is the board's reading period.

    With ``http=True`` the example instance's HTTP endpoints are in it too: a simulated ESPHome
    and sensor-hub device (``self.simulators`` by endpoint id, readings pinned, polled every
    ``poll_interval`` s) behind ``python -m services.http_poller``.

    With ``automation`` (a model file, e.g. the tests' ``default_model``) the example window
    automation runs too: ``python -m services.ml_inference`` with a copy of that model, the
    automation fed by the stack's own sensors, and its switch ``AUTOMATION_SWITCH``.

    With ``scripted=True`` the board's devices are played on serial_handler's port by
    ``python -m testkit.scripted_handler`` instead (no emulated board, no serial
    handler): its ``POST /emit`` (``self.handler_url``) sends readings and button events with
    unique marks at a steady rate, which is what the chaos tests count on MQTT."""

    def __init__(self, tmp: Path, interval_ms: int = 600_000, http: bool = False,
                 poll_interval: float = 0.5, automation: Path | None = None, scripted: bool = False) -> None:
        self.processes: list[subprocess.Popen] = []
        self.simulators: dict[str, SimulatorProcess] = {}
        self.emulator: EmulatorProcess | None = None
        if not scripted:
            board_dir = tmp / "board"
            board_dir.mkdir()
            # A short motion hold, so every PIR change the test makes is its own started/stopped event.
            (board_dir / "config.json").write_text(json.dumps({"config": {"motion_hold_ms": 50}}))
            self.emulator = EmulatorProcess("--seed", "1", "--motion-rate", "0", "--interval-ms", str(interval_ms),
                                            "--board-id", BOARD, "--motor-speed", "1000",
                                            "--state-dir", str(board_dir))
        self.broker = MosquittoBroker(persistence=True)
        self.broker.start()
        ports = {n: {"host": "127.0.0.1", "port": free_port()}
                 for n in ("serial_handler", "http_poller", "state_aggregator", "ml_inference")}
        doc = deep_merge(copy.deepcopy(example_document()), {"config": {
            "services": ports, "http_endpoints": [],
            "serial_ports": [{"board_id": BOARD, "name": "Living room ESP32",
                              "port": str(self.emulator.link) if self.emulator else "/dev/ttyUSB-scripted",
                              "command_timeout": 5, "silence_timeout": 30}]}})
        if http:
            endpoints = copy.deepcopy(example_document()["config"]["http_endpoints"])
            for endpoint in endpoints:
                simulator = SimulatorProcess(endpoint["profile"], "--no-drift", "--cover-speed", "1000")
                self.simulators[endpoint["endpoint_id"]] = simulator
                endpoint.update(url=simulator.url, poll_interval=poll_interval, timeout=2)
            doc["config"]["http_endpoints"] = endpoints
            doc["devices"] = [d for d in doc["devices"] if "board" in d["source"] or "endpoint" in d["source"]]
        else:
            # Only the board's devices: the HTTP endpoints are not part of this stack.
            doc["devices"] = [d for d in doc["devices"] if "board" in d["source"]]
        if automation is None:
            doc["config"]["window_automations"] = []
        else:
            spec = doc["config"]["window_automations"][0]
            present = {d["device_id"] for d in doc["devices"]}
            spec["sensors"] = {role: device for role, device in spec["sensors"].items() if device in present}
            doc["devices"].append({"device_id": AUTOMATION_SWITCH, "name": "Fresh air", "type": "switch",
                                   "source": {"automation": spec["automation_id"]}})
            (tmp / "data" / "models").mkdir(parents=True)
            shutil.copyfile(automation, tmp / "data" / "models" / "window.pt")
        (tmp / "sensor_hub_01.json").write_text(json.dumps(doc))
        self.env = {**os.environ, "INSTANCE_NAME": "sensor_hub_01", "INSTANCES_DIR": str(tmp),
                    "DATA_DIR": str(tmp / "data"), "LOG_LEVEL": "INFO", "MQTT_HOST": "127.0.0.1",
                    "MQTT_PORT": str(self.broker.port), "IOT2MQTT_PATH": str(tmp)}
        self.aggregator_url = f"http://127.0.0.1:{ports['state_aggregator']['port']}"
        self.urls = {name: f"http://127.0.0.1:{port['port']}" for name, port in ports.items()}
        self.log_path = tmp / "stack.log"
        self.log = open(self.log_path, "ab")
        self.handler_url = f"http://127.0.0.1:{ports['serial_handler']['port']}"
        if scripted:
            self.spawn("-m", "testkit.scripted_handler", str(ports["serial_handler"]["port"]),
                       str(tmp / "sensor_hub_01.json"))
        else:
            self.spawn("-m", "services.serial_handler")
        if http:
            self.spawn("-m", "services.http_poller")
        if automation is not None:
            self.spawn("-m", "services.ml_inference")
        self.aggregator = self.spawn("-m", "services.state_aggregator")
        wait_for(lambda: requests.get(self.aggregator_url + "/devices", timeout=2).json()["devices"][0], 60,
                 interval=0.1, message="aggregator up")
        self.bridge = self.spawn("mqtt_bridge.py")

    def spawn(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log)
        self.processes.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """kill -9 of one program: the process and its children, should it have any, at the
        same moment, as a crash or an OOM kill of the whole program would;
        returns when every one of them is gone."""
        victims = [proc.pid, *_children(proc.pid)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(10)
        wait_for(lambda: not any(_running(pid) for pid in victims), 10, message=f"{proc.args[1:]} gone")

    def close(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if self.emulator is not None:
            self.emulator.stop()
        for simulator in self.simulators.values():
            simulator.stop()
        self.broker.close()
        self.log.close()


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue  # the thread ended meanwhile
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
