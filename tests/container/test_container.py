"""The image as IoT2MQTT runs it: two instances side by side, a third that clashes, stop,
recovery from killed programs, health that tells the truth, non-root and a read-only root.

One module-scoped pair of instances serves the tests that only look; tests that break
something start their own container.
"""
from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import pytest

from scripts.image import DockerEngine
from testkit.helpers import wait_for
from testkit.mqtt_watch import Watcher
from tests.container.conftest import (
    PLATFORM_SHARED,
    Instance,
    elapsed_since,
    free_ports,
    start_instance,
    wait_exited,
    wait_healthy,
    wait_online,
)

pytestmark = pytest.mark.container

PROGRAMS = ("serial_handler", "http_poller", "state_aggregator", "ml_inference", "mqtt_bridge")
# Each program is one process: a service is gunicorn's worker without a master (docs/architecture.md, "Memory").
EXPECTED_PROCESSES = {"services.serial_handler": 1, "services.http_poller": 1, "services.state_aggregator": 1,
                      "services.ml_inference": 1, "mqtt_bridge.py": 1}


def process_counts(instance: Instance) -> dict[str, int]:
    """Processes in the container by program (from /proc: the image has no ps)."""
    lines = instance.exec("sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true")
    found = {name: 0 for name in EXPECTED_PROCESSES}
    for word in lines.split():
        if word in found:
            found[word] += 1
    return found


@pytest.fixture(scope="module")
def pair(engine: DockerEngine, image: str, platform, watcher: Watcher) -> Iterator[tuple[Instance, Instance]]:
    """Instance A as the platform runs it; instance B the same plus --read-only and a tmpfs /tmp."""
    first = start_instance(engine, platform, image, "hub_a")
    second = start_instance(engine, platform, image, "hub_b", extra_args=["--read-only", "--tmpfs", "/tmp"])
    try:
        wait_online(watcher, first)
        wait_online(watcher, second)
        yield first, second
    finally:
        first.remove()
        second.remove()


@contextlib.contextmanager
def ready_instance(engine: DockerEngine, platform, image: str, watcher: Watcher,
                   instance_id: str) -> Iterator[Instance]:
    """A new instance, online on MQTT and healthy; removed afterwards."""
    instance = start_instance(engine, platform, image, instance_id)
    try:
        wait_online(watcher, instance)
        wait_healthy(instance)  # every program running, not still starting
        yield instance
    finally:
        instance.remove()


def command_round_trip(watcher: Watcher, instance: Instance, cmd_id: str) -> dict:
    topic = f"{instance.topic}/devices/board_led/cmd"
    watcher.publish(topic, {"id": cmd_id, "values": {"state": "on"}})
    return watcher.wait_json(f"{topic}/response", lambda doc: doc.get("cmd_id") == cmd_id, timeout=30)


def test_both_instances_are_online_and_drive_their_board(pair, watcher: Watcher):
    for instance in pair:
        response = command_round_trip(watcher, instance, f"{instance.instance_id}-led-1")
        assert response["status"] == "success", response
        watcher.wait_json(f"{instance.topic}/devices/board_led/state",
                          lambda doc: doc["state"].get("state") == "on", timeout=20)


def test_each_service_answers_with_its_own_instance(pair):
    for instance in pair:
        for name, port in instance.ports.items():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert f"x-instance-id: {instance.instance_id}".encode() in head.lower(), (name, head)
            assert json.loads(body)["instance_id"] == instance.instance_id, (name, body)


def test_the_platforms_shared_folder_hides_nothing_of_ours(pair):
    first, _ = pair
    listed = first.exec("ls", "/app/shared").split()
    assert sorted(listed) == sorted(PLATFORM_SHARED)
    where = first.exec("python", "-c", "import shared.config as c; print(c.__file__)").strip()
    assert where == "/opt/sensor-hub/app/shared/config/__init__.py"


def test_programs_run_as_a_non_root_user_in_dialout(pair):
    for instance in pair:
        ids = instance.exec("id")
        assert "uid=0(" not in ids and "(dialout)" in ids, ids
        assert instance.exec("stat", "-c", "%U", "/proc/1").strip() == "sensorhub"  # supervisord, PID 1


def test_read_only_root_file_system_is_refused_writes_but_runs(pair):
    _, read_only = pair
    result = read_only.docker("exec", read_only.name, "touch", "/opt/sensor-hub/app/x", check=False)
    assert result.returncode != 0 and b"Read-only file system" in result.stderr
    assert read_only.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    wait_healthy(read_only)


def test_a_third_instance_on_a_taken_port_exits_and_names_the_setting(engine, image, platform, pair):
    first, _ = pair
    ports = free_ports()
    ports["state_aggregator"] = first.ports["state_aggregator"]
    clash = start_instance(engine, platform, image, "hub_clash", ports=ports, board=False, restart="no")
    try:
        assert wait_exited(clash) != 0
        logs = clash.logs()
        assert "config.services.state_aggregator.port" in logs, logs[-2000:]
        assert f"{first.ports['state_aggregator']}" in logs
    finally:
        clash.remove()


