"""The HTTP poller as a real process behind the real aggregator and bridge: the example
instance's HTTP devices (a simulated ESPHome and sensor-hub device) online with their values,
a value change on the simulator reaching the aggregator's /events and MQTT, an endpoint that goes
away shown offline with its reason."""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import requests

from shared.sse import Event, EventFollower
from testkit.connector import ConnectorStack
from testkit.helpers import authorization, wait_for
from testkit.mqtt_watch import Watcher

pytestmark = pytest.mark.slow
BASE = "IoT2mqtt/v1/instances/sensor_hub_01"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Any:
    stack = ConnectorStack(tmp_path_factory.mktemp("http-e2e"), http=True, poll_interval=0.5)
    yield stack
    stack.close()


def devices(stack: ConnectorStack) -> dict[str, dict[str, Any]]:
    body = requests.get(f"{stack.aggregator_url}/devices?include=state", timeout=5).json()
    return {d["device_id"]: d for d in body["devices"]}


def test_http_devices_are_online_on_the_aggregator_with_their_values(stack: ConnectorStack):
    # The board's devices beside them: online once its first reading is in (up to its interval
    # on a loaded machine), so wait for them as well rather than assume they came first.
    wanted = ("balcony_temperature", "kitchen_humidity", "living_temperature")
    wait_for(lambda: all(devices(stack)[d]["online"] for d in wanted), 60,
             message="the HTTP devices and the board's online on the aggregator")
    seen = devices(stack)
    assert seen["balcony_temperature"]["service"] == "http_poller"
    assert seen["balcony_temperature"]["state"] == {"temperature": 21.0}
    assert seen["kitchen_humidity"]["state"] == {"humidity": 45.0}
    assert seen["living_temperature"]["service"] == "serial_handler"
    health = requests.get(f"{stack.aggregator_url}/health", timeout=10).json()
    assert health["services"]["http_poller"]["status"] == "ok"


def test_a_value_change_on_the_device_reaches_the_aggregator_events_and_mqtt(stack: ConnectorStack):
    wait_for(lambda: devices(stack)["balcony_temperature"]["online"], 60, message="balcony online")
    events: list[Event] = []
    lock = threading.Lock()

    def record(event: Event) -> None:
        with lock:
            events.append(event)

    follower = EventFollower(f"{stack.aggregator_url}/events", record, read_timeout=10).start()
    watcher = Watcher(stack.broker.port, [f"{BASE}/devices/balcony_temperature/#"]).start()
    try:
        wait_for(lambda: follower.connected, 20, message="following the aggregator")
        stack.simulators["balcony_weather"].set({"temperature": 27.5})

        def changed() -> Event | None:
            with lock:
                return next((e for e in events if e.kind == "state" and e.data["device_id"] == "balcony_temperature"
                             and e.data["state"].get("temperature") == 27.5), None)

        event = wait_for(changed, 20, message="the new temperature on the aggregator's /events")
        assert event.data["source"] == "http_poller"
        watcher.wait(f"{BASE}/devices/balcony_temperature/state/temperature", lambda p: p == b"27.5", timeout=30)
        state = json.loads(watcher.wait(f"{BASE}/devices/balcony_temperature/state",
                                        lambda p: json.loads(p)["state"].get("temperature") == 27.5, timeout=30))
        assert state["device_id"] == "balcony_temperature"
    finally:
        watcher.stop()
        follower.stop()


def test_a_read_now_command_and_a_fresh_read_through_the_aggregator(stack: ConnectorStack):
    wait_for(lambda: devices(stack)["kitchen_humidity"]["online"], 60, message="kitchen online")
    stack.simulators["kitchen_climate"].set({"humidity": 52.5})
    fresh = requests.get(f"{stack.aggregator_url}/device/kitchen_humidity?fresh=1", timeout=10).json()
    assert fresh["state"] == {"humidity": 52.5}
    reply = requests.post(f"{stack.aggregator_url}/device/kitchen_humidity/cmd", json={"values": {}, "id": "r-1"},
                          timeout=10, headers=authorization(stack.env["DATA_DIR"]))
    assert reply.status_code == 200 and reply.json()["result"] == {"humidity": 52.5}


def test_an_endpoint_that_goes_away_shows_offline_with_its_reason(stack: ConnectorStack):
    wait_for(lambda: devices(stack)["kitchen_humidity"]["online"], 60, message="kitchen online")
    stack.simulators["kitchen_climate"].stop()
    wait_for(lambda: devices(stack)["kitchen_humidity"]["reason"] == "connection refused", 30,
             message="kitchen_humidity offline: connection refused")
    assert devices(stack)["balcony_temperature"]["online"]
