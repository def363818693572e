"""Ceiling: raw paho → Mosquitto → paho on loopback, QoS 0 and 1.

Latency: one message at a time (publish, wait for it to arrive, next), so each figure is one
trip through the broker and nothing else. Throughput: publish as fast as paho takes them and
count what arrives; the end-to-end scenarios can be no better than this.
"""
from __future__ import annotations

import subprocess
import threading
import time

from bench.fixtures import PYTHON, ROOT, MqttClient, start_broker
from bench.harness import Context, MessageTracker, Sample, Scenario

TOPIC = "bench/ceiling"


class Pair:
    """A publisher and a subscriber on a private broker."""

    def __init__(self, ctx: Context, qos: int) -> None:
        self.qos = qos
        self.stamped = False   # payloads carry their send time (throughput rounds)
        broker = start_broker(ctx)
        self.port = broker.port
        self.sub = MqttClient(broker.port, f"sub{qos}", max_inflight=1000)
        ctx.cleanup.callback(self.sub.close)
        self.pub = MqttClient(broker.port, f"pub{qos}", max_inflight=1000)
        ctx.cleanup.callback(self.pub.close)
        self.tracker = MessageTracker()
        self.arrived = threading.Event()
        self.sub.subscribe(f"{TOPIC}/#", self._on_message, qos=qos)
        ctx.note(f"paho 2.x clients, QoS {qos}, up to 1,000 in flight; the subscriber is in the bench process, "
                 "the publisher too for latency rounds and a separate process (bench.mqtt_blast) for throughput")

    def _on_message(self, message, at: float) -> None:
        if self.stamped:
            key, sent = message.payload.split()
            self.tracker.sent(int(key), float(sent))
            self.tracker.received(int(key), at)
        else:
            self.tracker.received(int(message.payload), at)
        self.arrived.set()


def latency_round(ctx: Context, pair: Pair) -> Sample:
    pair.tracker = MessageTracker()
    for key in range(ctx.params["messages"]):
        pair.arrived.clear()
        pair.tracker.sent(key)
        pair.pub.client.publish(TOPIC + "/x", str(key), qos=pair.qos)
        pair.arrived.wait(2.0)   # a lost message costs 2 s and shows as loss, not a hang
    return pair.tracker.sample()


def throughput_round(ctx: Context, pair: Pair) -> Sample:
    """The publisher is a separate process (bench.mqtt_blast), as the bridge is."""
    tracker = pair.tracker = MessageTracker()
    count = ctx.params["messages"]
    pair.stamped = True   # the send time travels in the payload
    blaster = subprocess.Popen([PYTHON, "-m", "bench.mqtt_blast", str(pair.port), str(pair.qos), str(count),
                                TOPIC + "/x"], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while len(tracker.received_at) < count and time.monotonic() < deadline:
            if not pair.arrived.wait(3.0) and blaster.poll() is not None:
                break   # the publisher is done and nothing arrived for 3 s: the rest is lost
            pair.arrived.clear()
    finally:
        blaster.wait(60)
    pair.stamped = False
    sample = tracker.sample()
    sample.sent = count
    return sample


def _scenarios() -> list[Scenario]:
    items = []
    for qos in (0, 1):
        items.append(Scenario(
            f"ceiling_mqtt_qos{qos}_latency", title=f"paho → Mosquitto → paho, QoS {qos}, one message at a time",
            setup=lambda ctx, q=qos: Pair(ctx, q), run=latency_round,
            quick={"messages": 300}, full={"messages": 3000},
            figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct")))
        items.append(Scenario(
            f"ceiling_mqtt_qos{qos}_throughput", title=f"paho → Mosquitto → paho, QoS {qos}, as fast as possible",
            setup=lambda ctx, q=qos: Pair(ctx, q), run=throughput_round,
            quick={"messages": 5_000}, full={"messages": 100_000},
            figures=("throughput_per_s", "loss_pct", "p50_ms", "p99_ms")))
    return items


SCENARIOS = _scenarios()
