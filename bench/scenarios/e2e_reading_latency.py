"""End to end: a reading set on an emulated board → its MQTT ``state`` at a subscriber.

The bench asks a board, through its control channel, to send a sensor line with a temperature
no physics would produce (a unique value per message), and times it to the moment that value
arrives on ``.../devices/b<i>_temperature/state``. The whole path is in the figure: control
socket, the board's serial line, serial_handler, its SSE stream, the state aggregator, its SSE
stream, the MQTT bridge, Mosquitto, paho. Readings are spread evenly over 4 boards at a fixed
total rate (10, 100 and 1,000 readings/s).

The reading is sent with the control channel's ``emit`` (a sensor line now) rather than ``set``
(which pins a value for the *next* periodic line): with ``set`` the figure would mostly be the
wait for the board's interval, not the connector.
"""
from __future__ import annotations

import json
import threading
import time

from bench.harness import Context, MessageTracker, Sample, Scenario, at_most
from bench.stack import Stack, shared_stack

BOARDS = 4


class Readings:
    """Sends readings at a rate and matches them on MQTT by (device, unique temperature)."""

    def __init__(self, ctx: Context, stack: Stack) -> None:
        self.stack = stack
        self.tracker = MessageTracker()
        self.arrived = threading.Event()
        self.counters = [0] * len(stack.boards)
        self.subscriber = stack.probe
        self.listening = False

    def on_state(self, message, at: float) -> None:
        try:
            body = json.loads(message.payload)
            value = body["state"]["temperature"]
        except (ValueError, KeyError, TypeError):
            return   # a state without a temperature (another property changed)
        self.tracker.received((body.get("device_id"), round(value, 3)), at)
        self.arrived.set()

    def next_value(self, board: int) -> float:
        # One counter per board (the key is device + value): -40.000 .. 84.999 in steps of 0.001,
        # the sensor's valid range, 125,000 values per board before one repeats; the emulated
        # room's own readings (one decimal, once a minute) are simply not in the tracker.
        self.counters[board] = (self.counters[board] + 1) % 125_000
        return round(-40 + self.counters[board] / 1000, 3)

    def send_at_rate(self, rate: float, count: int) -> MessageTracker:
        tracker = self.tracker = MessageTracker()
        controls = [board.sender for board in self.stack.boards]
        period = 1.0 / rate
        clock = time.perf_counter
        start = clock()
        for index in range(count):
            due = start + index * period
            while (now := clock()) < due:
                time.sleep(min(due - now, 0.002))
            board = index % len(controls)
            value = self.next_value(board)
            tracker.sent((f"b{board}_temperature", value))
            controls[board].send({"emit": {"type": "sensor", "temperature": value}})
        return tracker

    def wait_delivered(self, tracker: MessageTracker, quiet_s: float = 1.5) -> None:
        """Until every reading arrived, or nothing arrived for ``quiet_s`` (the rest is lost)."""
        while tracker.outstanding:
            self.arrived.clear()
            if not self.arrived.wait(quiet_s):
                return


def shared_readings(ctx: Context) -> Readings:
    """One Readings (and one subscription) for every scenario of the invocation."""
    stack = shared_stack(ctx, BOARDS)
    return ctx.shared("e2e-readings", lambda session: _subscribe(Readings(ctx, stack)))


def setup(ctx: Context) -> Readings:
    readings = shared_readings(ctx)
    ctx.note(f"{BOARDS} emulated boards, {ctx.params['rate']} readings/s in total for "
             f"{ctx.params['seconds']} s per round; bridge publishes at its default QoS 1, the subscriber "
             "(paho, in the bench process) subscribes at QoS 1")
    ctx.note("loss counts readings that never reached MQTT, including those the bridge's outbox replaced "
             "with a newer state of the same device before publishing (bridge/outbox.py keeps the newest "
             "pending state per topic); stale devices counts devices whose newest reading never arrived")
    return readings


def _subscribe(readings: Readings) -> Readings:
    readings.subscriber.subscribe(readings.stack.topics.state("+"), readings.on_state, qos=1)
    return readings


def run(ctx: Context, readings: Readings) -> Sample:
    rate, seconds = ctx.params["rate"], ctx.params["seconds"]
    tracker = readings.send_at_rate(rate, max(1, int(rate * seconds)))
    readings.wait_delivered(tracker)
    return with_final_states(tracker)


def with_final_states(tracker: MessageTracker) -> Sample:
    """The sample, plus ``stale_devices``: devices whose *last* reading never arrived.

    The bridge's outbox keeps only the newest pending state per topic (bridge/outbox.py), so
    under load an older reading can be replaced before it is published: that shows as loss,
    while the newest state still arrives. A stale device is a real loss of the current state."""
    last: dict[str, tuple[str, float]] = {}
    for key in tracker.sent_at:   # insertion order is send order
        last[key[0]] = key
    sample = tracker.sample()
    sample.figures["stale_devices"] = float(sum(1 for key in last.values() if not tracker.has(key)))
    return sample


def _scenario(rate: int, quick_s: float, full_s: float, targets: dict) -> Scenario:
    return Scenario(f"e2e_reading_latency_{rate}", title=f"reading → MQTT state, {rate:,} readings/s over 4 boards",
                    setup=setup, run=run, baseline="ceiling_mqtt_qos1_latency", targets=targets,
                    quick={"rate": rate, "seconds": quick_s}, full={"rate": rate, "seconds": full_s},
                    figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct", "duplicates", "stale_devices"))


SCENARIOS = [
    _scenario(10, 1.5, 30.0, {}),
    _scenario(100, 2.0, 30.0, {"p50_ms": at_most(3), "p99_ms": at_most(15)}),
    _scenario(1000, 1.0, 20.0, {"p99_ms": at_most(30)}),
]
