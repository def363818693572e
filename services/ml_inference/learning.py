"""Incremental training from corrections: a candidate model, its validation and the verdict.
Pure functions of their arguments (no service, no files): the learner (learner.py) runs them
in a background thread and keeps the result (versions.py).

* **Held out**: every ``HOLDOUT_EVERY``-th correction (by id) never trains; it judges. The same
  corrections stay held out across updates, so the errors of two versions are comparable.
* **Replay**: each update also trains on ``REPLAY`` situations labelled by the comfort rule
  (rule.py), and the two losses weigh the same, so a few corrections move the model where the
  person said, not everywhere.
* **The gate**: a candidate becomes active only if its error on the held-out corrections is
  lower than its parent's and its error on held-out rule cases (those whose nearest correction
  agrees with the rule) is within ``RULE_MARGIN`` points of the first model's.
* **Confidence**: the model's confidence head is mapped, by histogram binning fitted on half
  of the validation cases, to the observed probability that the recommendation is within
  ``TOLERANCE`` points of the truth; the expected calibration error (ECE) is measured on the
  other half.
* Deterministic for a seed: one thread, seeded torch, data in id order.
"""
from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch

from .corrections import Correction
from .inputs import FEATURES, features
from .model import WindowModel
from .rule import comfort_rule
from .train import _one_thread, sample_inputs

SEED = 16
HOLDOUT_EVERY = 4
REPLAY = 800
RULE_CASES = 1_000
STEPS = 150
LEARNING_RATE = 3e-3
RULE_MARGIN = 3.0
"""Points of mean absolute error on held-out rule cases a candidate may lose against the first model."""
TOLERANCE = 10.0
"""Confidence is the probability that the recommendation is within this many points of the truth."""
DISAGREE = 10.0
NEAR = 1.6
BINS = 10
CORRECTION_WEIGHT = 5.0


@dataclass(frozen=True)
class Candidate:
    model: WindowModel
    facts: dict[str, Any]
    validation: dict[str, Any]
    accepted: bool
    reason: str | None
    training_s: float = 0.0
    samples: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def warm_up(parent: WindowModel, seed: int = SEED) -> None:
    """Build the cached rule cases and run torch's first backward pass once, at start: otherwise
    the first update pays seconds for them."""
    rule_cases(RULE_CASES, seed + 1)
    fine_tune(parent, [], seed, steps=1)


def split(corrections: Sequence[Correction]) -> tuple[list[Correction], list[Correction]]:
    """``(train, held_out)``: every HOLDOUT_EVERY-th by id is held out (stable as samples come)."""
    train = [c for c in corrections if c.id % HOLDOUT_EVERY != 0]
    held = [c for c in corrections if c.id % HOLDOUT_EVERY == 0]
    return train, held


def tensors(corrections: Sequence[Correction]) -> tuple[torch.Tensor, torch.Tensor]:
    if not corrections:
        return torch.zeros(0, len(FEATURES)), torch.zeros(0)
    return (torch.tensor([features(c.inputs) for c in corrections], dtype=torch.float32),
            torch.tensor([c.position for c in corrections], dtype=torch.float32))


