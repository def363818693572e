"""Private MQTT brokers on free loopback ports, which tests may stop and restart: Mosquitto,
and nats-server's MQTT gateway (a second implementation, for the contract tests).

Every test run starts its own broker so that tests can break it on purpose (a broker outage
is something the bridge must survive) without touching the machine's broker.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from testkit.helpers import free_port, wait_for

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class _BrokerProcess:
    """A broker process bound to 127.0.0.1:<port>; ``stop``/``start`` keep the same port."""

    name = "broker"
    host = "127.0.0.1"
    binary: str
    port: int
    config_path: Path
    workdir: Path
    log_path: Path
    process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def is_accepting(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log)
        log.close()

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text(errors='replace')[-500:]}")
            return self.is_accepting()

        # The port can linger in TIME_WAIT after a stop; both brokers set SO_REUSEADDR, so they bind.
        wait_for(up, timeout=timeout, message=f"{self.name} on port {self.port}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.process = None
        wait_for(lambda: not self.is_accepting(), timeout=timeout, message=f"{self.name} to stop accepting")

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MosquittoBroker(_BrokerProcess):
    """A Mosquitto process bound to 127.0.0.1:<port>."""

    name = "mosquitto"

    def __init__(self, port: int | None = None, extra_config: str = "", persistence: bool = False):
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto); `make test` installs it")
        self.binary = binary
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="sensor-hub-mosquitto-"))
        # Started as root, mosquitto drops to its own user: without this it cannot write its
        # persistence file here ("Permission denied"), and a restart would lose every session.
        self.workdir.chmod(0o777)
        self.config_path = self.workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "log_dest stderr",
                 "log_type error", "log_type warning", f"persistence {'true' if persistence else 'false'}",
                 f"persistence_location {self.workdir}/", "max_queued_messages 100000",
                 # Without it a small publish waits ~40 ms behind the PUBACK before it (Nagle + delayed ACK).
                 "set_tcp_nodelay true"]
        self.config_path.write_text("\n".join(lines) + "\n" + extra_config)
        self.log_path = self.workdir / "mosquitto.log"


class NatsBroker(_BrokerProcess):
    """A private nats-server with its MQTT gateway on 127.0.0.1:<port> (``port``), its own client
    port and its own JetStream store in a temp dir: the machine's NATS (4222) is never used.

    The MQTT gateway needs JetStream (sessions, QoS 1 and retained messages live in streams) and
    a ``server_name``. Its limits, as they touch the contract (docs/mqtt.md, "Brokers"): no
    QoS 2, topics may not hold ``.`` or spaces (they become NATS subjects), and one client id
    per connection. ``stop``/``start`` keep the ports and the store, like a restarted broker.
    """

    name = "nats-server"

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            raise RuntimeError("nats-server is not installed (apt-get install nats-server)")
        self.binary = binary
        self.port = port or free_port()
        self.client_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="sensor-hub-nats-"))
        self.config_path = self.workdir / "nats.conf"
        self.config_path.write_text(
            f"server_name: sensor_hub_test_{self.port}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"jetstream {{ store_dir: \"{self.workdir / 'jetstream'}\", max_mem: 64MB, max_file: 256MB }}\n"
            f"mqtt {{ listen: 127.0.0.1:{self.port} }}\n")
        self.log_path = self.workdir / "nats.log"


BROKERS = {"mosquitto": MosquittoBroker, "nats": NatsBroker}
"""The real brokers the contract tests run against (docs/mqtt.md, "Brokers")."""


def make_broker(name: str):
    """A fresh, not yet started broker of the named kind."""
    return BROKERS[name]()
