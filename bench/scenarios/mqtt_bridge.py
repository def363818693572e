"""The MQTT bridge, each figure beside raw paho → Mosquitto measured in the same run.

* ``mqtt_cmd_round_trip``: MQTT ``cmd`` with an id → bridge → aggregator → serial handler →
  emulated board's ack → back → ``cmd/response`` at the subscriber; one command at a time.
  Target p99 ≤ 30 ms (ceiling: one QoS 1 trip through the broker).
* ``mqtt_event_delivery``: an event published on an aggregator-shaped ``/events`` stream (a real
  ``shared.sse.EventPublisher`` over HTTP in the bench process) → ``python mqtt_bridge.py`` →
  ``devices/<d>/events`` at the subscriber, at 200 events/s. Isolates the bridge.
* ``mqtt_bridge_qos1_throughput``: the same stream as fast as the publisher goes; messages/s the
  bridge gets through the outbox to the subscriber. Target ≥ 40 % of the raw QoS 1 rate (the
  ratio column against ``ceiling_mqtt_qos1_throughput``).
"""
from __future__ import annotations

import copy
import json
import socket
import threading
import time
from dataclasses import replace

from bench.fixtures import MqttClient, api_token, require_files, start_bridge, start_broker, write_instance
from bench.harness import Context, MessageTracker, Sample, Scenario, at_most
from bench.stack import Stack, shared_stack
from shared.config import settings_from_dict
from shared.sse import EventPublisher
from shared.topics import Topics
from testkit.example import example_document
from testkit.helpers import free_port

INSTANCE = "sensor_hub_01"


# --------------------------------------------------------------------------- round trip


class RoundTrip:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.tracker = MessageTracker()
        self.arrived = threading.Event()
        stack.probe.subscribe(stack.topics.cmd_response("+"), self.on_response, qos=1)
        stack.probe.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def on_response(self, message, at: float) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        if body.get("status") == "success":
            self.tracker.received(body.get("cmd_id"), at)
        self.arrived.set()


def round_trip_setup(ctx: Context) -> RoundTrip:
    stack = shared_stack(ctx, 4)
    ctx.note("one command at a time to b0_led (alternating colours), QoS 1 both ways; the board is emulated "
             "on a pty, so the serial time is the emulator's, not a UART's")
    ctx.note("TCP_NODELAY on the probe's socket: without it (paho does not set it) its PUBLISH waits behind its "
             "own PUBACK for the broker's delayed ACK, +40 ms that are the bench's, not the bridge's; Mosquitto "
             "needs `set_tcp_nodelay true` for the same reason on its side")
    return ctx.shared("mqtt-round-trip", lambda session: RoundTrip(stack))


def round_trip_run(ctx: Context, rt: RoundTrip) -> Sample:
    tracker = rt.tracker = MessageTracker()
    topic = rt.stack.topics.device("b0_led") + "/cmd"
    for n in range(ctx.params["commands"]):
        cmd_id = f"rt-{time.monotonic_ns()}-{n}"
        rt.arrived.clear()
        tracker.sent(cmd_id)
        payload = json.dumps({"id": cmd_id, "values": {"color": "#ff0000" if n % 2 else "#0000ff"}})
        rt.stack.probe.client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 5
        while not tracker.has(cmd_id) and time.monotonic() < deadline:
            rt.arrived.wait(0.5)
            rt.arrived.clear()
    return tracker.sample()


# --------------------------------------------------------------------------- bridge alone


