"""``python -m shared.preflight``, as the container's entrypoint runs it before supervisord: every
problem at once, one line each, and an exit status that says which kind."""
from __future__ import annotations

import json
import subprocess
import sys

from shared.ports import PORT_UNAVAILABLE_EXIT
from shared.preflight import CONFIG_INVALID_EXIT
from testkit.example import ROOT
from testkit.instance_dir import service_addresses, write_instance


def preflight(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.preflight"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_an_instance_that_can_start_passes_with_its_addresses(tmp_path):
    addresses = service_addresses()
    done = preflight(write_instance(tmp_path, services=addresses))
    assert done.returncode == 0 and done.stderr == ""
    port = addresses["state_aggregator"]["port"]
    assert done.stdout.startswith("preflight: instance sensor_hub_01 (") and "can start" in done.stdout
    assert f"state_aggregator 127.0.0.1:{port}" in done.stdout


def test_every_taken_port_is_reported_at_once(tmp_path, held_ports):
    serial, aggregator = held_ports.take(), held_ports.take()
    addresses = service_addresses(serial_handler=serial, state_aggregator=aggregator)
    done = preflight(write_instance(tmp_path, services=addresses))
    assert done.returncode == PORT_UNAVAILABLE_EXIT and done.stdout == ""
    instance_file = tmp_path / "instances" / "sensor_hub_01.json"
    assert done.stderr.splitlines() == [
        f"preflight: serial_handler: 127.0.0.1:{serial} is already in use (another sensor-hub instance or "
        f"another program); choose a free port in config.services.serial_handler.port of {instance_file}",
        f"preflight: state_aggregator: 127.0.0.1:{aggregator} is already in use (another sensor-hub instance or "
        f"another program); choose a free port in config.services.state_aggregator.port of {instance_file}",
        "preflight: 2 services cannot listen; the instance does not start",
    ]


def test_a_config_that_does_not_validate_is_reported_field_by_field(tmp_path):
    ports = service_addresses()
    ports["http_poller"]["port"] = ports["serial_handler"]["port"]
    env = write_instance(tmp_path, services=ports)
    path = tmp_path / "instances" / "sensor_hub_01.json"
    doc = json.loads(path.read_text())
    doc["config"]["serial_ports"][0]["baudrate"] = 11520
    path.write_text(json.dumps(doc))
    done = preflight(env)
    assert done.returncode == CONFIG_INVALID_EXIT and done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[-1] == "preflight: 2 config problems; the instance does not start"
    assert lines[0].startswith(f"preflight: {path}: config.serial_ports[0].baudrate: 11520 is not one of")
    assert lines[1] == (f"preflight: {path}: config.services.http_poller.port: {ports['serial_handler']['port']} "
                        "is already used by serial_handler")


def test_an_instance_that_is_not_there_is_a_config_problem(tmp_path):
    env = write_instance(tmp_path, services=service_addresses())
    done = preflight({**env, "INSTANCE_NAME": "nobody"})
    assert done.returncode == CONFIG_INVALID_EXIT
    assert done.stderr.splitlines()[0].startswith("preflight: ") and "instance file not found" in done.stderr
