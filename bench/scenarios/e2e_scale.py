"""End to end at scale: 1,000 devices — cold start, ``/devices?include=state`` latency, steady CPU/RSS.

``e2e_scale_1000_devices`` is the issue's form: half the devices on serial boards (5 boards,
100 each), half behind 50 HTTP endpoints of 10 devices each, served by one network-simulator
process (profile ``json``, readings drifting) and polled by http_poller every 5 s.
``e2e_scale_1000_serial_devices`` measures what exists today: 1,000 devices on 10 emulated boards
(100 each: 20 of each type, so one sensor line updates 100 devices), sending a line every second.

Cold start is from launching serial_handler (and http_poller) to every device online on the aggregator and the
bridge online. Each round then queries ``GET /devices?include=state`` on the aggregator back to
back (the bench's threaded client, as against the hello-world ceiling) while the boards keep
sending; CPU and peak RSS of every process are over those rounds.
"""
from __future__ import annotations

from bench.fixtures import require_files
from bench.harness import Context, Sample, Scenario, at_most
from bench.load import hammer
from bench.stack import HttpHalf, Stack

BOARDS, PER_TYPE = 10, 20      # 10 boards x 5 types x 20 = 1,000 devices
MIXED_BOARDS = 5               # 5 boards x 5 types x 20 = 500 devices on serial ...
MIXED_HTTP = HttpHalf(endpoints=50, per_endpoint=10, profile="json", poll_interval=5.0)  # ... and 500 over HTTP
STEADY_BOARD = {"interval_ms": 1000, "status_interval_ms": 30_000, "motion_hold_ms": 1000}


def setup_serial(ctx: Context) -> Stack:
    stack = Stack(ctx, boards=BOARDS, per_type=PER_TYPE, board_config=STEADY_BOARD)
    ctx.note(f"{len(stack.doc['devices'])} devices on {BOARDS} boards, a sensor line per board per second; "
             f"cold start {stack.cold_start_s:.1f} s; {ctx.params['threads']} client thread(s) on "
             f"/devices?include=state for {ctx.params['seconds']} s per round")
    return stack


def setup_mixed(ctx: Context) -> Stack:
    require_files("services/http_poller/__main__.py", "firmware/emulator/network/__main__.py")
    stack = Stack(ctx, boards=MIXED_BOARDS, per_type=PER_TYPE, board_config=STEADY_BOARD, http=MIXED_HTTP)
    serial = sum(1 for d in stack.doc["devices"] if "board" in d["source"])
    ctx.note(f"{len(stack.doc['devices'])} devices: {serial} on {MIXED_BOARDS} boards (a sensor line per board per "
             f"second), {len(stack.doc['devices']) - serial} behind {MIXED_HTTP.endpoints} HTTP endpoints "
             f"({MIXED_HTTP.profile}, polled every {MIXED_HTTP.poll_interval:g} s); cold start "
             f"{stack.cold_start_s:.1f} s; {ctx.params['threads']} client thread(s) on /devices?include=state "
             f"for {ctx.params['seconds']} s per round")
    return stack


def run(ctx: Context, stack: Stack) -> Sample:
    sample = hammer(f"{stack.aggregator.url}/devices?include=state", ctx.params["threads"], ctx.params["seconds"])
    sample.figures["cold_start_s"] = stack.cold_start_s
    sample.figures["devices"] = float(len(stack.doc["devices"]))
    return sample


COMMON = dict(run=run, baseline="ceiling_http_hello",
              baseline_figures={"p50_ms": "p50_ms", "p99_ms": "p99_ms", "throughput_per_s": "throughput_per_s"},
              targets={"cold_start_s": at_most(15), "p99_ms": at_most(20)},
              quick={"threads": 1, "seconds": 1.5}, full={"threads": 1, "seconds": 20.0},
              rounds={"quick": 2, "full": 5},
              figures=("cold_start_s", "p50_ms", "p99_ms", "max_ms", "throughput_per_s", "loss_pct"))

SCENARIOS = [
    Scenario("e2e_scale_1000_devices", title="1,000 devices (serial + HTTP)", setup=setup_mixed, **COMMON),
    # The serial-only form is a comparison for the mixed one: in the long form only (or --only).
    Scenario("e2e_scale_1000_serial_devices", title="1,000 devices on 10 serial boards", setup=setup_serial,
             full_only=True, **COMMON),
]
