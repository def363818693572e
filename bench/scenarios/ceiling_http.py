"""Ceiling: a Flask hello world under the services' own gunicorn launcher, hit by the bench's
threaded HTTP client (bench.load, the same client that measures the services' REST endpoints)."""
from __future__ import annotations

import requests

from bench.fixtures import PYTHON, free_ports, start_process
from bench.harness import Context, Sample, Scenario
from bench.load import hammer
from testkit.helpers import wait_for


def setup(ctx: Context) -> str:
    (port,) = free_ports(1)
    process = start_process(ctx, "gunicorn hello", [PYTHON, "-m", "bench.hello_app", str(port)])
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        process.check_alive()
        return requests.get(url, timeout=1).status_code == 200

    wait_for(up, timeout=30, interval=0.05, message="the hello app")
    ctx.note(f"shared.server.serve (gunicorn, 1 gthread worker); {ctx.params['threads']} client threads "
             f"(http.client, keep-alive) in the bench process for {ctx.params['seconds']} s per round")
    return url


def run(ctx: Context, url: str) -> Sample:
    return hammer(url, ctx.params["threads"], ctx.params["seconds"])


SCENARIOS = [
    # One client: the latency of a request with nothing else going on (compare single-client scenarios).
    Scenario("ceiling_http_hello", title="Flask hello world under gunicorn (the services' launcher), 1 client",
             setup=setup, run=run, quick={"threads": 1, "seconds": 1.0}, full={"threads": 1, "seconds": 10.0},
             figures=("throughput_per_s", "p50_ms", "p99_ms", "loss_pct")),
    # Four clients: what one gunicorn worker serves (compare concurrent-client scenarios).
    Scenario("ceiling_http_hello_concurrent", title="Flask hello world under gunicorn, 4 concurrent clients",
             setup=setup, run=run, quick={"threads": 4, "seconds": 1.0}, full={"threads": 4, "seconds": 10.0},
             figures=("throughput_per_s", "p50_ms", "p99_ms", "loss_pct")),
]
