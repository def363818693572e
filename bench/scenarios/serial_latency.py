"""serial_handler: a sensor line written by an emulated board → its ``state`` event on ``/events``.

Four emulated boards run with ``--timestamps``: every sensor line carries ``ts``, the emulator's
``time.time()`` when it wrote the line. The handler passes it on as ``board_ts`` in the ``state``
events the line causes; the bench follows ``GET /events`` (``shared.sse.EventFollower``) and
takes ``time.time()`` on arrival. A line whose readings all equal the previous ones causes no
``state`` event (by design); the figure covers the lines that did (see ``lines_with_event_pct``).
The rate is set per round through the handler's own board command (``config`` ``interval_ms``),
so the boards write at 100 or 1,000 lines/s in total. Loss is the handler's sequence-gap count.
The baseline is ``ceiling_serial_latency`` (a raw pty write → pyserial read, same run).
"""
from __future__ import annotations

import threading
import time
from typing import Any

import requests

from bench.fixtures import (
    authorization,
    free_ports,
    require_files,
    start_emulator,
    start_service,
    write_instance,
)
from bench.harness import Context, Sample, Scenario, at_most
from shared.sse import Event, EventFollower
from testkit.helpers import wait_for

BOARDS = 4
QUIET_MS = 60_000
TYPES = ("temperature", "humidity", "motion", "sound_level", "battery")


def instance(workdir: Any) -> dict[str, Any]:
    names = ("serial_handler", "http_poller", "state_aggregator", "ml_inference")
    services = {name: {"host": "127.0.0.1", "port": port}
                for name, port in zip(names, free_ports(len(names)), strict=True)}
    serial_ports, devices = [], []
    for index in range(BOARDS):
        board = f"b{index}"
        serial_ports.append({"board_id": board, "name": f"Bench board {index}", "port": str(workdir / f"tty-{board}"),
                             "silence_timeout": 120, "command_timeout": 5})
        devices += [{"device_id": f"{board}_{t}", "name": f"{board} {t}", "type": t, "source": {"board": board}}
                    for t in TYPES]
    return {"instance_id": "bench_serial", "connector_type": "sensor-hub", "friendly_name": "bench",
            "update_interval": 3600, "devices": devices, "groups": [],
            "config": {"serial_ports": serial_ports, "http_endpoints": [], "window_automations": [],
                       "cache_ttl": 30, "services": services}}


class SerialBench:
    """Four boards and the serial handler (real processes), and a follower on its /events."""

    def __init__(self, session: Any) -> None:
        require_files("services/serial_handler/__main__.py", "firmware/emulator/__main__.py")
        self.doc = instance(session.workdir)
        self.boards = [start_emulator(session, f"b{i}", interval_ms=QUIET_MS, timestamps=True,
                                      link=session.workdir / f"tty-b{i}") for i in range(BOARDS)]
        _, env = write_instance(session, self.doc)
        self.service = start_service(session, "serial_handler", self.doc, env, healthy=True)
        self.url = self.service.url
        self.auth = authorization(env)
        self.lock = threading.Lock()
        self.arrivals: dict[tuple[str, float], float] = {}
        self.recording = False
        self.follower = EventFollower(self.url + "/events", self.on_event, read_timeout=30).start()
        session.cleanup.callback(self.follower.stop)
        wait_for(lambda: self.follower.connected, 20, message="the /events stream")

    def on_event(self, event: Event) -> None:
        at = time.time()
        data = event.data
        if not self.recording or event.kind != "state" or "board_ts" not in data:
            return
        key = (data["device_id"].split("_", 1)[0], data["board_ts"])
        with self.lock:
            self.arrivals.setdefault(key, at)  # several devices change per line: the first counts

    def drain(self, quiet_s: float = 0.3, limit_s: float = 5.0) -> None:
        """Until no new line has caused an event for ``quiet_s`` (the last lines are in)."""
        deadline = time.monotonic() + limit_s
        seen, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            with self.lock:
                count = len(self.arrivals)
            if count != seen:
                seen, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.05)

    def counters(self) -> tuple[int, int]:
        boards = requests.get(self.url + "/boards", timeout=10).json()["boards"]
        return (sum(b["counters"]["lines_ok"] for b in boards), sum(b["counters"]["lost"] for b in boards))

    def set_interval(self, interval_ms: int) -> None:
        for index in range(BOARDS):
            answer = requests.post(f"{self.url}/boards/b{index}/cmd",
                                   json={"type": "config", "interval_ms": interval_ms}, timeout=10,
                                   headers=self.auth)
            answer.raise_for_status()


def setup(ctx: Context) -> SerialBench:
    bench = ctx.shared("serial-latency", SerialBench)
    for index, board in enumerate(bench.boards):
        ctx.track(f"emulator-b{index}", board.process.pid)
    ctx.track("serial_handler", bench.service.process.pid)
    ctx.note(f"{BOARDS} emulated boards (--timestamps), {ctx.params['rate']:,} sensor lines/s in total for "
             f"{ctx.params['seconds']} s per round; latency = arrival of the first state event of a line on "
             "/events (EventFollower in the bench) − the line's ts written by the emulator (time.time())")
    return bench


def run(ctx: Context, bench: SerialBench) -> Sample:
    rate, seconds = ctx.params["rate"], ctx.params["seconds"]
    lines_before, lost_before = bench.counters()
    with bench.lock:
        bench.arrivals = {}
    bench.recording = True
    started = time.time()
    bench.set_interval(max(1, round(BOARDS * 1000 / rate)))
    time.sleep(seconds)  # the load runs for a fixed time; arrivals are timestamped, not waited for
    bench.set_interval(QUIET_MS)
    bench.drain()
    bench.recording = False
    lines_after, lost_after = bench.counters()
    with bench.lock:
        arrivals = dict(bench.arrivals)
    latencies = [at - ts for (_, ts), at in arrivals.items() if ts >= started]
    lines = lines_after - lines_before
    lost = lost_after - lost_before
    duration = time.time() - started
    return Sample(latencies_s=latencies, sent=lines + lost, received=lines, duration_s=duration,
                  figures={"lines_per_s": lines / duration if duration else 0.0,
                           "lines_with_event_pct": 100.0 * len(latencies) / lines if lines else 0.0,
                           "lost_lines": float(lost)})


def _scenario(rate: int, quick_s: float, full_s: float, targets: dict) -> Scenario:
    return Scenario(f"serial_latency_{rate}", title=f"serial line → /events state, {rate:,} lines/s over 4 boards",
                    setup=setup, run=run, baseline="ceiling_serial_latency", targets=targets,
                    quick={"rate": rate, "seconds": quick_s}, full={"rate": rate, "seconds": full_s},
                    figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct", "lines_per_s",
                             "lines_with_event_pct"))


SCENARIOS = [
    _scenario(100, 1.5, 20.0, {"p99_ms": at_most(5), "loss_pct": at_most(0)}),
    _scenario(1000, 1.5, 20.0, {"p99_ms": at_most(5), "loss_pct": at_most(0)}),
]
