"""ml_inference's ``POST /predict``, one input at a time, against the bare torch forward pass.

``python -m services.ml_inference`` under gunicorn with its default model, one client on a
keep-alive session. Beside the round trip: ``inference_ms`` as the service reports it (input
encoding and the forward pass, i.e. what the model costs inside the request), so the report
shows how much of the request is the model and how much is HTTP.
"""
from __future__ import annotations

import statistics
import time

import requests

from bench.fixtures import authorization, install_default_model, start_service, write_instance
from bench.harness import Context, Sample, Scenario
from bench.stack import INSTANCE, instance_document

INPUT = {"temperature": 27.5, "humidity": 68.0, "outdoor_temperature": 19.0, "motion": True,
         "sound_level": -48.0, "position": 20}


def setup(ctx: Context) -> tuple[requests.Session, str]:
    doc = instance_document(ctx.workdir, boards=0)
    assert doc["instance_id"] == INSTANCE
    _, env = write_instance(ctx, doc)
    install_default_model(ctx, env)
    service = start_service(ctx, "ml_inference", doc, env, ready_timeout=180, healthy=True)
    ctx.note("one client, keep-alive, one input per request; the default model (trained once per bench run, "
             "before any clock); server_inference_ms is the service's own figure for encoding + forward pass")
    session = requests.Session()
    session.headers.update(authorization(env))  # /predict is a POST: it takes the instance's token
    ctx.cleanup.callback(session.close)
    return session, service.url + "/predict"


def run(ctx: Context, fixture: tuple[requests.Session, str]) -> Sample:
    session, url = fixture
    clock = time.perf_counter
    latencies, inside = [], []
    started = clock()
    for _ in range(ctx.params["requests"]):
        t0 = clock()
        response = session.post(url, json=INPUT, timeout=10)
        latencies.append(clock() - t0)
        if response.status_code == 200:
            inside.append(response.json()["inference_ms"])
    sample = Sample(latencies_s=latencies, sent=len(latencies), received=len(inside), duration_s=clock() - started)
    if inside:
        sample.figures["server_inference_p50_ms"] = statistics.median(inside)
    return sample


SCENARIO = Scenario("ml_predict", title="POST /predict, one input per request (ml_inference under gunicorn)",
                    setup=setup, run=run, baseline="ceiling_torch_forward",
                    quick={"requests": 300}, full={"requests": 3000},
                    figures=("p50_ms", "p99_ms", "max_ms", "throughput_per_s", "server_inference_p50_ms"))
