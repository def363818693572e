"""Ceiling: a bare torch forward pass (a small MLP, CPU, one thread), the floor under an inference.

The model has the shape the window automation needs (a handful of sensor features in, a few
outputs), so ml_inference's per-request latency can be read against it.
"""
from __future__ import annotations

import time

from bench.harness import Context, Sample, Scenario

FEATURES, HIDDEN, OUTPUTS = 16, 64, 4


def setup(ctx: Context):
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, OUTPUTS)).eval()
    ctx.note(f"MLP {FEATURES}→{HIDDEN}→{HIDDEN}→{OUTPUTS}, batch 1, torch {torch.__version__}, "
             "torch.set_num_threads(1), inference_mode; in the bench process")
    return torch, model


def run(ctx: Context, fixture) -> Sample:
    torch, model = fixture
    clock = time.perf_counter
    latencies = []
    x = torch.randn(1, FEATURES)
    started = clock()
    with torch.inference_mode():
        for _ in range(ctx.params["passes"]):
            t0 = clock()
            model(x)
            latencies.append(clock() - t0)
    duration = clock() - started
    return Sample(latencies_s=latencies, sent=len(latencies), received=len(latencies), duration_s=duration)


SCENARIO = Scenario("ceiling_torch_forward", title="bare torch forward pass (small MLP, CPU, 1 thread)",
                    setup=setup, run=run, quick={"passes": 2000}, full={"passes": 20_000},
                    figures=("p50_ms", "p99_ms", "max_ms", "throughput_per_s"))
