"""An instance on disk for a program started as a subprocess, and ports held by someone else.

    env = write_instance(tmp_path, services=service_addresses(state_aggregator=taken))
    subprocess.run([sys.executable, "-m", "services.state_aggregator"], env=env, ...)
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from shared.config import DEFAULT_PORTS
from testkit.example import example_document
from testkit.helpers import free_port


def service_addresses(**ports: int) -> dict[str, dict[str, Any]]:
    """``config.services`` with every service on its own free loopback port, unless ``ports`` says which."""
    return {name: {"host": "127.0.0.1", "port": ports.get(name) or free_port()} for name in DEFAULT_PORTS}


def write_instance(directory: Path, **config: Any) -> dict[str, str]:
    """The example instance with ``config`` merged in, written as
    ``<directory>/instances/sensor_hub_01.json``; returns the environment that makes a program
    load it (INSTANCE_NAME, INSTANCES_DIR, DATA_DIR)."""
    doc = example_document()
    doc["config"].update(config)
    instances = directory / "instances"
    instances.mkdir(exist_ok=True)
    (instances / "sensor_hub_01.json").write_text(json.dumps(doc), encoding="utf-8")
    return {**os.environ, "INSTANCE_NAME": "sensor_hub_01", "INSTANCES_DIR": str(instances),
            "DATA_DIR": str(directory / "data"), "LOG_FORMAT": "human", "LOG_LEVEL": "INFO"}


class HeldPorts:
    """Ports on 127.0.0.1 that plain listening sockets hold (another program, as far as a service
    can tell) until ``close()``."""

    def __init__(self) -> None:
        self._sockets: list[socket.socket] = []

    def take(self) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        self._sockets.append(sock)
        return sock.getsockname()[1]

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
