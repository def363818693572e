"""Fixtures every test may use: a private broker, free ports, settings from a dict."""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from shared.api_token import ENV_NAME
from shared.config import Settings, settings_from_dict
from testkit.broker import BROKERS, MosquittoBroker, make_broker
from testkit.example import deep_merge, example_document
from testkit.helpers import TEST_API_TOKEN, free_port

# `make test` keeps property tests quick and deterministic on a loaded 2-core machine;
# `make fuzz` runs the same properties with many more examples.
hypothesis_settings.register_profile("default", max_examples=200, deadline=None, derandomize=True,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.register_profile("fuzz", max_examples=20_000, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def example_doc() -> dict[str, Any]:
    return example_document()


@pytest.fixture(scope="session")
def mosquitto_session() -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker()
    broker.start()
    yield broker
    broker.close()


@pytest.fixture
def mosquitto(mosquitto_session: MosquittoBroker) -> Iterator[MosquittoBroker]:
    """The session's private broker, running; a test that stops it gets it restarted after."""
    if not mosquitto_session.running:
        mosquitto_session.start()
    yield mosquitto_session
    if not mosquitto_session.running:
        mosquitto_session.start()


@pytest.fixture
def fresh_mosquitto() -> Iterator[MosquittoBroker]:
    """A broker of this test's own (clean retained store), on its own port."""
    broker = MosquittoBroker()
    broker.start()
    yield broker
    broker.close()


@pytest.fixture(params=sorted(BROKERS))
def any_broker(request) -> Iterator:
    """A fresh broker of the test's own, once per real broker the contract is tested against
    (Mosquitto, nats-server's MQTT gateway; testkit/broker.py). A module uses it by
    overriding ``broker``: ``def broker(any_broker): return any_broker``."""
    broker = make_broker(request.param)
    broker.start()
    yield broker
    broker.close()


class Started:
    """Things a test started (processes, servers, bridges), stopped in reverse order at teardown."""

    def __init__(self) -> None:
        self._stops: list[Callable[[], Any]] = []

    def add(self, thing: Any, stop: Callable[[], Any] | None = None) -> Any:
        self._stops.append(stop or getattr(thing, "stop", None) or thing.close)
        return thing

    def stop_all(self) -> None:
        while self._stops:
            self._stops.pop()()


@pytest.fixture
def cleanup() -> Iterator[Started]:
    """``cleanup.add(thing)`` returns ``thing`` and stops it (``stop()`` or ``close()``) after the test;
    factory fixtures use it so that whatever a test starts is gone when it ends, even on failure."""
    started = Started()
    yield started
    started.stop_all()


@pytest.fixture(scope="session")
def default_model(tmp_path_factory) -> Path:
    """ml_inference's default weights, trained once for the whole session (a few seconds);
    copy the file, never change it."""
    from services.ml_inference.train import write_default  # torch: only for the tests that ask

    path = tmp_path_factory.mktemp("model") / "window.pt"
    write_default(path)
    return path


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings from the example instance with ``overrides`` deep-merged into it.

    ``make_settings({"config": {"cache_ttl": 1}}, env={"MQTT_PORT": "1884"})``; lists are
    replaced, not merged. DATA_DIR defaults to the test's tmp_path. The instance is given the API
    token ``TEST_API_TOKEN`` as a secret, like a deployment can (shared/api_token.py); clients send
    ``settings.api_token.header()``.
    """

    def build(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None,
              doc: dict[str, Any] | None = None) -> Settings:
        base = copy.deepcopy(doc) if doc is not None else example_document()
        merged = deep_merge(base, overrides or {})
        environment = {"INSTANCE_NAME": merged.get("instance_id", "sensor_hub_01"), "DATA_DIR": str(tmp_path / "data"),
                       ENV_NAME: TEST_API_TOKEN}
        environment.update(env or {})
        return settings_from_dict(merged, environment)

    return build
