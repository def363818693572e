"""Fixtures for the bridge: a fake aggregator (real HTTP on loopback), settings pointing the
bridge at it and at the test's broker, an in-process bridge and a watching subscriber."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bridge.bridge import MqttBridge
from testkit.broker import MosquittoBroker
from testkit.fake_aggregator import FakeAggregator
from testkit.helpers import free_port
from testkit.mqtt_watch import Watcher
from tests.conftest import Started

BASE = "IoT2mqtt/v1/instances/sensor_hub_01"


@pytest.fixture
def agg_port() -> int:
    return free_port()


@pytest.fixture
def broker(fresh_mosquitto):
    """A broker of the test's own: retained messages of other tests never leak in."""
    return fresh_mosquitto


@pytest.fixture
def persistent_broker() -> Iterator[MosquittoBroker]:
    """A broker that keeps sessions across its own restart, so a test subscriber misses nothing."""
    broker = MosquittoBroker(persistence=True)
    broker.start()
    yield broker
    broker.close()


@pytest.fixture
def bridge_settings(make_settings, broker, agg_port):
    def build(env: dict[str, str] | None = None, overrides: dict | None = None, broker_override=None):
        target = broker_override or broker
        environment = {"MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(target.port)}
        environment.update(env or {})
        doc = {"update_interval": 60, "config": {"services": {"state_aggregator": {"port": agg_port}}}}
        from testkit.example import deep_merge
        deep_merge(doc, overrides or {})
        return make_settings(doc, env=environment)
    return build


@pytest.fixture
def aggregator(bridge_settings, agg_port) -> Iterator[FakeAggregator]:
    agg = FakeAggregator(bridge_settings(), port=agg_port).start()
    yield agg
    agg.stop()


@pytest.fixture
def start_bridge(bridge_settings, cleanup: Started) -> Callable[..., MqttBridge]:
    def start(env: dict[str, str] | None = None, overrides: dict | None = None, broker=None,
              **kwargs) -> MqttBridge:
        return cleanup.add(MqttBridge(bridge_settings(env, overrides, broker), reconnect=(1, 2), **kwargs).start())

    return start


@pytest.fixture
def watcher(broker) -> Iterator[Watcher]:
    w = Watcher(broker.port, ["IoT2mqtt/#", "homeassistant/#"]).start()
    yield w
    w.stop()
