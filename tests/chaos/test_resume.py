"""kill -9 of the bridge, then of the aggregator, while a board keeps sending: nothing is lost
(docs/reliability.md, row "resume"; docs/events.md, "Resuming and gaps").

Every program is a real process (testkit/connector.py): a private Mosquitto, the board's
devices played on serial_handler's port by ``python -m testkit.scripted_handler``
(readings and button presses on demand, each with a unique mark), ``python -m
services.state_aggregator`` (gunicorn's worker, one process) and ``python mqtt_bridge.py``. A tap on the handler's
own ``/events`` records every mark it sent. While marks flow the bridge, or the aggregator, is
killed with SIGKILL (a service is one process: the whole program), stays away while the
handler sends 2 s worth of marks, and is started again. Every mark the handler sent must arrive
on MQTT, within a stated time of the restart.

Duplicates are allowed and only counted: QoS 1 is at-least-once, and a restarted program resumes
from its last saved position, which may lag what it had already passed on by the save interval
(0.1 s; shared/stream_positions.py).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit.connector import ConnectorStack
from testkit.helpers import wait_for
from testkit.mqtt_watch import Watcher
from tests.bridge.conftest import BASE
from tests.state_aggregator.conftest import EventTap

pytestmark = pytest.mark.slow

STATUS = f"{BASE}/status"
RATE = 25
"""Readings a second, and as many button presses: the board of the issue sent 41 presses and 53
readings in the bridge's 2 s absence."""
COUNT = 250
"""Of each, so that marks keep coming from before the kill until well after the restart (10 s)."""
FIRST = 1000
"""The first mark: above the values the scripted devices start with (their index)."""
AWAY_S = 2.0
BRIDGE_RECOVERY_S = 10.0
"""From ``python mqtt_bridge.py`` to every mark sent before it started being on MQTT; measured
about 1 s (the interpreter's start is most of it)."""
AGGREGATOR_RECOVERY_S = 15.0
"""From the aggregator's start to every mark sent before it being on MQTT; measured 2-4 s:
gunicorn's start, then the bridge's reconnect backoff (it doubles up to 5 s while the
aggregator is away)."""


class MarkWatcher(Watcher):
    """Records when each mark first arrived on MQTT, and how often."""

    def __init__(self, port: int) -> None:
        super().__init__(port, [STATUS, f"{BASE}/devices/+/events", f"{BASE}/devices/+/state/value"])
        self.first_seen: dict[tuple[str, int], float] = {}
        self.copies: dict[tuple[str, int], int] = {}
        self.statuses: list[tuple[float, bytes]] = []

    def _on_message(self, client, userdata, message):
        now = time.monotonic()
        super()._on_message(client, userdata, message)
        if message.topic == STATUS:
            with self.lock:
                self.statuses.append((now, bytes(message.payload)))
            return
        try:
            payload = json.loads(message.payload)
            mark = ("press", payload["data"]["mark"]) if message.topic.endswith("/events") else ("reading", payload)
        except (ValueError, KeyError, TypeError):
            return
        if not isinstance(mark[1], int) or mark[1] < FIRST:
            return  # a device's starting value, republished by a pull
        with self.lock:
            self.first_seen.setdefault(mark, now)
            self.copies[mark] = self.copies.get(mark, 0) + 1

    def seen(self) -> dict[tuple[str, int], float]:
        with self.lock:
            return dict(self.first_seen)

    def online_after(self, moment: float) -> float | None:
        with self.lock:
            return next((t for t, p in self.statuses if t > moment and p == b"online"), None)


def sent(tap: EventTap) -> set[tuple[str, int]]:
    """Every mark the handler has sent so far, as its own stream says."""
    with tap.lock:
        events = list(tap.events)
    marks = set()
    for kind, data, _ in events:
        if kind == "event":
            marks.add(("press", data["data"]["mark"]))
        elif kind == "state" and isinstance(data.get("state", {}).get("value"), int):
            marks.add(("reading", data["state"]["value"]))
    return {m for m in marks if m[1] >= FIRST}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ConnectorStack]:
    stack = ConnectorStack(tmp_path, scripted=True)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def watch(stack: ConnectorStack) -> Iterator[MarkWatcher]:
    watcher = MarkWatcher(stack.broker.port).start()
    yield watcher
    watcher.stop()


@pytest.fixture
def tap(stack: ConnectorStack) -> Iterator[EventTap]:
    tap = wait_for(lambda: EventTap(stack.handler_url), 30, interval=0.1, message="the handler's stream")
    yield tap
    tap.close()


