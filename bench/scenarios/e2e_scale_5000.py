"""End to end at 5,000 devices on one instance: online time, ``/devices`` latency, reading → MQTT
latency at 1,000 readings/s spread over every device, and memory.

The instance has 50 boards of 100 devices each (``bench.stack.instance_document``: 20 of each
board type). Their handler is ``python -m testkit.scripted_handler`` on serial_handler's port
(a real handler API, a real EventPublisher): 50 emulated boards would each send one line that
updates 20 devices at once, not readings spread over 5,000 devices. The aggregator and the
bridge are the real programs, each one process as in production.

- **online**: from launching the aggregator to every one of the 5,000 devices online on it and the
  bridge ``online`` on MQTT (the handler is already up, as boards are at a container start).
- **/devices**: ``GET /devices`` back to back from one client thread for ``seconds``.
- **reading → MQTT**: the handler emits ``rate`` readings a second, device after device (each
  device every 5 s at 1,000/s), each a unique value carried with the handler's ``perf_counter``
  (machine-wide on Linux); the bench reads that time from the handler's own ``/events`` and the
  value's arrival on ``.../devices/<id>/state``.
- **memory**: PSS of the aggregator and the bridge at the end of the round (the scripted handler
  is a stand-in and not counted).

Ceilings: the hello-world HTTP ceiling for ``/devices``, the QoS 1 round trip for the latency.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import requests

from bench.fixtures import (
    PYTHON,
    MqttClient,
    require_files,
    start_bridge,
    start_broker,
    start_process,
    start_service,
    write_instance,
)
from bench.footprint import pss_kib
from bench.harness import Context, MessageTracker, Sample, Scenario, at_most
from bench.load import hammer
from bench.stack import BASE, INSTANCE, instance_document
from shared.sse import EventFollower
from shared.topics import Topics
from testkit.helpers import wait_for

BOARDS, PER_TYPE = 50, 20  # 50 boards x 5 types x 20 = 5,000 devices


class Rig:
    def __init__(self) -> None:
        self.tracker = MessageTracker()
        self.arrived = threading.Event()
        self.next_key = 1_000_000  # above the values the handler starts with (0..4,999)
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.early: dict[tuple[str, int], float] = {}  # arrived on MQTT before the bench saw it sent
        self.handler_url = ""
        self.online_s = 0.0
        self.aggregator = None
        self.bridge = None

    def on_handler_events(self, events) -> None:
        for event in events:
            bench = event.data.get("bench") if isinstance(event.data, dict) else None
            if bench and bench.get("tag") == "scale":
                key = (event.data["device_id"], bench["key"])
                with self.lock:
                    self.tracker.sent(key, bench["sent_at"])
                    if key in self.early:
                        self.tracker.received(key, self.early.pop(key))

    def on_state(self, message, at: float) -> None:
        self.seen.add(message.topic)
        try:
            body = json.loads(message.payload)
            key = body["state"]["value"]
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(key, int) and key >= 1_000_000:
            # The bench learns when a reading left from the handler's own stream, which can be
            # read after the reading already reached MQTT: such an arrival waits for its send.
            with self.lock:
                if (body.get("device_id"), key) in self.tracker.sent_at:
                    self.tracker.received((body.get("device_id"), key), at)
                else:
                    self.early[(body.get("device_id"), key)] = at
            self.arrived.set()


def setup(ctx: Context) -> Rig:
    require_files("services/state_aggregator/__main__.py", "mqtt_bridge.py")
    doc = instance_document(ctx.workdir, BOARDS, PER_TYPE)
    instances, env = write_instance(ctx, doc)
    broker = start_broker(ctx)
    handler_port = doc["config"]["services"]["serial_handler"]["port"]
    handler = start_process(ctx, "scripted_handler (stand-in)", [
        PYTHON, "-m", "testkit.scripted_handler", str(handler_port), str(instances / f"{INSTANCE}.json")], env=env)
    handler_url = f"http://127.0.0.1:{handler_port}"
    wait_for(lambda: handler.check_alive() or requests.get(handler_url + "/health", timeout=2).ok, 30,
             interval=0.05, message="the scripted handler")
    rig = Rig()
    rig.handler_url = handler_url
    launched = time.perf_counter()
    aggregator = start_service(ctx, "state_aggregator", doc, env)
    expected = len(doc["devices"])

    def all_online() -> bool:
        devices = requests.get(aggregator.url + "/devices", timeout=10).json()["devices"]
        return sum(1 for d in devices if d["online"]) >= expected

    wait_for(all_online, 120, interval=0.1, message=f"{expected} devices online")
    bridge = start_bridge(ctx, env, broker, INSTANCE, BASE)
    rig.online_s = time.perf_counter() - launched
    rig.aggregator, rig.bridge = aggregator, bridge
    follower = EventFollower(handler_url + "/events", on_events=rig.on_handler_events, instance_id=INSTANCE,
                             name="bench: handler events").start()
    ctx.cleanup.callback(follower.stop)
    wait_for(lambda: follower.connected, 10, message="following the handler's events")
    # The bridge's first publication of every device (retained state, availability, meta) is not
    # the rounds' business: they start once its outbox is empty.
    settled = time.perf_counter()
    report = Path(env["DATA_DIR"]) / "run" / "bridge-health.json"
    wait_for(lambda: _outbox_pending(report) == 0, 180, interval=0.2, message="the bridge's outbox empty")
    ctx.note(f"the bridge's first publication of the {expected} devices took {time.perf_counter() - settled:.1f} s "
             "more after online")
    subscriber = MqttClient(broker.port, "scale-probe", max_inflight=1000)
    ctx.cleanup.callback(subscriber.close)
    subscriber.subscribe(Topics(BASE, INSTANCE).state("+"), rig.on_state, qos=1)
    ctx.note(f"{expected} devices on {BOARDS} boards played by the scripted handler; online in {rig.online_s:.1f} s "
             f"(aggregator launched → every device online → bridge online); {ctx.params['rate']} readings/s over "
             f"every device for {ctx.params['seconds']} s per round; /devices from 1 client thread")
    return rig


def _outbox_pending(report: Path) -> int | None:
    try:
        return int(json.loads(report.read_text())["outbox"]["pending"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run(ctx: Context, rig: Rig) -> Sample:
    rate, seconds = ctx.params["rate"], ctx.params["seconds"]
    count = int(rate * seconds)
    with rig.lock:
        rig.tracker = MessageTracker()
        rig.early.clear()
    first, rig.next_key = rig.next_key, rig.next_key + count
    requests.post(rig.handler_url + "/emit", json={"count": count, "rate": rate, "tag": "scale", "first": first},
                  timeout=10).raise_for_status()
    devices = hammer(f"{rig.aggregator.url}/devices", 1, seconds)
    deadline = time.monotonic() + 30
    while (rig.tracker.outstanding or len(rig.tracker.sent_at) < count) and time.monotonic() < deadline:
        rig.arrived.clear()
        if not rig.arrived.wait(2.0):
            break
    sample = rig.tracker.sample()
    ordered = sorted(devices.latencies_s)
    if ordered:
        sample.figures["devices_p50_ms"] = 1000 * ordered[len(ordered) // 2]
        sample.figures["devices_p99_ms"] = 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    sample.figures["online_s"] = rig.online_s
    sample.figures["devices"] = float(BOARDS * PER_TYPE * 5)
    aggregator_pss = (pss_kib(rig.aggregator.process.pid) or 0) / 1024
    bridge_pss = (pss_kib(rig.bridge.pid) or 0) / 1024
    sample.figures["pss_aggregator_bridge_mib"] = aggregator_pss + bridge_pss
    ctx.note(f"PSS at the end of a round: state_aggregator {aggregator_pss:.1f} MiB, mqtt_bridge {bridge_pss:.1f} MiB")
    return sample


SCENARIO = Scenario(
    "e2e_scale_5000_devices", title="5,000 devices: online, /devices, reading → MQTT at 1,000/s, memory",
    setup=setup, run=run, baseline="ceiling_mqtt_qos1_latency",
    baseline_figures={"p50_ms": "p50_ms", "p99_ms": "p99_ms"},
    targets={"online_s": at_most(5), "devices_p99_ms": at_most(50), "p99_ms": at_most(30)},
    quick={"rate": 1000, "seconds": 3.0}, full={"rate": 1000, "seconds": 30.0},
    rounds={"quick": 2, "full": 3},
    figures=("online_s", "devices_p50_ms", "devices_p99_ms", "p50_ms", "p99_ms", "loss_pct",
             "pss_aggregator_bridge_mib"))
