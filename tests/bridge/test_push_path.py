"""The push path under load: while connected every state change is published, in order; while
the broker is away states of one topic are coalesced to the newest; the batched outbox writes
survive a crash (real Mosquitto, real HTTP, a real killed process)."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from itertools import groupby

from bridge.outbox import KEEP, STATE, Outbox
from shared.sse import EventPublisher
from testkit.example import ROOT
from testkit.helpers import wait_for
from testkit.mqtt_watch import Watcher
from tests.bridge.conftest import BASE

STATUS = f"{BASE}/status"
STATE_TOPIC = f"{BASE}/devices/living_temperature/state"
TEMPERATURE_TOPIC = f"{STATE_TOPIC}/temperature"


# ------------------------------------------------------------------ the outbox alone


def test_outbox_keeps_every_state_while_connected(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    box.set_connected(True)
    for n in range(5):
        box.put("s/a", str(n).encode(), 1, True, STATE)
    box.put("e", b"event", 1, False, KEEP)
    assert [m.payload for m in box.pending()] == [b"0", b"1", b"2", b"3", b"4", b"event"]
    assert box.stats()["replaced_state"] == 0


def test_outbox_coalesces_states_while_disconnected_and_when_backlogged(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", coalesce_backlog=3)
    box.set_connected(False)
    for n in range(5):
        box.put("s/a", str(n).encode(), 1, True, STATE)
    assert [m.payload for m in box.pending()] == [b"4"]
    box.set_connected(True)
    box.put("s/a", b"5", 1, True, STATE)  # connected, 1 row waiting: kept beside the older one
    box.put("s/a", b"6", 1, True, STATE)
    box.put("s/a", b"7", 1, True, STATE)  # 3 rows waiting: not more than the backlog yet
    assert [m.payload for m in box.pending()] == [b"4", b"5", b"6", b"7"]
    box.put("s/a", b"8", 1, True, STATE)  # 4 rows waiting: backlogged, the newest is enough
    box.put("e", b"event", 1, False, KEEP)
    assert [m.payload for m in box.pending()] == [b"8", b"event"]
    assert box.stats()["replaced_state"] == 4 + 4


def test_outbox_numbers_continue_after_reopening(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    seqs = [box.put("e", str(n).encode(), 1, False, KEEP) for n in range(3)]
    box.ack(seqs)
    box.close()
    again = Outbox(tmp_path / "o.sqlite3")
    later = again.put("e", b"later", 1, False, KEEP)
    assert later > seqs[-1]  # an acked number is never used again (a late PUBACK cannot hit it)
    assert [(m.seq, m.payload) for m in again.pending()] == [(later, b"later")]


CRASHING_WRITER = """
import os, sys
from bridge.outbox import KEEP, STATE, Outbox
box = Outbox(sys.argv[1])
box.set_connected(True)
for n in range(300):
    box.put("e", str(n).encode(), 1, False, KEEP)
    box.put("s/a", str(n).encode(), 1, True, STATE)
    if n % 50 == 49:
        box.flush()
