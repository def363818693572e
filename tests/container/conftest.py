"""The image, built from the real Dockerfile and run the way the IoT2MQTT platform runs it.

Session fixtures: a Docker engine (the machine's, or a private dockerd; scripts/image.py), the
image, a private Mosquitto on loopback, and a folder laid out like the platform's: a stand-in
for its own ``shared/`` package, the connector's ``instances/`` and an ``.env``. Containers run
with the platform's flags (docs/container.md): host network, restart unless-stopped, the
platform's environment and its three read-only mounts; /app/data is the image's volume (the
platform mounts none, so Docker gives each container an anonymous one).

Only `make container-test` runs these (marker ``container``).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scripts.image import DockerEngine, build, connect_engine
from testkit.broker import MosquittoBroker
from testkit.emulator_process import EmulatorProcess
from testkit.example import ROOT
from testkit.helpers import free_port, wait_for
from testkit.mqtt_watch import Watcher
from testkit.setup_flow import default_answers, render_instance

IMAGE = "sensor-hub:test"
DIALOUT_GID = 20  # Debian's dialout group, on the host and in the image
# What the platform's own shared/ holds (IoT2MQTT's connectors import these); none of them is ours.
PLATFORM_SHARED = ("__init__.py", "base_connector.py", "mqtt_client.py", "discovery.py", "utils.py")


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    engine = connect_engine()
    yield engine
    for container in engine.docker("ps", "-aq", "--filter", "label=sensor-hub-test", check=False) \
            .stdout.decode().split():
        engine.docker("rm", "-f", "-v", container, check=False)
    engine.stop()


@pytest.fixture(scope="session")
def image(engine: DockerEngine) -> str:
    build(engine, IMAGE)
    return IMAGE


@pytest.fixture(scope="session")
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(persistence=True) as running:
        yield running


@pytest.fixture(scope="session")
def watcher(broker: MosquittoBroker) -> Iterator[Watcher]:
    watch = Watcher(broker.port, "IoT2mqtt/#").start()
    yield watch
    watch.stop()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, broker: MosquittoBroker) -> Path:
    """The platform's folder for this connector: its shared/ stand-in, instances/ and .env."""
    root = tmp_path_factory.mktemp("iot2mqtt")
    shared = root / "shared"
    shared.mkdir()
    for name in PLATFORM_SHARED:
        (shared / name).write_text(f'"""Stand-in for the platform\'s {name}."""\nPLATFORM = True\n')
    (root / "instances").mkdir()
    (root / ".env").write_text(f"MQTT_HOST=127.0.0.1\nMQTT_PORT={broker.port}\nMQTT_BASE_TOPIC=IoT2mqtt\n"
                               "LOG_LEVEL=INFO\n")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the image's non-root user
    return root


def instance_document(instance_id: str, ports: dict[str, int], board: str = "board") -> dict[str, Any]:
    """The instance file the platform's setup flow (setup.json) renders for a board on
    /dev/ttyUSB0, with its own four ports: what a user deploys."""
    flow = next(f for f in json.loads((ROOT / "setup.json").read_text())["flows"] if f.get("default"))
    answers = default_answers(flow)
    answers["details"].update(instance_id=instance_id, friendly_name=instance_id)
    answers["board"].update(board_id=board, port="/dev/ttyUSB0")
    answers["advanced"].update({f"{name}_port": port for name, port in ports.items()}, command_timeout=5)
    return render_instance(flow, answers)


def free_ports() -> dict[str, int]:
    return {name: free_port() for name in ("serial_handler", "http_poller", "state_aggregator", "ml_inference")}