def test_a_bad_instance_file_stops_the_container_with_field_errors(engine, image, platform):
    ports = free_ports()
    doc = {"instance_id": "hub_bad", "connector_type": "sensor-hub", "devices": [
        {"device_id": "t", "type": "thermometer", "source": {"board": "b"}}],
        "config": {"serial_ports": [{"board_id": "b", "port": "/dev/ttyUSB0", "baudrate": 11520}],
                   "services": {name: {"port": port} for name, port in ports.items()}}}
    bad = start_instance(engine, platform, image, "hub_bad", ports=ports, document=doc, board=False,
                         restart="no")
    try:
        assert wait_exited(bad) != 0
        logs = bad.logs()
        assert "config.serial_ports[0].baudrate: 11520 is not one of" in logs, logs[-2000:]
        assert "devices[0].type" in logs
    finally:
        bad.remove()


def test_health_follows_a_stopped_program_and_comes_back(engine, image, platform, watcher):
    with ready_instance(engine, platform, image, watcher, "hub_health") as instance:
        instance.supervisorctl("stop", "services:http_poller")
        wait_for(lambda: instance.health() == "unhealthy", timeout=30, interval=0.5, message="unhealthy")
        report = instance.exec("python", "-m", "scripts.healthcheck", check=False)
        assert "http_poller: STOPPED" in report, report
        instance.supervisorctl("start", "services:http_poller")
        wait_healthy(instance)


def test_kill_9_of_each_program_recovers(engine, image, platform, watcher):
    with ready_instance(engine, platform, image, watcher, "hub_kill") as instance:
        for program in PROGRAMS:
            before = instance.program_pid(program)
            watcher.clear()
            instance.exec("sh", "-c", f"kill -9 {before}")  # the image has no kill(1); sh's builtin
            wait_for(lambda p=program, b=before: instance.program_pid(p) not in (0, b), timeout=30, interval=0.2,
                     message=f"{program} restarted")
            # the health check itself, not Docker's last verdict, which lags by its interval
            wait_for(lambda: instance.docker("exec", instance.name, "python", "-m", "scripts.healthcheck",
                                             check=False).returncode == 0,
                     timeout=60, interval=0.5, message=f"healthy again after kill -9 of {program}")
        wait_online(watcher, instance)
        wait_healthy(instance)
        # No orphan of a killed program lives on (a worker left behind holds the serial port).
        wait_for(lambda: process_counts(instance) == EXPECTED_PROCESSES, timeout=30, interval=0.5,
                 message=f"only the programs' processes (seen {process_counts(instance)})")
        assert instance.inspect("{{.State.Status}}") == "running"
        assert instance.inspect("{{.RestartCount}}") == "0"
        response = command_round_trip(watcher, instance, "after-kills")
        assert response["status"] == "success", response


def test_a_program_that_cannot_start_ends_the_container_and_the_restart_policy_acts(
        engine, image, platform, watcher):
    with ready_instance(engine, platform, image, watcher, "hub_fatal") as instance:
        port = instance.ports["ml_inference"]
        pid = instance.program_pid("ml_inference")
        # Kill the service's whole process group and take its port from inside the container
        # (host network) before supervisord's restart can: every try fails now, until supervisord
        # gives up on it (FATAL). One detached process does both, so nothing comes between them.
        squatter = ("import os, socket, time\n"
                    f"os.killpg({pid}, 9)\n"
                    "s = socket.socket()\n"
                    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                    "while True:\n"
                    "    try:\n"
                    f"        s.bind(('127.0.0.1', {port})); break\n"
                    "    except OSError:\n"
                    "        time.sleep(0.005)\n"
                    "s.listen()\n"
                    "time.sleep(600)\n")
        instance.docker("exec", "-d", instance.name, "python", "-c", squatter)
        try:
            wait_for(lambda: int(instance.inspect("{{.RestartCount}}")) >= 1, timeout=90, interval=0.5,
                     message="the container to be restarted by its restart policy")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- docker logs (last 4000 chars):\n{instance.logs()[-4000:]}") from None
        assert "ml_inference could not start (FATAL" in instance.logs()
        watcher.clear()
        wait_online(watcher, instance)  # the squatter died with the old container


def test_docker_stop_within_5_s_publishes_offline_and_kills_nothing(engine, image, platform, watcher):
    with ready_instance(engine, platform, image, watcher, "hub_stop") as instance:
        started = time.monotonic()
        # -t 5: anything still running after 5 s is SIGKILLed and the exit code says so (137).
        instance.docker("stop", "-t", "5", instance.name)
        took = elapsed_since(started)
        assert instance.inspect("{{.State.ExitCode}}") == "0", f"stopped in {took:.1f} s, not cleanly"
        wait_for(lambda: watcher.last(f"{instance.topic}/status") == b"offline", timeout=10,
                 message="offline retained")
        logs = instance.logs()
        assert "SIGKILL" not in logs and "Perhaps out of memory" not in logs, logs[-3000:]
