"""End to end: an MQTT ``cmd`` with an id → the board's ack → ``cmd/response`` at the sender.

One command at a time to a board's LED (on/off alternately, spread over the boards): MQTT →
mqtt_bridge → POST on the state aggregator → POST on serial_handler → a serial line with the id →
the emulated board acks → back the same way → ``cmd/response``. A response with status other
than success counts as lost. Beside the round trip, each round sends the same command straight to
the aggregator's and the handler's REST API, and reads the bridge's own ``duration_ms`` from the
responses, so the report shows which hop the time is spent in.
"""
from __future__ import annotations

import json
import statistics
import threading
import time

import requests

from bench.fixtures import authorization
from bench.harness import Context, MessageTracker, Sample, Scenario, at_most
from bench.stack import Stack, shared_stack


class Commands:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.tracker = MessageTracker()
        self.arrived = threading.Event()
        self.failures: list[str] = []
        self.bridge_ms: list[float] = []
        self.counter = 0
        stack.probe.subscribe(stack.topics.device("+") + "/cmd/response", self.on_response, qos=1)

    def on_response(self, message, at: float) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        cmd_id = body.get("cmd_id")
        if body.get("status") == "success":
            self.tracker.received(cmd_id, at)
            if isinstance(body.get("duration_ms"), (int, float)):
                self.bridge_ms.append(float(body["duration_ms"]))
        else:
            self.failures.append(f"{cmd_id}: {body.get('error')}")
        self.arrived.set()


def setup(ctx: Context) -> Commands:
    stack = shared_stack(ctx)
    ctx.note("one command at a time, LED on/off over 4 boards, QoS 1 both ways; "
             "a command that gets no success response within 10 s counts as lost")
    return ctx.shared("e2e-commands", lambda session: Commands(stack))


def run(ctx: Context, commands: Commands) -> Sample:
    tracker = commands.tracker = MessageTracker()
    boards = len(commands.stack.boards)
    publish = commands.stack.probe.client.publish
    for index in range(ctx.params["commands"]):
        commands.counter += 1
        cmd_id = f"bench-{commands.counter}"
        device = f"b{index % boards}_led"
        body = {"id": cmd_id, "values": {"state": "on" if commands.counter % 2 else "off"}}
        commands.arrived.clear()
        tracker.sent(cmd_id)
        publish(commands.stack.topics.device(device) + "/cmd", json.dumps(body), qos=1)
        deadline = time.monotonic() + 10
        while not tracker.has(cmd_id) and time.monotonic() < deadline:
            commands.arrived.wait(0.5)
            commands.arrived.clear()
    sample = tracker.sample()
    sample.figures["failed"] = float(len(commands.failures))
    # Where the time goes: the same command straight to each service's REST API, and the
    # bridge's own figure (MQTT cmd received → aggregator answered, from the response).
    if commands.bridge_ms:
        sample.figures["bridge_to_answer_p50_ms"] = statistics.median(commands.bridge_ms)
        commands.bridge_ms.clear()
    stack = commands.stack
    auth = authorization(stack.env)
    for name, url in (("aggregator_rest", f"{stack.aggregator.url}/device/b0_led/cmd"),
                      ("handler_rest", f"{stack.serial_handler.url}/sensor/b0_led/cmd")):
        times = []
        for index in range(ctx.params["direct"]):
            t0 = time.perf_counter()
            response = requests.post(url, json={"values": {"state": "on" if index % 2 else "off"}}, timeout=10,
                                     headers=auth)
            if response.status_code == 200:
                times.append(time.perf_counter() - t0)
        if times:
            sample.figures[f"{name}_p50_ms"] = statistics.median(times) * 1000
    if commands.failures:
        ctx.note(f"failed responses, e.g. {commands.failures[0]}")
        commands.failures.clear()
    return sample


SCENARIO = Scenario("e2e_command_round_trip", title="MQTT cmd → board ack → cmd/response",
                    setup=setup, run=run, baseline="ceiling_mqtt_qos1_latency", targets={"p99_ms": at_most(30)},
                    quick={"commands": 40, "direct": 10}, full={"commands": 1000, "direct": 100},
                    figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct", "bridge_to_answer_p50_ms",
                             "aggregator_rest_p50_ms", "handler_rest_p50_ms"))