@lru_cache(maxsize=4)
def rule_cases(samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(features, position 0..100, certainty)`` of rule-labelled situations (cached: they never change)."""
    rng = random.Random(seed)
    rows, positions, certainties = [], [], []
    for _ in range(samples):
        inputs = sample_inputs(rng)
        position, certainty = comfort_rule(inputs)
        rows.append(features(inputs))
        positions.append(position)
        certainties.append(certainty)
    return torch.tensor(rows), torch.tensor(positions), torch.tensor(certainties)


def predict(model: WindowModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    with torch.inference_mode():
        return model(x)


def mae(model: WindowModel, x: torch.Tensor, y: torch.Tensor) -> float | None:
    if len(x) == 0:
        return None
    position, _ = predict(model, x)
    return round(float((position - y).abs().mean()), 3)


def agreeing_rule_cases(x: torch.Tensor, y: torch.Tensor, corrections: Sequence[Correction]) -> torch.Tensor:
    """A mask of the rule cases whose nearest correction (in feature space, within NEAR) does not
    disagree with the rule by more than DISAGREE points: where the person said otherwise, the
    person wins; elsewhere the rule must hold."""
    if not corrections:
        return torch.ones(len(x), dtype=torch.bool)
    cx, cy = tensors(corrections)
    disagrees = torch.tensor([abs(comfort_rule(c.inputs)[0] - c.position) > DISAGREE for c in corrections])
    distance = torch.cdist(x, cx)
    nearest, which = distance.min(dim=1)
    return ~(disagrees[which] & (nearest <= NEAR))


def fine_tune(parent: WindowModel, corrections: Sequence[Correction], seed: int = SEED, steps: int | None = None,
              replay: int | None = None) -> WindowModel:
    """A copy of ``parent`` trained further on ``corrections`` plus rule replay."""
    steps = STEPS if steps is None else steps
    replay = REPLAY if replay is None else replay
    with _one_thread():
        torch.manual_seed(seed)
        model = WindowModel(hidden=parent.position.in_features)
        model.load_state_dict(parent.state_dict())
        rx, ry, rc = rule_cases(replay, seed)
        keep = agreeing_rule_cases(rx, ry, corrections)  # where the person disagreed, no rule replay
        rx, ry, rc = rx[keep], ry[keep], rc[keep]
        cx, cy = tensors(corrections)
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        model.train()
        for _ in range(steps):
            position, confidence = model(rx)
            loss = torch.nn.functional.mse_loss(position / 100.0, ry / 100.0) + \
                torch.nn.functional.mse_loss(confidence, rc)
            if len(cx):
                corrected, _ = model(cx)
                loss = loss + CORRECTION_WEIGHT * torch.nn.functional.mse_loss(corrected / 100.0, cy / 100.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    return model


def calibration(model: WindowModel, x: torch.Tensor, y: torch.Tensor,
                raw_ece: bool = False) -> tuple[list[float], float]:
    """``(table, ece)``: histogram binning of the raw confidence to P(|error| <= TOLERANCE), fitted
    on the even cases; the ECE of the calibrated confidence on the odd ones (``raw_ece``: of the
    raw confidence, for a model served without a table, like the default weights)."""
    position, raw = predict(model, x)
    hit = ((position - y).abs() <= TOLERANCE).float()
    bins = torch.clamp((raw * BINS).long(), 0, BINS - 1)
    fit, check = torch.arange(len(x)) % 2 == 0, torch.arange(len(x)) % 2 == 1
    overall = float(hit[fit].mean()) if fit.any() else 0.5
    table = []
    for b in range(BINS):
        chosen = fit & (bins == b)
        # One pseudo-case at the overall rate: an empty or tiny bin does not claim 0 or 1.
        table.append(round((float(hit[chosen].sum()) + overall) / (int(chosen.sum()) + 1), 4))
    calibrated = raw if raw_ece else torch.tensor(table)[bins]
    return table, expected_calibration_error(calibrated[check], hit[check])


def expected_calibration_error(confidence: torch.Tensor, hit: torch.Tensor) -> float:
    """Weighted mean over confidence bins of |mean confidence - observed rate|."""
    if len(confidence) == 0:
        return 0.0
    bins = torch.clamp((confidence * BINS).long(), 0, BINS - 1)
    total = 0.0
    for b in range(BINS):
        chosen = bins == b
        if chosen.any():
            total += float(chosen.sum()) * abs(float(confidence[chosen].mean()) - float(hit[chosen].mean()))
    return round(total / len(confidence), 4)


def calibrate(raw: float, table: Sequence[float] | None) -> float:
    """A raw confidence through a version's table (no table: the raw value, the default model's)."""
    if not table:
        return raw
    return float(table[min(max(int(raw * len(table)), 0), len(table) - 1)])


def validation_set(held: Sequence[Correction], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out corrections plus held-out rule cases: what calibration is fitted and judged on."""
    hx, hy = tensors(held)
    rx, ry, _ = rule_cases(RULE_CASES, seed + 1)
    mask = agreeing_rule_cases(rx, ry, held)
    return torch.cat([hx, rx[mask]]), torch.cat([hy, ry[mask]])


def judge(model: WindowModel, held: Sequence[Correction], everything: Sequence[Correction],
          seed: int = SEED, raw_ece: bool = False) -> dict[str, Any]:
    """The validation numbers of a model (``raw_ece``: it is served without a calibration table)."""
    hx, hy = tensors(held)
    rx, ry, _ = rule_cases(RULE_CASES, seed + 1)
    mask = agreeing_rule_cases(rx, ry, everything)
    vx, vy = validation_set(held, seed)
    table, ece = calibration(model, vx, vy, raw_ece)
    return {"corrections_mae": mae(model, hx, hy), "held_out": len(held), "rule_mae": mae(model, rx[mask], ry[mask]),
            "rule_cases": int(mask.sum()), "ece": ece, "calibration": table, "tolerance": TOLERANCE}


def train_candidate(parent: WindowModel, corrections: Sequence[Correction], *, root_rule_mae: float | None,
                    seed: int = SEED, margin: float = RULE_MARGIN) -> Candidate:
    """Fine-tune, validate, and decide whether the candidate may become active."""
    rule_cases(REPLAY, seed)  # built once and cached: the first update should not pay for it
    rule_cases(RULE_CASES, seed + 1)
    started = time.perf_counter()
    train, held = split(corrections)
    model = fine_tune(parent, train, seed)
    training_s = round(time.perf_counter() - started, 3)
    mine = judge(model, held, corrections, seed)
    theirs = judge(parent, held, corrections, seed)
    baseline = root_rule_mae if root_rule_mae is not None else theirs["rule_mae"]
    reason = None
    if not held:
        reason = "no held-out corrections yet to judge it on"
    elif mine["corrections_mae"] >= theirs["corrections_mae"]:
        reason = (f"error on held-out corrections {mine['corrections_mae']} is not lower than the parent's "
                  f"{theirs['corrections_mae']}")
    elif baseline is not None and mine["rule_mae"] is not None and mine["rule_mae"] > baseline + margin:
        reason = (f"error on held-out rule cases {mine['rule_mae']} is more than {margin:g} points above the "
                  f"first model's {baseline}")
    facts = {"teacher": "corrections + comfort rule replay", "seed": seed, "corrections": len(train),
             "replay": REPLAY, "steps": STEPS, "calibration": mine["calibration"], "tolerance": TOLERANCE}
    return Candidate(model, facts, {**mine, "parent_corrections_mae": theirs["corrections_mae"]},
                     reason is None, reason, training_s, len(train))
