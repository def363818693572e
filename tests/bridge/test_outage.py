"""No lost messages: a broker outage while a board keeps emitting, a bridge crash with a
full outbox, the Last Will after SIGKILL and the graceful SIGTERM path (real processes)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from testkit.broker import MosquittoBroker
from testkit.example import ROOT, example_document
from testkit.fake_aggregator import FakeAggregator
from testkit.helpers import wait_for
from testkit.mqtt_watch import Watcher
from tests.bridge.conftest import BASE

STATUS = f"{BASE}/status"
EVENTS = f"{BASE}/devices/living_motion/events"


def event_numbers(watcher: Watcher) -> list[int]:
    return [json.loads(p)["data"]["n"] for p in watcher.on(EVENTS)]


@pytest.mark.slow
def test_broker_outage_loses_no_event_and_comes_back_online(persistent_broker, aggregator, start_bridge):
    watcher = Watcher(persistent_broker.port, "IoT2mqtt/#", client_id="outage-watcher", persistent=True).start()
    try:
        bridge = start_bridge(broker=persistent_broker)
        watcher.wait(STATUS, lambda p: p == b"online")
        aggregator.emit_event("living_motion", "motion_started", {"n": 0})
        watcher.wait(EVENTS)

        persistent_broker.stop()
        wait_for(lambda: not bridge.ctx.link.connected, timeout=10)
        # ~10 s of a board emitting motion events and readings while the broker is away
        outage_events = list(range(1, 41))
        pace = threading.Event()
        for n in outage_events:
            aggregator.emit_event("living_motion", "motion_started" if n % 2 else "motion_stopped", {"n": n})
            aggregator.set_state("living_temperature", temperature=20 + n / 10)
            pace.wait(0.25)  # the board's pace (40 x 0.25 s = a 10 s outage), not a synchronisation
        wait_for(lambda: bridge.ctx.bus.idle() and len(bridge.ctx.link.outbox) >= len(outage_events) * 2,
                 timeout=20, message="outage events in the outbox")
        persistent_broker.start()

        try:  # a generous deadline: on a loaded 2-core machine reconnects and resends take a while
            wait_for(lambda: event_numbers(watcher)[-1:] == [40], timeout=60)
        except AssertionError:
            link = bridge.ctx.link
            pytest.fail(f"the last outage event did not arrive: seen {event_numbers(watcher)}, bridge connected="
                        f"{link.connected} (connects {link.connects}), link stats {link.stats()}, watcher "
                        f"connected={watcher.client.is_connected()}, broker running={persistent_broker.running}")
        numbers = event_numbers(watcher)
        first_seen = list(dict.fromkeys(numbers))
        assert first_seen == [0, *outage_events]  # every event, in order
        duplicates = len(numbers) - len(first_seen)
        assert duplicates <= 2  # QoS 1 is at least once; re-sends only for what was in flight
        watcher.wait(f"{BASE}/devices/living_temperature/state/temperature", lambda p: p == b"24.0")
        state = watcher.wait_json(f"{BASE}/devices/living_temperature/state",
                                  lambda d: d["state"].get("temperature") == 24.0)
        assert state["state"]["online"] is True
        watcher.wait(STATUS, lambda p: p == b"online", timeout=20)
        assert watcher.on(STATUS)[-1] == b"online"
        wait_for(lambda: len(bridge.ctx.link.outbox) == 0, timeout=20)
    finally:
        watcher.stop()


# ------------------------------------------------------------------ real processes


def write_instance(tmp_path: Path, agg_port: int) -> Path:
    doc = example_document()
    doc["config"]["services"]["state_aggregator"]["port"] = agg_port
    directory = tmp_path / "instances"
    directory.mkdir(exist_ok=True)
    (directory / "sensor_hub_01.json").write_text(json.dumps(doc))
    return directory


def spawn_bridge(tmp_path: Path, broker: MosquittoBroker, agg_port: int) -> subprocess.Popen:
    env = dict(os.environ, INSTANCE_NAME="sensor_hub_01", INSTANCES_DIR=str(write_instance(tmp_path, agg_port)),
               DATA_DIR=str(tmp_path / "data"), MQTT_HOST="127.0.0.1", MQTT_PORT=str(broker.port),
               IOT2MQTT_PATH=str(tmp_path), LOG_LEVEL="INFO")
    log = open(tmp_path / "bridge.log", "ab")
    return subprocess.Popen([sys.executable, "mqtt_bridge.py"], cwd=ROOT, env=env, stdout=log, stderr=log)


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_last_will_after_sigkill(tmp_path, broker, watcher, aggregator, agg_port, processes):
    proc = spawn_bridge(tmp_path, broker, agg_port)
    processes.append(proc)
    watcher.wait(STATUS, lambda p: p == b"online", timeout=30)
    proc.kill()
    proc.wait(10)
    watcher.wait(STATUS, lambda p: p == b"offline", timeout=30)  # the broker sent the Last Will
    late = Watcher(broker.port, STATUS).start()
    try:
        wait_for(lambda: late.on(STATUS) == [b"offline"], timeout=10)  # retained
    finally:
        late.stop()


def test_sigterm_publishes_offline_and_exits_cleanly(tmp_path, broker, watcher, aggregator, agg_port, processes):
    proc = spawn_bridge(tmp_path, broker, agg_port)
    processes.append(proc)
    watcher.wait(STATUS, lambda p: p == b"online", timeout=30)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    watcher.wait(STATUS, lambda p: p == b"offline", timeout=10)
    log = (tmp_path / "bridge.log").read_text()
    assert "flushed" in log and "Traceback" not in log


def pending_in_outbox(tmp_path: Path) -> int:
    path = tmp_path / "data" / "mqtt_outbox.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM outbox WHERE topic LIKE '%/events'").fetchone()[0]


def test_outbox_survives_a_bridge_crash(tmp_path, broker, aggregator, agg_port, processes):
    broker.stop()
    proc = spawn_bridge(tmp_path, broker, agg_port)
    processes.append(proc)
    wait_for(lambda: aggregator.publisher.stats()["clients"] >= 1, timeout=30, message="bridge following events")
    for n in range(5):
        aggregator.emit_event("living_motion", "motion_started", {"n": n})
    wait_for(lambda: pending_in_outbox(tmp_path) >= 10, timeout=20, message="events in the outbox")
    proc.kill()  # crash: nothing flushed, nothing said
    proc.wait(10)
    broker.start()
    watcher = Watcher(broker.port, "IoT2mqtt/#").start()
    try:
        processes.append(spawn_bridge(tmp_path, broker, agg_port))
        wait_for(lambda: len(event_numbers(watcher)) >= 5, timeout=30, message="the events kept across the crash")
        assert list(dict.fromkeys(event_numbers(watcher))) == [0, 1, 2, 3, 4]
        watcher.wait(STATUS, lambda p: p == b"online", timeout=30)
    finally:
        watcher.stop()


def test_a_restarted_bridge_resumes_after_the_last_event_it_put_in_its_outbox(aggregator, start_bridge, watcher):
    first = start_bridge()
    watcher.wait(STATUS, lambda p: p == b"online", timeout=30)
    wait_for(lambda: aggregator.publisher.stats()["clients"] >= 1, timeout=15, message="bridge following events")
    for n in range(3):
        aggregator.emit_event("living_motion", "motion_started", {"n": n})
    wait_for(lambda: event_numbers(watcher) == [0, 1, 2], timeout=15, message="events 0..2")
    saved = first.settings.data_dir / "mqtt_bridge_positions.json"
    wait_for(lambda: json.loads(saved.read_text()) == {"state_aggregator": aggregator.publisher.stats()["last_id"]},
             timeout=10, message="the position of event 2 saved")
    first.stop()
    for n in range(3, 6):  # while no bridge runs
        aggregator.emit_event("living_motion", "motion_started", {"n": n})
    start_bridge()
    wait_for(lambda: len(event_numbers(watcher)) >= 6, timeout=30, message="events 3..5 replayed")
    assert event_numbers(watcher) == [0, 1, 2, 3, 4, 5]  # a graceful stop saves exactly: nothing twice


def test_fake_aggregator_matches_settings(bridge_settings):
    assert FakeAggregator(bridge_settings()).devices.keys() == {d.device_id for d in bridge_settings().devices}