def bridge_following(stack: ConnectorStack) -> bool:
    return requests.get(stack.aggregator_url + "/health", timeout=5).json()["events"]["clients"] >= 1


def start_marks(stack: ConnectorStack) -> None:
    for kind in ("state", "event"):
        response = requests.post(stack.handler_url + "/emit", timeout=5,
                                 json={"count": COUNT, "rate": RATE, "kind": kind, "first": FIRST, "tag": kind})
        assert response.status_code == 200, response.text


def marks_flowing(stack: ConnectorStack, watch: MarkWatcher) -> None:
    """The instance online, the bridge following, and the handler's marks reaching MQTT."""
    watch.wait(STATUS, lambda p: p == b"online", timeout=60)
    wait_for(lambda: bridge_following(stack), 30, interval=0.1, message="the bridge following the aggregator")
    # The broker link as an operator with curl sees it, from the bridge's report.
    wait_for(lambda: requests.get(stack.aggregator_url + "/health", timeout=5).json()["mqtt"]["connected"], 30,
             interval=0.1, message="the broker link up on the aggregator's /health")
    assert "sensor_hub_mqtt_broker_connected 1.0" in requests.get(stack.aggregator_url + "/metrics", timeout=5).text
    start_marks(stack)
    wait_for(lambda: len(watch.seen()) >= 20, 30, interval=0.05, message="marks flowing to MQTT")


def stay_away(tap: EventTap) -> None:
    """Until the handler has sent ``AWAY_S`` worth of marks (of each kind) since now."""
    before = len(sent(tap))
    wait_for(lambda: len(sent(tap)) >= before + 2 * RATE * AWAY_S, 30, interval=0.05,
             message=f"{AWAY_S} s of marks sent")


def every_mark_arrived(watch: MarkWatcher, tap: EventTap) -> dict[tuple[str, int], float]:
    expected = {(kind, FIRST + n) for kind in ("press", "reading") for n in range(COUNT)}
    wait_for(lambda: sent(tap) == expected, 60, interval=0.1, message="the handler done sending")

    def all_there():
        seen = watch.seen()
        return seen if expected <= seen.keys() else None
    try:
        return wait_for(all_there, 60, interval=0.1, message="every mark on MQTT")
    except AssertionError:
        missing = sorted(expected - watch.seen().keys())
        raise AssertionError(f"{len(missing)} of {len(expected)} marks never arrived: {missing[:20]}") from None


def log_lines(stack: ConnectorStack, text: str) -> list[str]:
    return [line for line in Path(stack.log.name).read_text(errors="replace").splitlines() if text in line]


def report(what: str, restarted: float, before_restart: set, seen: dict, watch: MarkWatcher, away: int) -> float:
    recovery = max(seen[m] for m in before_restart) - restarted
    online = watch.online_after(restarted)
    duplicates = sum(n - 1 for n in watch.copies.values())
    print(f"\n{what}: {away} marks sent while it was away; every one of the {2 * COUNT} arrived; "
          f"caught up {recovery:.2f} s after its restart, online after "
          f"{(online - restarted) if online else float('nan'):.2f} s; {duplicates} duplicates")
    return recovery


def test_kill_9_of_the_bridge_loses_no_event(stack: ConnectorStack, watch: MarkWatcher, tap: EventTap):
    marks_flowing(stack, watch)

    stack.kill(stack.bridge)
    at_kill = sent(tap)
    stay_away(tap)
    before_restart = sent(tap)
    restarted = time.monotonic()
    stack.bridge = stack.spawn("mqtt_bridge.py")

    seen = every_mark_arrived(watch, tap)
    recovery = report("kill -9 of the bridge", restarted, before_restart, seen, watch,
                      len(before_restart - at_kill))
    assert recovery < BRIDGE_RECOVERY_S
    assert watch.online_after(restarted) is not None
    assert log_lines(stack, "event stream aggregator connected (resuming after")
    assert not log_lines(stack, "event stream aggregator: gap")  # the same aggregator: a replay, no gap
    assert not log_lines(stack, "Traceback")


