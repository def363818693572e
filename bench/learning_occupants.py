"""The `learning` scenario's question over many simulated occupants, without the service:

    .venv/bin/python -m bench.learning_occupants --seeds 8-31

The bench scenario ``ml_learning`` measures one occupant through the service (one draw of
noise, delays and slips). This runs the same steps in-process for each occupant seed — the
default weights, the occupant's corrections on situations of its own, an update after 10, 30
and 100 corrections through the same gate as the service (learning.train_candidate; a rejected
candidate leaves the parent in use) — and judges on the scenario's 500 situations. It prints
one line per occupant and how many met each target (docs/automation.md quotes it).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys

import torch

from firmware.emulator.occupant import Occupant, preference
from services.ml_inference import learning
from services.ml_inference.corrections import Correction
from services.ml_inference.rule import comfort_rule
from services.ml_inference.train import sample_inputs, train_default

STEPS = (10, 30, 100)


def occupant_run(root: torch.nn.Module, seed: int, cases, wanted, rule, agree, root_rule: float) -> list[float]:
    """``[mae before, after 10, 30, 100, rule regression after 100]`` for one occupant."""
    rng, occupant = random.Random(7 if seed == 8 else seed * 3), Occupant(seed=seed)  # seed 8: the bench's draw
    corrections = []
    for i in range(max(STEPS)):
        inputs = sample_inputs(rng)
        corrections.append(Correction(i + 1, "window", None, 0.0, "occupant", inputs, occupant.correct(inputs)[0]))

    def mae(model) -> float:
        return float((learning.predict(model, cases)[0] - wanted).abs().mean())

    def rule_error(model) -> float:
        return float((learning.predict(model, cases[agree])[0] - rule[agree]).abs().mean())

    parent, row = root, [mae(root)]
    for n in STEPS:
        candidate = learning.train_candidate(parent, corrections[:n], root_rule_mae=root_rule)
        if candidate.accepted:
            parent = candidate.model
        row.append(mae(parent))
    return [*row, rule_error(parent) - rule_error(root)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learning_occupants", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="8-31", help="occupant seeds, FIRST-LAST (default 8-31; 8 is the bench's)")
    args = parser.parse_args(argv)
    first, _, last = args.seeds.partition("-")
    seeds = range(int(first), int(last or first) + 1)
    root, _ = train_default()
    rng = random.Random(99)  # the scenario's 500 situations
    situations = [sample_inputs(rng) for _ in range(500)]
    cases = torch.tensor([learning.features(c) for c in situations])
    wanted = torch.tensor([preference(c) for c in situations])
    rule = torch.tensor([comfort_rule(c)[0] for c in situations])
    agree = (wanted - rule).abs() < 1e-6
    root_rule = learning.judge(root, [], [])["rule_mae"]
    rows = []
    print("seed  before  after10  after30  after100  rule_regression100")
    for seed in seeds:
        row = occupant_run(root, seed, cases, wanted, rule, agree, root_rule)
        rows.append(row)
        print(f"{seed:4d}  " + "  ".join(f"{v:7.2f}" for v in row), flush=True)
    ratios = [r[2] / r[0] for r in rows]
    print(f"halved after 30: {sum(v <= 0.5 for v in ratios)}/{len(rows)} (mean ratio {statistics.mean(ratios):.2f}); "
          f"≤ 8 after 100: {sum(r[3] <= 8 for r in rows)}/{len(rows)} (mean {statistics.mean(r[3] for r in rows):.2f}, "
          f"max {max(r[3] for r in rows):.2f}); rule regression ≤ 3: {sum(r[4] <= 3 for r in rows)}/{len(rows)} "
          f"(max {max(r[4] for r in rows):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
