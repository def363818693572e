"""End to end: a sensor input changes → the model's recommendation → the window command, acked by
the board and on MQTT.

A connector of its own (``Stack(automation=True)``: one board, ml_inference with the default model,
a window automation on b0 fed by the board's temperature, humidity and motion). Each change
alternates b0's pinned temperature between 30 °C (the rule opens about 60 %) and 21 °C (closed)
and has the board send a sensor line at once (the control channel's ``burst``); the clock runs
from that request until the window's MQTT ``state`` shows the new target, which the serial handler
sets from the board's ack of the automation's ``window`` command. The path: board line → serial
handler → aggregator (push) → the automation's debounce (20 ms) → ``POST /automation/<id>/evaluate``
on ml_inference → command routing → serial handler → board ack → aggregator → bridge → MQTT.
Figures beside it: the same change to the ``automation_moved`` event on MQTT, and the mean time
ml_inference spent in the model per evaluation (its own histogram).
"""
from __future__ import annotations

import json
import threading
import time

import requests

from bench.harness import Context, MessageTracker, Sample, Scenario
from bench.stack import AUTOMATION, Stack

WARM, COOL = 30.0, 21.0


def _opened(target: float) -> bool:
    return target >= 40


def _closed(target: float) -> bool:
    return target <= 5


class Automation:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.board = stack.boards[0]
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.window: dict = {}
        self.expect = None
        self.key = None
        self.moved_key = None
        self.tracker = MessageTracker()
        self.moved = MessageTracker()
        self.changes = 0
        self.idle = False  # the automation's last decision was "stay": nothing pending
        window = stack.topics.device("b0_window")
        stack.probe.subscribe(window + "/state", self.on_state, qos=1)
        stack.probe.subscribe(window + "/events", self.on_event, qos=1)
        self.board.control.request({"motion": False})

    def on_state(self, message, at: float) -> None:
        try:
            state = json.loads(message.payload)["state"]
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            self.window = state
            if self.key is not None and self.expect is not None and self.expect(state.get("target", -1)):
                self.tracker.received(self.key, at)
                self.key = None
        self.changed.set()

    def on_event(self, message, at: float) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        if body.get("event") == "automation_moved" and self.moved_key is not None:
            self.moved.received(self.moved_key, at)
            self.moved_key = None
        if body.get("event") == "automation_recommendation":
            self.idle = (body.get("data") or {}).get("action") == "stay"
        self.changed.set()

    def wait(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.wait(min(left, 0.5))
            self.changed.clear()
        return True

    def still_at(self, check) -> bool:
        with self.lock:
            return self.window.get("moving") is False and check(self.window.get("position", -1))

    def change(self) -> None:
        """One input change, timed; then wait for the window to be still at its new place and the
        automation idle (its evaluation after the window stopped said "stay"), so that every change
        starts from a quiet automation and no pending evaluation serves it early."""
        self.changes += 1
        warm = self.changes % 2 == 1
        check = _opened if warm else _closed
        self.board.control.request({"set": {"temperature": WARM if warm else COOL, "humidity": 45.0}})
        with self.lock:
            self.expect, self.key, self.moved_key = check, self.changes, self.changes
            self.idle = False
        self.tracker.sent(self.changes)
        self.moved.sent(self.changes)
        self.board.control.request({"burst": 1})
        self.wait(lambda: self.tracker.has(self.changes) and self.moved.has(self.changes), 10)
        self.wait(lambda: self.still_at(check) and self.idle, 10)
        with self.lock:
            self.key = self.moved_key = None

    def evaluations(self) -> int:
        """Evaluations the aggregator's automation has made so far (its /health)."""
        health = requests.get(self.stack.aggregator.url + "/health", timeout=5).json()
        return int(health["automations"][AUTOMATION]["evaluations"])

    def inference(self) -> tuple[float, float]:
        """ml_inference's model time so far: (seconds, requests), from its /metrics."""
        text = requests.get(self.stack.ml_inference.url + "/metrics", timeout=5).text
        values = {"sum": 0.0, "count": 0.0}
        for line in text.splitlines():
            for part in values:
                if line.startswith(f"sensor_hub_inference_seconds_{part} "):
                    values[part] = float(line.split(" ", 1)[1])
        return values["sum"], values["count"]


def setup(ctx: Context) -> Automation:
    ctx.note("one board, a window automation on b0 (temperature, humidity, motion → window), its interval an hour; "
             "one input change at a time, alternating 30 °C (opens ~60 %) and 21 °C (closes), the window still "
             "before the next; a change whose new target is not on MQTT within 10 s counts as lost. The latency "
             "includes the automation's 20 ms debounce (it gathers the several readings of one sensor line)")

    def start(scope) -> Automation:
        automation = Automation(Stack(scope, boards=1, automation=True))
        automation.change()  # the window's position is known from here on (and the path is warm)
        automation.change()
        return automation

    automation = ctx.shared("e2e-window-automation", start)
    automation.stack.track_into(ctx)
    return automation


def run(ctx: Context, automation: Automation) -> Sample:
    automation.tracker, automation.moved = MessageTracker(), MessageTracker()
    model_s, requests_before = automation.inference()
    evaluations = automation.evaluations()
    for _ in range(ctx.params["changes"]):
        automation.change()
    sample = automation.tracker.sample()
    sample.duration_s = 0.0  # one change at a time, each waiting for the window: no throughput
    moved = automation.moved.sample().latencies_s
    if moved:
        moved.sort()
        sample.figures["moved_event_p50_ms"] = moved[len(moved) // 2] * 1000
    model_after, requests_after = automation.inference()
    if requests_after > requests_before:
        sample.figures["model_mean_ms"] = (model_after - model_s) / (requests_after - requests_before) * 1000
    sample.figures["evaluations_per_change"] = (automation.evaluations() - evaluations) / ctx.params["changes"]
    return sample


SCENARIO = Scenario("e2e_window_automation", title="input change → recommendation → window command acked (MQTT)",
                    setup=setup, run=run, baseline="ceiling_torch_forward",
                    quick={"changes": 8}, full={"changes": 200},
                    figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct", "moved_event_p50_ms",
                             "model_mean_ms", "evaluations_per_change"))