class BridgeAlone:
    """Broker + an aggregator-shaped HTTP server in this process + the bridge as a process."""

    def __init__(self, session) -> None:
        from testkit.fake_aggregator import FakeAggregator  # the tests' aggregator stand-in

        require_files("mqtt_bridge.py")
        doc = copy.deepcopy(example_document())
        doc["config"]["services"]["state_aggregator"]["port"] = free_port()
        doc["update_interval"] = 3600
        _, env = write_instance(session, doc)
        # The stand-in takes commands with the token the bridge will read from the data folder.
        settings = replace(settings_from_dict(doc, {"INSTANCE_NAME": INSTANCE}), api_token=api_token(env))
        self.topics = Topics("IoT2mqtt", INSTANCE)
        self.aggregator = FakeAggregator(settings, port=doc["config"]["services"]["state_aggregator"]["port"])
        # Room for a whole burst: the figure is the bridge's rate, not the SSE queue's bound.
        self.aggregator.publisher = EventPublisher(history=50_000, client_queue=50_000, heartbeat_s=1.0)
        self.aggregator.start()
        session.cleanup.callback(self.aggregator.stop)
        self.broker = start_broker(session)
        self.bridge = start_bridge(session, env, self.broker, INSTANCE)
        self.probe = MqttClient(self.broker.port, "bridge-alone-probe", max_inflight=1000)
        session.cleanup.callback(self.probe.close)
        self.tracker = MessageTracker()
        self.arrived = threading.Event()
        self.probe.subscribe(self.topics.events("living_motion"), self.on_event, qos=1)

    def on_event(self, message, at: float) -> None:
        try:
            data = json.loads(message.payload)["data"]
            self.tracker.sent(data["n"], data["sent"])
            self.tracker.received(data["n"], at)
        except (ValueError, KeyError, TypeError):
            return
        self.arrived.set()

    def emit(self, count: int, rate: float | None) -> MessageTracker:
        tracker = self.tracker = MessageTracker()
        publish = self.aggregator.publisher.publish
        start = time.perf_counter()
        for n in range(count):
            if rate:
                due = start + n / rate
                while (now := time.perf_counter()) < due:
                    time.sleep(min(due - now, 0.002))
            publish("event", {"device_id": "living_motion", "event": "motion_started",
                              "data": {"n": n, "sent": time.perf_counter()}})
        return tracker

    def wait(self, tracker: MessageTracker, count: int, quiet_s: float = 3.0) -> None:
        while len(tracker.received_at) < count:
            self.arrived.clear()
            if not self.arrived.wait(quiet_s):
                return


def alone_setup(ctx: Context) -> BridgeAlone:
    alone = ctx.shared("mqtt-bridge-alone", BridgeAlone)
    ctx.track("mqtt_bridge", alone.bridge.pid)
    ctx.note("the aggregator side is a real shared.sse.EventPublisher over HTTP in the bench process; every "
             "event also goes to <base>/v1/global/events, so the bridge publishes two QoS 1 messages per event")
    return alone


def delivery_run(ctx: Context, alone: BridgeAlone) -> Sample:
    count = int(ctx.params["rate"] * ctx.params["seconds"])
    tracker = alone.emit(count, ctx.params["rate"])
    alone.wait(tracker, count)
    sample = tracker.sample()
    sample.sent = count
    return sample


def throughput_run(ctx: Context, alone: BridgeAlone) -> Sample:
    count = ctx.params["messages"]
    tracker = alone.emit(count, None)
    alone.wait(tracker, count)
    sample = tracker.sample()
    sample.sent = count
    return sample


SCENARIOS = [
    Scenario("mqtt_cmd_round_trip", title="MQTT cmd → board ack → cmd/response, one at a time",
             setup=round_trip_setup, run=round_trip_run, baseline="ceiling_mqtt_qos1_latency",
             targets={"p99_ms": at_most(30)}, quick={"commands": 100}, full={"commands": 1000},
             figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct")),
    Scenario("mqtt_event_delivery", title="aggregator event → MQTT events topic, 200 events/s",
             setup=alone_setup, run=delivery_run, baseline="ceiling_mqtt_qos1_latency",
             quick={"rate": 200, "seconds": 2}, full={"rate": 200, "seconds": 20},
             figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct", "duplicates")),
    Scenario("mqtt_bridge_qos1_throughput", title="bridge sustained QoS 1 publish rate (events through the outbox)",
             setup=alone_setup, run=throughput_run, baseline="ceiling_mqtt_qos1_throughput",
             quick={"messages": 2000}, full={"messages": 20000},
             figures=("throughput_per_s", "loss_pct", "p50_ms", "p99_ms")),
]
