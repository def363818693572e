"""End to end: the highest reading rate the instance carries with no lost or duplicated state.

Readings go in as in e2e_reading_latency (unique values, 4 boards, control channel) at a rate
that climbs a ladder; each step lasts ``seconds`` (60 s in the full form). A step passes when
every reading arrived on MQTT exactly once. The figure is the highest passing rate; the steps
are listed in the notes. A reading replaced in the bridge's outbox by a newer one for the same
device before it was published counts as lost here: the issue asks for every state.
"""
from __future__ import annotations

from bench.harness import Context, Sample, Scenario, at_least
from bench.scenarios.e2e_reading_latency import Readings, shared_readings, with_final_states


def setup(ctx: Context) -> Readings:
    readings = shared_readings(ctx)
    ctx.note(f"ladder {', '.join(str(r) for r in ctx.params['rates'])} readings/s, {ctx.params['seconds']} s "
             "per step over 4 boards, QoS 1; the ladder stops at the first step with a loss or a duplicate")
    return readings


def run(ctx: Context, readings: Readings) -> Sample:
    best = 0.0
    steps = []
    last = Sample()
    for rate in ctx.params["rates"]:
        tracker = readings.send_at_rate(rate, int(rate * ctx.params["seconds"]))
        readings.wait_delivered(tracker)
        sample = with_final_states(tracker)
        lost = sample.sent - sample.received
        steps.append(f"{rate}/s: {lost} lost, {sample.duplicates} duplicated, "
                     f"{int(sample.figures['stale_devices'])} device(s) left stale")
        last = sample
        if lost or sample.duplicates:
            break
        best = float(rate)
    ctx.note("steps: " + "; ".join(steps))
    last.figures["max_zero_loss_per_s"] = best
    return last


SCENARIO = Scenario(
    "e2e_sustained_throughput", title="sustained readings/s end to end with zero loss (QoS 1)",
    setup=setup, run=run, baseline="ceiling_mqtt_qos1_throughput",
    baseline_figures={"max_zero_loss_per_s": "throughput_per_s", "throughput_per_s": "throughput_per_s"},
    targets={"max_zero_loss_per_s": at_least(3000)},
    quick={"rates": [100, 250, 500, 1000, 2000, 3000], "seconds": 2.0},
    full={"rates": [100, 250, 500, 750, 1000, 1500, 2000, 3000, 4000], "seconds": 60.0},
    rounds={"quick": 1, "full": 1}, warmup=False,
    figures=("max_zero_loss_per_s", "throughput_per_s", "p50_ms", "p99_ms", "loss_pct"))
