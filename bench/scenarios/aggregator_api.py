"""state_aggregator with 1,000 registered devices: its REST reads and its event fan-out.

The devices belong to 200 boards (5 devices each). A scripted handler process
(``python -m testkit.scripted_handler``, the test kit's handler API on loopback)
plays serial_handler for all of them, so the figures are the aggregator's own, not a board's:
the aggregator is the real ``python -m services.state_aggregator`` under gunicorn.

- ``aggregator_devices_list``: ``GET /devices?include=state`` (all 1,000 with state), one client.
- ``aggregator_device_get``: ``GET /device/<id>`` from the cache, 4 keep-alive clients.
- ``aggregator_event_fanout``: the handler publishes 1,000 state events/s; each carries its
  ``perf_counter`` send time; the bench follows the aggregator's ``/events`` and times each
  event's arrival. Its baseline is the same load read straight from the handler's ``/events``
  (the hop the aggregator adds is the ratio).
"""
from __future__ import annotations

import threading
import time

import requests

from bench.fixtures import PYTHON, require_files, start_process, start_service, write_instance
from bench.harness import Context, Sample, Scenario, Session, at_least, at_most
from bench.load import hammer
from bench.stack import instance_document
from shared.sse import Event, EventFollower
from testkit.helpers import wait_for

BOARDS = 200  # x 5 devices = 1,000
PARTS = ("services/state_aggregator/__main__.py", "testkit/scripted_handler.py")


class Rig:
    """The scripted handler and the aggregator, shared by the three scenarios."""

    def __init__(self, session: Session) -> None:
        require_files(*PARTS)
        self.doc = instance_document(session.workdir, BOARDS)
        self.devices = [d["device_id"] for d in self.doc["devices"]]
        instances, env = write_instance(session, self.doc)
        port = self.doc["config"]["services"]["serial_handler"]["port"]
        self.handler_url = f"http://127.0.0.1:{port}"
        self.handler = start_process(session, "scripted handler", [
            PYTHON, "-m", "testkit.scripted_handler", str(port),
            str(instances / f"{self.doc['instance_id']}.json")])

        def handler_up() -> bool:
            self.handler.check_alive()
            return requests.get(self.handler_url + "/sensors", timeout=2).ok

        wait_for(handler_up, timeout=30, interval=0.05, message="the scripted handler")
        self.aggregator = start_service(session, "state_aggregator", self.doc, env)
        self.url = self.aggregator.url

        def all_online() -> bool:
            devices = requests.get(self.url + "/devices", timeout=10).json()["devices"]
            return len(devices) == len(self.devices) and all(d["online"] for d in devices)

        wait_for(all_online, timeout=60, interval=0.1, message="1,000 devices online in the aggregator")

    def track_into(self, ctx: Context) -> None:
        ctx.track("state_aggregator", self.aggregator.process.pid)
        ctx.track("scripted handler", self.handler.pid)


def rig(ctx: Context) -> Rig:
    def start(session: Session) -> Rig | BaseException:
        try:
            return Rig(session)
        except Exception as exc:  # noqa: BLE001 - remembered: every scenario reports the same reason
            return exc

    shared = ctx.shared("aggregator-rig", start)
    if isinstance(shared, BaseException):
        raise shared
    shared.track_into(ctx)
    return shared


# --------------------------------------------------------------------------- REST reads


def setup_list(ctx: Context) -> str:
    shared = rig(ctx)
    ctx.note(f"GET /devices?include=state ({len(shared.devices)} devices, every entry fresh), "
             f"{ctx.params['threads']} client thread, {ctx.params['seconds']} s per round")
    return shared.url + "/devices?include=state"


def setup_get(ctx: Context) -> str:
    shared = rig(ctx)
    ctx.note(f"GET /device/{shared.devices[7]} (a cache hit), {ctx.params['threads']} keep-alive client "
             f"threads, {ctx.params['seconds']} s per round")
    return shared.url + f"/device/{shared.devices[7]}"


def run_hammer(ctx: Context, url: str) -> Sample:
    return hammer(url, ctx.params["threads"], ctx.params["seconds"])


