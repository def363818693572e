"""Fixtures for the HTTP poller: simulated network sensors on loopback and the service in-process."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from firmware.emulator.network import NetworkSimulator
from services.http_poller.app import create_app
from services.http_poller.poller import HttpPoller
from shared.config import Settings
from testkit.helpers import wait_for
from testkit.served import ServedService
from tests.conftest import Started


def http_overlay(endpoints: dict[str, dict[str, Any]], devices: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An instance overlay with these endpoints (``{endpoint_id: http_endpoints fields}``) and
    devices (``{device_id: {"type", "endpoint", "key"?}}``); no boards, automations or groups."""
    eps = [{"endpoint_id": e, "name": f"Endpoint {e}", "poll_interval": 0.2, "timeout": 2, **fields}
           for e, fields in endpoints.items()]
    devs = []
    for device_id, d in devices.items():
        source = {"endpoint": d["endpoint"], **({"key": d["key"]} if "key" in d else {})}
        devs.append({"device_id": device_id, "type": d["type"], "source": source,
                     **({"enabled": d["enabled"]} if "enabled" in d else {})})
    return {"devices": devs, "groups": [],
            "config": {"serial_ports": [], "http_endpoints": eps, "window_automations": []}}


class Service(ServedService):
    """The HTTP poller served on loopback, with a follower recording its /events."""

    def __init__(self, settings: Settings, workers: int = 16) -> None:
        self.poller = HttpPoller(settings, workers=workers)
        self.app = create_app(settings, self.poller)
        super().__init__(self.app, self.poller, settings.api_token)

    def sensor(self, device_id: str) -> dict[str, Any]:
        return self.get(f"/sensor/{device_id}/cached").json()

    def endpoint(self, endpoint_id: str) -> dict[str, Any]:
        return self.get(f"/endpoints/{endpoint_id}").json()

    def wait_online(self, device_id: str, online: bool = True, timeout: float = 15.0) -> dict[str, Any]:
        return wait_for(lambda: (v := self.sensor(device_id))["online"] is online and v, timeout,
                        message=f"{device_id} {'online' if online else 'offline'}")

@pytest.fixture
def simulator(cleanup: Started) -> Callable[..., NetworkSimulator]:
    """``simulator("esphome", count=1, drift=False)`` -> a running in-process simulator."""
    def start(profile: str, **kwargs: Any) -> NetworkSimulator:
        kwargs.setdefault("drift", False)
        kwargs.setdefault("cover_speed", 1000.0)
        return cleanup.add(NetworkSimulator(profile, **kwargs).start())
    return start


@pytest.fixture
def service(make_settings: Callable[..., Settings], cleanup: Started) -> Callable[..., Service]:
    """``service(endpoints, devices)`` -> a running ``Service`` (see ``http_overlay``)."""
    def start(endpoints: dict[str, dict[str, Any]], devices: dict[str, dict[str, Any]], **kwargs: Any) -> Service:
        return cleanup.add(Service(make_settings(http_overlay(endpoints, devices)), **kwargs))
    return start


def sim_get(sim: NetworkSimulator, name: str = "") -> dict[str, Any]:
    base = f"{sim.base}/{name}" if name else sim.base
    return requests.get(f"{base}/_sim/state", timeout=10).json()


def sim_post(sim: NetworkSimulator, what: str, body: dict[str, Any], name: str = "") -> dict[str, Any]:
    base = f"{sim.base}/{name}" if name else sim.base
    response = requests.post(f"{base}/_sim/{what}", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()
