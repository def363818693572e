"""`make run`: the generated supervisord config, and the whole connector started end to end."""
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
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests

from bridge.bridge import SHUTDOWN_DEADLINE_S
from scripts.run_local import plan, supervisord_config
from shared.config import load_settings
from shared.server import GRACEFUL_TIMEOUT_S
from testkit.example import ROOT, example_document
from testkit.helpers import free_port, wait_for
from testkit.mqtt_watch import Watcher


def _instance(tmp_path: Path) -> dict[str, str]:
    doc = example_document()
    doc["config"]["serial_ports"][0]["port"] = str(tmp_path / "tty" / "living_room_esp32")
    for name in doc["config"]["services"]:
        doc["config"]["services"][name]["port"] = free_port()
    (tmp_path / "instances").mkdir()
    (tmp_path / "instances" / "sensor_hub_01.json").write_text(json.dumps(doc))
    return {"INSTANCE_NAME": "sensor_hub_01", "INSTANCES_DIR": str(tmp_path / "instances"),
            "DATA_DIR": str(tmp_path / "data"), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def test_plan_starts_what_exists_and_says_what_it_does_not(tmp_path: Path):
    env = _instance(tmp_path)
    settings = load_settings(env)
    the_plan = plan(settings, env)
    names = [p.name for p in the_plan.programs]
    assert names[0] == "mosquitto"
    assert "emulator-living_room_esp32" in names
    for service in ("serial_handler", "state_aggregator", "http_poller", "ml_inference"):
        built = (ROOT / "services" / service / "__main__.py").exists()
        assert (service in names) == built
        if not built:
            assert any(n.startswith(f"{service}: not started") for n in the_plan.notes)
    config = supervisord_config(the_plan)
    assert "[program:mosquitto]" in config and "stdout_logfile_maxbytes=0" in config
    assert f'MQTT_PORT="{the_plan.mqtt_port}"' in config


def test_config_stops_the_services_together_and_never_kills_a_program_within_its_deadline(tmp_path: Path):
    """supervisord stops one group at a time, and each program outside a [group:] is a group of
    its own: the services stop together after the bridge, then the simulated devices."""
    import configparser

    env = _instance(tmp_path)
    parser = configparser.RawConfigParser()
    parser.read_string(supervisord_config(plan(load_settings(env), env)))
    services = [n for n in ("serial_handler", "http_poller", "state_aggregator", "ml_inference")
                if parser.has_section(f"program:{n}")]
    assert parser.get("group:services", "programs").split(",") == services
    assert parser.get("group:devices", "programs").startswith("emulator-living_room_esp32")
    priority = {s: parser.getint(s, "priority") for s in ("group:services", "group:devices", "program:mqtt_bridge",
                                                            "program:mosquitto")}
    # stopped in reverse: bridge, services, devices, broker
    assert priority["program:mqtt_bridge"] > priority["group:services"] > priority["group:devices"] \
        > priority["program:mosquitto"]
    for section in (s for s in parser.sections() if s.startswith("program:")):
        assert max(SHUTDOWN_DEADLINE_S, GRACEFUL_TIMEOUT_S) < parser.getfloat(section, "stopwaitsecs") <= 5
        assert parser.getboolean(section, "killasgroup"), section  # nothing a program started outlives it


def test_plan_uses_the_configured_broker_and_real_devices(tmp_path: Path):
    env = _instance(tmp_path) | {"MQTT_HOST": "127.0.0.1", "MQTT_PORT": "1999"}
    settings = load_settings(env)
    the_plan = plan(settings, env)
    assert "mosquitto" not in [p.name for p in the_plan.programs]
    assert the_plan.mqtt_port == 1999
    no_emulation = plan(settings, env | {"EMULATE": "0"})
    assert not [p for p in no_emulation.programs if p.name.startswith("emulator-")]


def test_invalid_config_stops_the_start_with_the_field_named(tmp_path: Path):
    env = _instance(tmp_path)
    path = tmp_path / "instances" / "sensor_hub_01.json"
    doc = json.loads(path.read_text())
    doc["config"]["serial_ports"][0]["baudrate"] = 11520
    path.write_text(json.dumps(doc))
    result = subprocess.run([sys.executable, "-m", "scripts.run_local"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "config.serial_ports[0].baudrate: 11520 is not one of" in result.stderr


@pytest.mark.slow
def test_make_run_brings_the_connector_up_end_to_end(tmp_path: Path):
    if not (ROOT / "mqtt_bridge.py").exists() or not (ROOT / "services" / "state_aggregator").exists():
        pytest.fail("make run must start the aggregator and the bridge; they are missing")
    env = _instance(tmp_path) | {"PRIVATE_BROKER_PORT": str(free_port())}
    settings = load_settings(env)
    the_plan = plan(settings, env)
    process = subprocess.Popen([sys.executable, "-m", "scripts.run_local"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    aggregator = settings.service("state_aggregator").url
    statuses: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="run-local-test")
    try:
        def devices_online() -> bool:
            devices = requests.get(f"{aggregator}/devices", timeout=2).json()
            devices = devices.get("devices", devices) if isinstance(devices, dict) else devices
            board = [d for d in devices if d["device_id"] == "living_temperature"]
            return bool(board) and board[0]["online"]

        wait_for(devices_online, timeout=60, message="the emulated board's devices online on the aggregator")
        client.on_message = lambda c, u, m: statuses.append(m.payload)
        wait_for(lambda: client.connect("127.0.0.1", the_plan.mqtt_port) == 0, timeout=20)
        client.subscribe("IoT2mqtt/v1/instances/sensor_hub_01/status", qos=1)
        client.loop_start()
        wait_for(lambda: b"online" in statuses, timeout=30, message="status online on the private broker")
    finally:
        client.loop_stop()
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert process.returncode == 0, output[-3000:]
    assert "MQTT broker: private mosquitto" in output


def test_plan_simulates_http_endpoints_on_loopback_with_a_free_port(tmp_path: Path):
    env = _instance(tmp_path)
    path = tmp_path / "instances" / "sensor_hub_01.json"
    doc = json.loads(path.read_text())
    free = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    doc["config"]["http_endpoints"][0]["url"] = f"http://127.0.0.1:{free}"
    doc["config"]["http_endpoints"][1]["url"] = f"http://localhost:{taken}"
    doc["config"]["http_endpoints"].append({"endpoint_id": "far", "url": "http://sensor.example:80", "profile": "json"})
    path.write_text(json.dumps(doc))
    try:
        the_plan = plan(load_settings(env), env)
    finally:
        busy.close()
    simulators = {p.name: p.command for p in the_plan.programs if p.name.startswith("simulator-")}
    assert list(simulators) == ["simulator-balcony_weather"]
    command = simulators["simulator-balcony_weather"]
    assert command[command.index("--profile") + 1] == "esphome" and command[command.index("--port") + 1] == str(free)
    assert any("kitchen_climate: polling" in n and "listens there already" in n for n in the_plan.notes)
    assert any(n.startswith("endpoint far: polling http://sensor.example:80") for n in the_plan.notes)
    assert not [p for p in plan(load_settings(env), env | {"EMULATE": "0"}).programs
                if p.name.startswith("simulator-")]


def _session_processes(session: int) -> dict[int, str]:
    """Live processes of a session (pid -> start time, so a reused pid is not mistaken for one)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == session and fields[0] != "Z":
            found[int(entry.name)] = fields[19]
    return found


@pytest.mark.slow
def test_make_run_stops_within_5_s_of_sigterm_with_offline_published_and_nothing_killed(
        tmp_path: Path, fresh_mosquitto, default_model: Path):
    """`docker stop` waits 10 s, then kills; the connector stops in well under half of that:
    every event stream open, the bridge on the broker, one SIGTERM to supervisord."""
    env = _instance(tmp_path) | {"MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(fresh_mosquitto.port)}
    path = tmp_path / "instances" / "sensor_hub_01.json"
    doc = json.loads(path.read_text())
    for endpoint in doc["config"]["http_endpoints"]:  # simulated on free ports: no clash with a `make run`
        endpoint["url"] = f"http://127.0.0.1:{free_port()}"
    path.write_text(json.dumps(doc))
    (tmp_path / "data" / "models").mkdir(parents=True)
    shutil.copyfile(default_model, tmp_path / "data" / "models" / "window.pt")  # ml_inference ready at once
    settings = load_settings(env)
    status = f"IoT2mqtt/v1/instances/{settings.instance_id}/status"
    watcher = Watcher(fresh_mosquitto.port, status).start()
    process = subprocess.Popen([sys.executable, "-m", "scripts.run_local"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    streams = []
    try:
        watcher.wait(status, lambda p: p == b"online", timeout=90)
        for name in ("serial_handler", "http_poller", "state_aggregator", "ml_inference"):
            url = settings.service(name).url + "/events"
            stream = wait_for(lambda url=url: requests.get(url, stream=True, timeout=10), timeout=30,
                              message=f"{url} streaming")
            assert stream.raw.read1(1024).startswith(b"retry:"), name  # connected, like `curl -N`
            streams.append(stream)
        stack = _session_processes(process.pid)  # supervisord and the programs (a service is one process)
        assert len(stack) >= 1 + 4 + 1, stack

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(30)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        watcher.stop()
    reader.join(10)
    text = b"".join(output).decode(errors="replace")
    assert returncode == 0, text[-3000:]
    assert took < 5, f"stopped in {took:.1f} s\n{text[-3000:]}"
    killed = [line for line in text.splitlines() if "SIGKILL" in line or "Perhaps out of memory" in line]
    assert not killed, killed
    for stream in streams:
        stream.raw.read()  # each stream ended properly, not cut by a dying worker
    left = {pid: start for pid, start in _session_processes(process.pid).items() if stack.get(pid) == start}
    assert not left, f"still running: {left}"
    assert "MQTT client stopped (flushed;" in text
    late = Watcher(fresh_mosquitto.port, status).start()  # what a controller connecting now is told
    try:
        assert late.wait(status, timeout=10) == b"offline"
    finally:
        late.stop()