def test_kill_9_of_the_aggregator_loses_nothing_the_handler_sent(stack: ConnectorStack, watch: MarkWatcher,
                                                                 tap: EventTap):
    marks_flowing(stack, watch)

    stack.kill(stack.aggregator)
    at_kill = sent(tap)
    stay_away(tap)
    before_restart = sent(tap)
    restarted = time.monotonic()
    stack.aggregator = stack.spawn("-m", "services.state_aggregator")

    seen = every_mark_arrived(watch, tap)
    recovery = report("kill -9 of the aggregator", restarted, before_restart, seen, watch,
                      len(before_restart - at_kill))
    assert recovery < AGGREGATOR_RECOVERY_S
    # The restarted aggregator resumed the handler's stream from its saved position (a replay,
    # no gap); the bridge saw a new epoch: one gap, said once, and a resync from a pull.
    assert log_lines(stack, "event stream serial_handler connected (resuming after")
    assert not log_lines(stack, "event stream serial_handler: gap")
    gaps = log_lines(stack, "event stream aggregator: gap")
    assert len(gaps) == 1 and "epoch changed" in gaps[0], gaps
    assert not log_lines(stack, "Traceback")

    # State resynchronised: the aggregator and the retained MQTT state say what the handler says.
    handler = {v["device_id"]: v["state"] for v in requests.get(stack.handler_url + "/sensors", timeout=5)
               .json()["sensors"]}

    def aggregator_agrees() -> bool:
        devices = requests.get(stack.aggregator_url + "/devices?include=state", timeout=5).json()["devices"]
        return all(d["state"] == handler[d["device_id"]] for d in devices if d["device_id"] in handler)
    wait_for(aggregator_agrees, 15, interval=0.1, message="the aggregator's state = the handler's")
    late = Watcher(stack.broker.port, f"{BASE}/devices/+/state/value").start()  # what a controller sees now
    try:
        for device_id, state in handler.items():
            late.wait(f"{BASE}/devices/{device_id}/state/value", lambda p, v=state["value"]: json.loads(p) == v,
                      timeout=15)
    finally:
        late.stop()


def test_a_fresh_broker_gets_the_retained_picture_again_and_no_event_is_lost(stack: ConnectorStack,
                                                                              watch: MarkWatcher, tap: EventTap):
    """The broker replaced by an empty one (a new container, its store lost): after the
    reconnect the bridge sends status, meta and every device's state again, retained, and the
    events it held during the outage."""
    marks_flowing(stack, watch)

    stack.broker.stop()
    watch.stop()
    before_outage = watch.seen()
    link = wait_for(lambda: (lambda m: m if m["connected"] is False else None)(
        requests.get(stack.aggregator_url + "/health", timeout=5).json()["mqtt"]), 30, interval=0.1,
        message="the broker link down on the aggregator's /health")
    assert link.get("reason"), link  # and why (from the bridge's report)
    stay_away(tap)
    for stored in stack.broker.workdir.glob("*.db"):
        stored.unlink()  # nothing retained, no session survives: a fresh broker on the same port
    stack.broker.start()
    fresh = MarkWatcher(stack.broker.port).start()  # subscribed before the bridge's reconnect backoff ends
    try:
        restarted = time.monotonic()
        expected = {(kind, FIRST + n) for kind in ("press", "reading") for n in range(COUNT)}
        wait_for(lambda: sent(tap) == expected, 60, interval=0.1, message="the handler done sending")
        # Every button press (an event: kept in order while the broker is away); of the readings,
        # the newest (a state: while the broker is away the outbox keeps the newest per topic).
        presses = {m for m in expected if m[0] == "press"} | {("reading", FIRST + COUNT - 1)}
        try:
            wait_for(lambda: presses <= before_outage.keys() | fresh.seen().keys(), 60, interval=0.1,
                     message="every press and the newest reading on MQTT")
        except AssertionError as exc:
            missing = sorted(presses - before_outage.keys() - fresh.seen().keys())
            raise AssertionError(f"{exc}: {len(missing)} missing, e.g. {missing[:10]}") from None
        late = Watcher(stack.broker.port, [STATUS, f"{BASE}/meta/info", f"{BASE}/devices/+/state"]).start()
        try:
            late.wait(STATUS, lambda p: p == b"online", timeout=30)
            late.wait(f"{BASE}/meta/info", timeout=15)
            devices = requests.get(stack.aggregator_url + "/devices", timeout=5).json()["devices"]
            for device in devices:
                late.wait(f"{BASE}/devices/{device['device_id']}/state", timeout=15)
        finally:
            late.stop()
        print(f"\nfresh broker: retained picture and every mark back {time.monotonic() - restarted:.2f} s "
              "after it started")
    finally:
        fresh.stop()
