"""Fixtures: an aggregator served over real HTTP, in front of scripted handler services."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests

from services.state_aggregator.aggregator import StateAggregator
from services.state_aggregator.app import create_app
from shared.config import Settings
from shared.server import ThreadedServer, run_in_thread
from testkit.helpers import free_port, header_of, wait_for
from testkit.scripted_handler import ScriptedHandler
from tests.conftest import Started

SERIAL_DEVICES = [("living_temperature", "temperature"), ("living_humidity", "humidity"),
                  ("living_motion", "motion"), ("living_sound", "sound_level"),
                  ("living_battery", "battery"), ("living_window", "window"), ("living_led", "led")]


def service_ports() -> dict[str, dict[str, Any]]:
    return {name: {"host": "127.0.0.1", "port": free_port()}
            for name in ("serial_handler", "http_poller", "state_aggregator", "ml_inference")}


class AggregatorUnderTest:
    """The aggregator app on loopback: ``.url``, ``.get()``, ``.post()``, ``.aggregator``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Followers reconnect quickly so restarts are noticed well within the test deadlines.
        self.aggregator = StateAggregator(settings, follower_backoff=(0.05, 0.5))
        self.app = create_app(settings, self.aggregator)
        self.server: ThreadedServer = run_in_thread(self.app)
        self.url = self.server.url
        self.http = requests.Session()
        self.http.headers.update(header_of(settings.api_token))  # the instance's token, for its POSTs

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url + path, timeout=20, **kwargs)

    def device(self, device_id: str) -> dict[str, Any]:
        return self.get(f"/device/{device_id}").json()

    def listed(self, **params: Any) -> dict[str, dict[str, Any]]:
        return {d["device_id"]: d for d in self.get("/devices", params=params).json()["devices"]}

    def close(self) -> None:
        self.server.stop()
        self.aggregator.stop()
        self.http.close()


class EventTap:
    """Reads an SSE stream in a thread and keeps the parsed events (kind, data, id)."""

    def __init__(self, url: str, last_event_id: str | None = None) -> None:
        from shared.sse import SSEParser

        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.response = requests.get(url + "/events", stream=True, timeout=(5, 30), headers=headers)
        self.events: list[tuple[str, dict[str, Any], str | None]] = []
        self.lock = threading.Lock()
        self._parser = SSEParser()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            raw = self.response.raw
            while True:
                chunk = raw.read1(65536)
                if not chunk:
                    return
                for message in self._parser.feed(chunk):
                    if message.data is not None:
                        with self.lock:
                            self.events.append((message.event or "message", json.loads(message.data),
                                                message.id))
        except Exception:  # noqa: BLE001 - the stream was closed by the test
            return

    def matching(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [data for k, data, _ in self.events
                    if k == kind and all(data.get(f) == v for f, v in fields.items())]

    def close(self) -> None:
        from shared.sse import _abort  # wakes the reading thread at once

        _abort(self.response)
        self._thread.join(5)


@pytest.fixture
def build_aggregator(make_settings, cleanup: Started) -> Callable[..., AggregatorUnderTest]:
    def build(services: dict[str, Any], disabled: tuple[str, ...] = (), **config: Any) -> AggregatorUnderTest:
        """``disabled``: device ids to switch off in the instance config."""
        from testkit.example import example_document

        devices = [{**d, "enabled": d["device_id"] not in disabled} for d in example_document()["devices"]]
        settings = make_settings({"devices": devices, "config": {"services": services, **config}})
        return cleanup.add(AggregatorUnderTest(settings))

    return build


@pytest.fixture
def scripted_serial(cleanup: Started) -> Callable[[int], ScriptedHandler]:
    """``scripted_serial(port)``: a scripted handler playing serial_handler's devices."""

    def start(port: int) -> ScriptedHandler:
        handler = ScriptedHandler(SERIAL_DEVICES, port).start()
        return cleanup.add(handler, stop=lambda: (handler.stop(), handler.publisher.close()))

    return start


@pytest.fixture
def rig(build_aggregator, scripted_serial) -> tuple[AggregatorUnderTest, ScriptedHandler]:
    """The aggregator over real HTTP in front of a scripted serial handler, its devices online."""
    services = service_ports()
    handler = scripted_serial(services["serial_handler"]["port"])
    under_test = build_aggregator(services)
    wait_for(lambda: under_test.listed()["living_window"]["online"], 15, message="serial devices online")
    return under_test, handler