@dataclass
class Instance:
    """One container of the connector, started like the platform starts it."""

    engine: DockerEngine
    instance_id: str
    ports: dict[str, int]
    name: str = ""
    board: EmulatorProcess | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return f"IoT2mqtt/v1/instances/{self.instance_id}"

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.engine.docker(*args, check=check)

    def exec(self, *command: str, check: bool = True) -> str:
        return self.docker("exec", self.name, *command, check=check).stdout.decode()

    def inspect(self, template: str) -> str:
        return self.docker("inspect", "--format", template, self.name).stdout.decode().strip()

    def logs(self) -> str:
        result = self.docker("logs", self.name, check=False)
        return (result.stdout + result.stderr).decode(errors="replace")

    def health(self) -> str:
        return self.inspect("{{if .State.Health}}{{.State.Health.Status}}{{end}}")

    def supervisorctl(self, *args: str) -> str:
        return self.exec("supervisorctl", "-c", "/opt/sensor-hub/app/supervisord.conf", *args)

    def program_pid(self, program: str) -> int:
        return int(self.supervisorctl("pid", supervisor_name(program)).strip())

    def remove(self) -> None:
        self.docker("rm", "-f", "-v", self.name, check=False)
        if self.board is not None:
            self.board.stop()


def supervisor_name(program: str) -> str:
    """supervisorctl's name of a program: the four services are in the group ``services``."""
    return program if program == "mqtt_bridge" else f"services:{program}"


def board_device(board: EmulatorProcess) -> str:
    """The emulator's pty, owned like a real USB serial adapter (root:dialout, 0660)."""
    os.chown(board.pty, 0, DIALOUT_GID)
    os.chmod(board.pty, 0o660)
    return board.pty


def start_instance(engine: DockerEngine, platform: Path, image: str, instance_id: str,
                   ports: dict[str, int] | None = None, document: dict[str, Any] | None = None,
                   board: bool = True, restart: str = "unless-stopped", extra_args: list[str] | None = None,
                   health_interval: str = "1s") -> Instance:
    ports = ports or free_ports()
    doc = document or instance_document(instance_id, ports)
    path = platform / "instances" / f"{instance_id}.json"
    path.write_text(json.dumps(doc, indent=2))
    path.chmod(0o644)
    instance = Instance(engine, instance_id, ports, name=f"sensor-hub-test-{instance_id}",
                        extra_args=list(extra_args or []))
    engine.docker("rm", "-f", "-v", instance.name, check=False)
    args = ["run", "-d", "--name", instance.name, "--label", "sensor-hub-test=1",
            "--network", "host", "--restart", restart,
            "-e", f"INSTANCE_NAME={instance_id}", "-e", "CONNECTOR_TYPE=sensor-hub", "-e", "MODE=production",
            "-e", "PYTHONUNBUFFERED=1", "-e", "IOT2MQTT_PATH=/app",
            "-v", f"{platform / 'shared'}:/app/shared:ro",
            "-v", f"{platform / 'instances'}:/app/instances:ro",
            "-v", f"{platform / '.env'}:/app/.env:ro",
            # the tests need the health status to follow within seconds, not the image's 10 s
            "--health-interval", health_interval, "--health-retries", "2", "--health-start-period", "60s"]
    if board:
        instance.board = EmulatorProcess("--board-id", "board", "--interval-ms", "1000")
        # A pseudo-terminal opens only through its own devpts mount (a device node made from its
        # numbers answers EIO), so the emulated board is bind-mounted where a real one would be
        # passed with --device; Docker's default device rules already allow ptys (char 136).
        args += ["-v", f"{board_device(instance.board)}:/dev/ttyUSB0"]
    args += instance.extra_args
    engine.docker(*args, image)
    return instance


def wait_online(watcher: Watcher, instance: Instance, timeout: float = 90.0) -> None:
    def online() -> bool:
        return watcher.last(f"{instance.topic}/status") == b"online"

    try:
        wait_for(online, timeout=timeout, interval=0.1, message=f"{instance.instance_id} online on MQTT")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- docker logs {instance.name} (last 4000 chars):\n"
                             f"{instance.logs()[-4000:]}") from None


def wait_healthy(instance: Instance, timeout: float = 90.0) -> None:
    wait_for(lambda: instance.health() == "healthy", timeout=timeout, interval=0.5,
             message=f"{instance.name} healthy (last: {instance.health()})")


def wait_exited(instance: Instance, timeout: float = 60.0) -> int:
    wait_for(lambda: instance.inspect("{{.State.Status}}") == "exited", timeout=timeout, interval=0.2,
             message=f"{instance.name} to exit")
    return int(instance.inspect("{{.State.ExitCode}}"))


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
