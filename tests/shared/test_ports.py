"""A port that another program (another sensor-hub instance, another connector) already holds is
refused before gunicorn starts, in one line that names the setting to change."""
from __future__ import annotations

import errno
import subprocess
import sys

from shared.ports import PORT_UNAVAILABLE_EXIT, listen_error, port_problem, port_problems
from testkit.example import ROOT
from testkit.helpers import free_port
from testkit.instance_dir import service_addresses, write_instance


def test_a_free_port_can_be_listened_on_and_a_held_one_cannot(held_ports):
    assert listen_error("127.0.0.1", free_port()) is None
    error = listen_error("127.0.0.1", held_ports.take())
    assert error is not None and error.errno == errno.EADDRINUSE


def test_the_problem_names_the_service_the_address_and_the_setting(make_settings, held_ports):
    taken = held_ports.take()
    settings = make_settings({"config": {"services": service_addresses(state_aggregator=taken)}})
    assert port_problem(settings, "serial_handler") is None
    assert port_problem(settings, "state_aggregator") == (
        f"state_aggregator: 127.0.0.1:{taken} is already in use (another sensor-hub instance or another program); "
        "choose a free port in config.services.state_aggregator.port of the instance file")


def test_every_clash_is_reported_at_once(make_settings, held_ports):
    first, second = held_ports.take(), held_ports.take()
    settings = make_settings({"config": {"services": service_addresses(serial_handler=first, ml_inference=second)}})
    problems = port_problems(settings)
    assert [p.split(":", 1)[0] for p in problems] == ["serial_handler", "ml_inference"]
    assert f"127.0.0.1:{second} is already in use" in problems[1]


def test_a_service_started_on_a_taken_port_exits_at_once_saying_what_to_change(tmp_path, held_ports):
    taken = held_ports.take()
    env = write_instance(tmp_path, services=service_addresses(state_aggregator=taken))
    done = subprocess.run([sys.executable, "-m", "services.state_aggregator"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == PORT_UNAVAILABLE_EXIT, done.stderr
    instance_file = tmp_path / "instances" / "sensor_hub_01.json"
    expected = (f"state_aggregator: 127.0.0.1:{taken} is already in use (another sensor-hub instance or another "
                f"program); choose a free port in config.services.state_aggregator.port of {instance_file}")
    lines = [line for line in done.stderr.splitlines() if expected in line]
    assert len(lines) == 1 and "CRITICAL" in lines[0], done.stderr  # one line, as `docker logs` shows it
    assert "Connection in use" not in done.stderr  # gunicorn never got to try