# --------------------------------------------------------------------------- fan-out


class FanOut:
    """Follows an SSE stream and times the ``bench``-tagged events of the current round."""

    def __init__(self, stream_url: str, handler_url: str) -> None:
        self.handler_url = handler_url
        self.lock = threading.Lock()
        self.tag = ""
        self.arrivals: dict[int, float] = {}
        self.arrived = threading.Event()
        self.follower = EventFollower(stream_url + "/events", self._on_event, read_timeout=30).start()
        wait_for(lambda: self.follower.connected, 30, message=f"{stream_url}/events")

    def _on_event(self, event: Event) -> None:
        now = time.perf_counter()
        bench = event.data.get("bench")
        if not isinstance(bench, dict) or bench.get("tag") != self.tag:
            return
        with self.lock:
            self.arrivals.setdefault(bench["key"], now - bench["sent_at"])
        self.arrived.set()

    def round(self, rate: float, seconds: float, tag: str) -> Sample:
        count = int(rate * seconds)
        with self.lock:
            self.tag, self.arrivals = tag, {}
        started = time.perf_counter()
        requests.post(self.handler_url + "/emit", json={"count": count, "rate": rate, "tag": tag},
                      timeout=10).raise_for_status()
        while len(self.arrivals) < count:   # until all arrived or nothing for 3 s (the rest is lost)
            self.arrived.clear()
            if not self.arrived.wait(3.0):
                break
        with self.lock:
            latencies = list(self.arrivals.values())
        return Sample(latencies_s=latencies, sent=count, received=len(latencies),
                      duration_s=time.perf_counter() - started)

    def close(self) -> None:
        self.follower.stop()


def setup_fanout(ctx: Context) -> FanOut:
    shared = rig(ctx)
    fan = FanOut(shared.url, shared.handler_url)
    ctx.cleanup.callback(fan.close)
    ctx.note(f"{ctx.params['rate']} state events/s for {ctx.params['seconds']} s per round, round-robin over "
             f"{len(shared.devices)} devices; latency = handler publish -> event parsed by an EventFollower "
             "on the aggregator's /events (in the bench process)")
    return fan


_rounds = iter(range(10**9))


def run_fanout(ctx: Context, fan: FanOut) -> Sample:
    return fan.round(ctx.params["rate"], ctx.params["seconds"], f"agg-{next(_rounds)}")


def direct_handler_stream(ctx: Context) -> dict[str, float]:
    """Baseline: the same load read straight from the handler's /events (no aggregator)."""
    from bench.harness import summarise

    shared = rig(ctx)
    direct = FanOut(shared.handler_url, shared.handler_url)
    try:
        direct.round(ctx.params["rate"], 1.0, "direct-warmup")
        samples = [direct.round(ctx.params["rate"], ctx.params["seconds"], f"direct-{i}") for i in range(3)]
    finally:
        direct.close()
    return summarise(samples)[0]


SCENARIOS = [
    Scenario("aggregator_devices_list", title="GET /devices?include=state, 1,000 devices",
             setup=setup_list, run=run_hammer, baseline="ceiling_http_hello",
             targets={"p99_ms": at_most(20)}, quick={"threads": 1, "seconds": 1.0},
             full={"threads": 1, "seconds": 10.0},
             figures=("p50_ms", "p99_ms", "throughput_per_s", "loss_pct")),
    Scenario("aggregator_device_get", title="GET /device/<id> (cache hit), 1,000 devices",
             setup=setup_get, run=run_hammer, baseline="ceiling_http_hello",
             targets={"throughput_per_s": at_least(1500)}, quick={"threads": 4, "seconds": 1.0},
             full={"threads": 4, "seconds": 10.0},
             figures=("throughput_per_s", "p50_ms", "p99_ms", "loss_pct")),
    Scenario("aggregator_event_fanout", title="handler /events -> aggregator /events at 1,000 events/s",
             setup=setup_fanout, run=run_fanout, baseline=direct_handler_stream,
             targets={"p99_ms": at_most(5)}, quick={"rate": 1000, "seconds": 1.0},
             full={"rate": 1000, "seconds": 10.0},
             figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct")),
]
