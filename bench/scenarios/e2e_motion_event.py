"""End to end: a PIR trigger on an emulated board → ``motion_started`` on MQTT ``events``.

The control channel raises the board's PIR input (``{"motion": true}``); the firmware sends the
event line from its interrupt path; the figure is the time until the event arrives on
``.../devices/b<i>_motion/events``. Between triggers the PIR goes low and the bench waits for
``motion_stopped`` (the boards hold motion for 50 ms), so every trigger is a fresh rising edge.
"""
from __future__ import annotations

import json
import threading

from bench.harness import Context, MessageTracker, Sample, Scenario
from bench.stack import Stack, shared_stack


class Motion:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.tracker = MessageTracker()
        self.events: dict[str, threading.Event] = {}
        self.pending: dict[str, object] = {}
        stack.probe.subscribe(stack.topics.device("+") + "/events", self.on_event, qos=1)

    def on_event(self, message, at: float) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        device = message.topic.split("/devices/", 1)[1].split("/", 1)[0]
        name = body.get("event")
        if name == "motion_started" and device in self.pending:
            self.tracker.received(self.pending.pop(device), at)
        flag = self.events.get(f"{device}:{name}")
        if flag is not None:
            flag.set()

    def expect(self, device: str, name: str) -> threading.Event:
        flag = self.events[f"{device}:{name}"] = threading.Event()
        return flag


def setup(ctx: Context) -> Motion:
    stack = shared_stack(ctx)
    ctx.note("one trigger at a time over 4 boards; a trigger whose event does not arrive within 5 s counts "
             "as lost; the bench waits for motion_stopped before the next trigger on a board")
    return ctx.shared("e2e-motion", lambda session: Motion(stack))


def run(ctx: Context, motion: Motion) -> Sample:
    tracker = motion.tracker = MessageTracker()
    boards = motion.stack.boards
    for index in range(ctx.params["triggers"]):
        board = index % len(boards)
        device = f"b{board}_motion"
        started = motion.expect(device, "motion_started")
        stopped = motion.expect(device, "motion_stopped")
        key = (device, index)
        motion.pending[device] = key
        tracker.sent(key)
        boards[board].control.request({"motion": True})
        started.wait(5)
        boards[board].control.request({"motion": False})
        stopped.wait(5)
        motion.pending.pop(device, None)
    sample = tracker.sample()
    sample.duration_s = 0.0   # one at a time with pauses: a throughput would mean nothing
    return sample


SCENARIO = Scenario("e2e_motion_event", title="PIR trigger → MQTT motion_started event",
                    setup=setup, run=run, baseline="ceiling_mqtt_qos1_latency",
                    quick={"triggers": 20}, full={"triggers": 300},
                    figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct"))
