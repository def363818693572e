"""The test kit itself: the private broker restarts on its port; wait_for keeps its promises; and
bench/ and tests/ share testkit/ without importing each other."""
from __future__ import annotations

import ast
import re

import paho.mqtt.client as mqtt
import pytest

from testkit.broker import MosquittoBroker
from testkit.example import ROOT
from testkit.helpers import WaitTimeout, wait_for


def _connect(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"kit-{name}-{port}")
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    return client


def test_private_broker_stops_and_restarts_on_the_same_port(fresh_mosquitto: MosquittoBroker):
    port = fresh_mosquitto.port
    received: list[bytes] = []
    subscriber = _connect(port, "sub")
    subscriber.on_message = lambda c, u, m: received.append(m.payload)
    subscriber.subscribe("kit/#", qos=1)
    publisher = _connect(port, "pub")
    try:
        wait_for(lambda: publisher.is_connected() and subscriber.is_connected(), timeout=10)
        publisher.publish("kit/a", b"before", qos=1)
        wait_for(lambda: b"before" in received, timeout=10)

        fresh_mosquitto.stop()
        assert not fresh_mosquitto.is_accepting()
        wait_for(lambda: not publisher.is_connected(), timeout=10)
        fresh_mosquitto.start()
        assert fresh_mosquitto.port == port and fresh_mosquitto.is_accepting()

        # paho reconnects by itself; the subscription must be made again on the fresh broker.
        wait_for(lambda: subscriber.is_connected() and publisher.is_connected(), timeout=20)
        subscriber.subscribe("kit/#", qos=1)

        def delivered() -> bool:
            publisher.publish("kit/b", b"after", qos=1)
            return wait_for(lambda: b"after" in received, timeout=1)

        wait_for(lambda: _try(delivered), timeout=20)
    finally:
        for client in (subscriber, publisher):
            client.loop_stop()
            client.disconnect()


def _try(fn) -> bool:
    try:
        return bool(fn())
    except WaitTimeout:
        return False


def test_wait_for_returns_the_value_and_reports_timeouts():
    assert wait_for(lambda: 42, timeout=1) == 42
    with pytest.raises(WaitTimeout, match="the answer"):
        wait_for(lambda: False, timeout=0.05, message="the answer")
    with pytest.raises(WaitTimeout, match="ZeroDivisionError"):
        wait_for(lambda: 1 / 0, timeout=0.05)


def test_make_settings_overlays_the_example(make_settings):
    settings = make_settings({"config": {"cache_ttl": 2}}, env={"MQTT_PORT": "1999"})
    assert settings.cache_ttl == 2 and settings.mqtt.port == 1999
    assert settings.boards[0].board_id == "living_room_esp32"


def test_a_persistent_broker_keeps_a_session_across_its_restart():
    # What the outage tests rely on: a subscriber that is away while the broker restarts still
    # gets what was published before it came back (its session and subscription were saved).
    from testkit.mqtt_watch import Watcher

    broker = MosquittoBroker(persistence=True)
    broker.start()
    watcher = Watcher(broker.port, "kit/#", client_id="kit-persistent", persistent=True).start()
    publisher = None
    try:
        broker.stop()
        watcher.client.loop_stop()  # keep the watcher away until the publishes are done
        broker.start()
        publisher = _connect(broker.port, "pub")
        for n in range(3):
            publisher.publish("kit/x", str(n), qos=1).wait_for_publish(10)
        watcher.client.loop_start()
        wait_for(lambda: watcher.on("kit/x") == [b"0", b"1", b"2"], timeout=20,
                 message="the queued messages after the watcher's return")
    finally:
        if publisher is not None:
            publisher.loop_stop()
            publisher.disconnect()
        watcher.stop()
        broker.close()


# A module name as ``python -m`` takes it, e.g. a subprocess started with "-m", "tests.x.y".
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def _modules_used(source: str) -> set[str]:
    """The absolute modules a source imports (``import a.b``, ``from a.b import c``), and the
    dotted module names among its string constants (``python -m a.b`` in a subprocess's argv)."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            used.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            used.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.fullmatch(node.value):
            used.add(node.value)
    return used


def _reaching(package: str, forbidden: set[str]) -> list[str]:
    """``path: module`` for every use, by a module under ``package/``, of a ``forbidden`` top-level package."""
    found = []
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no module under {package}/"
    for path in files:
        for module in _modules_used(path.read_text(encoding="utf-8")):
            if module.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)}: {module}")
    return found


def test_the_scan_sees_imports_and_module_launches():
    source = ("import tests.helpers\nfrom bench.harness import Scenario\nfrom . import sibling\n"
              "argv = ['python', '-m', 'tests.thing']\nwords = 'tests. and bench'\n")
    assert _modules_used(source) == {"tests.helpers", "bench.harness", "tests.thing"}


def test_bench_never_imports_tests():
    # The benchmarks' support code lives in testkit/, not in the test suite (tests/bench may
    # import bench: bench is what those tests test).
    assert _reaching("bench", {"tests"}) == []


def test_testkit_imports_neither_tests_nor_bench():
    assert _reaching("testkit", {"tests", "bench"}) == []