print(len(box), flush=True)  # everything written
os.kill(os.getpid(), 9)       # no close(), no clean exit
"""


def test_batched_outbox_writes_survive_sigkill(tmp_path):
    path = tmp_path / "o.sqlite3"
    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert proc.stdout.strip() == "600"
    again = Outbox(path)
    pending = again.pending(limit=1000)
    assert [m.payload for m in pending if m.kind == KEEP] == [str(n).encode() for n in range(300)]
    assert [m.payload for m in pending if m.kind == STATE] == [str(n).encode() for n in range(300)]
    assert [m.seq for m in pending] == sorted(m.seq for m in pending)


# ------------------------------------------------------------------ the bridge


def temperatures(watcher: Watcher) -> list[float]:
    return [json.loads(p)["state"]["temperature"] for p in watcher.on(STATE_TOPIC)
            if "temperature" in json.loads(p)["state"]]


def state_rows(bridge, topic: str) -> int:
    path = bridge.ctx.link.outbox.path
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'state' AND topic = ?", (topic,)).fetchone()[0]


def test_every_state_change_arrives_in_order_while_connected(aggregator, start_bridge, watcher):
    # Room for the whole burst on the SSE side: what is measured is the bridge, not the stream's bound.
    aggregator.publisher = EventPublisher(history=5000, client_queue=5000, heartbeat_s=1.0)
    bridge = start_bridge()
    watcher.wait(STATUS, lambda p: p == b"online")
    wait_for(lambda: aggregator.publisher.stats()["clients"] >= 1, timeout=15, message="bridge following events")
    # Settled first: a resync (start, new stream) republishes the current state, legitimately.
    aggregator.set_state("living_temperature", temperature=999.0)
    watcher.wait(TEMPERATURE_TOPIC, lambda p: p == b"999.0")
    wait_for(lambda: bridge.ctx.aggregator_ready and bridge.ctx.bus.idle(), timeout=15, message="bridge settled")
    # As fast as the publisher goes; 2 rows a reading (state + state/temperature) stay below the
    # outbox's backlog threshold, beyond which states are coalesced even while connected.
    burst = [round(1000 + n / 100, 2) for n in range(600)]
    for value in burst:
        aggregator.set_state("living_temperature", temperature=value)
    wait_for(lambda: temperatures(watcher)[-1:] == burst[-1:], timeout=60, message="the last reading")
    # Each one, in order: nothing replaced while connected. A republish (discovery's re-announce
    # after the CONNACK, a heartbeat) repeats the current value right after it: collapsed here.
    seen = [t for t, _ in groupby(t for t in temperatures(watcher) if t >= 1000)]
    assert seen == burst
    per_property = [float(p) for p in watcher.on(TEMPERATURE_TOPIC) if float(p) >= 1000]
    assert [t for t, _ in groupby(per_property)] == burst
    assert bridge.ctx.link.outbox.stats()["replaced_state"] == 0


def test_states_of_one_topic_are_coalesced_while_the_broker_is_away(broker, aggregator, start_bridge):
    bridge = start_bridge()
    wait_for(lambda: bridge.ctx.link.connected, timeout=15, message="bridge connected")
    wait_for(lambda: aggregator.publisher.stats()["clients"] >= 1, timeout=15, message="bridge following events")
    broker.stop()
    wait_for(lambda: not bridge.ctx.link.connected, timeout=15, message="bridge noticed the outage")
    for n in range(50):
        aggregator.set_state("living_temperature", temperature=30 + n / 10)
    wait_for(lambda: bridge.ctx.bus.idle() and bridge.ctx.link.outbox.stats()["replaced_state"] >= 49 * 2,
             timeout=20, message="the outage's states in the outbox")
    assert state_rows(bridge, STATE_TOPIC) == 1
    assert state_rows(bridge, TEMPERATURE_TOPIC) == 1
    broker.start()
    late = Watcher(broker.port, f"{BASE}/devices/living_temperature/#").start()
    try:
        late.wait(TEMPERATURE_TOPIC, lambda p: p == b"34.9", timeout=30)
        wait_for(lambda: len(bridge.ctx.link.outbox) == 0, timeout=20, message="outbox delivered")
    finally:
        late.stop()


def test_a_pull_older_than_an_event_does_not_undo_it(aggregator, start_bridge, watcher):
    # A resync pull that began before an availability event reached the bridge, but whose answer
    # is handled after it, carries the older news: the device must stay as the event left it.
    from shared.sse import Event

    bridge = start_bridge()
    watcher.wait(STATUS, lambda p: p == b"online")
    wait_for(lambda: bridge.ctx.aggregator_ready and bridge.ctx.bus.idle(), timeout=15, message="bridge settled")
    offline = Event("e-1", "e", 1, "availability", {"type": "availability", "device_id": "living_motion",
                                                     "online": False, "reason": "board silent"})
    stale = [{"device_id": "living_motion", "online": True, "state": {"motion": False}}]
    # Clock values ahead of now: the bridge's own resync pulls (there are two at start) count as
    # older than the event too, so nothing but this test's later pull may undo it.
    received = time.monotonic() + 1000
    bridge.ctx.bus.emit("aggregator_events", events=[offline], received=received)
    bridge.ctx.bus.emit("snapshot", devices=stale, pulled_at=received - 1)  # pulled before the event arrived
    wait_for(bridge.ctx.bus.idle, timeout=15, message="bus idle")
    assert bridge.ctx.devices["living_motion"].online is False
    bridge.ctx.bus.emit("snapshot", devices=stale, pulled_at=received + 1)  # a later pull is newer news
    wait_for(lambda: bridge.ctx.bus.idle() and bridge.ctx.devices["living_motion"].online is True, timeout=15,
             message="the later pull applied")
