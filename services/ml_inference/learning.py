"""Incremental training from corrections: a candidate model, its validation and the verdict.
Pure functions of their arguments (no service, no files): the learner (learner.py) runs them
in a background thread and keeps the result (versions.py).

* **What is learnt**: adjustments (adjustments.py) on top of the parent's network, fitted on all
  the training corrections each time (an update refits them; the network is never changed, so
  the rule it learnt cannot be forgotten where no adjustment applies).
* **Held out**: every ``HOLDOUT_EVERY``-th correction (by id) never trains; it judges. The same
  corrections stay held out across updates, so the errors of two versions are comparable.
* **The gate**: a candidate becomes active only if its error on the held-out corrections is
  lower than its parent's and its error on held-out rule cases is within ``RULE_MARGIN`` points
  of the first model's. The rule cases counted are those where the person has not said
  otherwise: a case is left out only inside the region of an adjustment the training
  corrections asked for (``disputed``: of the corrections there whose answer it changes by more
  than ``DISAGREE`` points, most are nearer the adjusted answer). So the margin measures
  forgetting, i.e. answers changed where no correction asked; how far an asked-for region
  reaches is judged by the held-out corrections (a region too wide raises their error).
* **Confidence**: the model's confidence head is mapped, by histogram binning fitted on half
  of the validation cases, to the observed probability that the recommendation is within
  ``TOLERANCE`` points of the truth; the expected calibration error (ECE) is measured on the
  other half.
* Deterministic: no randomness in the fit; data in id order.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from . import adjustments
from .corrections import Correction
from .inputs import FEATURES, features
from .model import WindowModel
from .train import _one_thread, dataset

SEED = 16
HOLDOUT_EVERY = 4
RULE_CASES = 1_000
RULE_MARGIN = 3.0
"""Points of mean absolute error on held-out rule cases a candidate may lose against the first model."""
TOLERANCE = 10.0
"""Confidence is the probability that the recommendation is within this many points of the truth."""
DISAGREE = 10.0
"""Points a correction must differ from the rule by to count as the person disagreeing."""
BINS = 10


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
    """Build the cached rule cases once, at start: otherwise the first update pays for them."""
    rule_cases(RULE_CASES, seed + 1)
    predict(parent, rule_cases(RULE_CASES, seed + 1)[0][:8])


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
    """``(features, position 0..100, certainty)`` of rule-labelled situations (cached: they never change).
    The same situations training draws (train.dataset), in the percent corrections are given in."""
    x, opening, certainty = dataset(samples, seed)
    return x, opening * 100.0, certainty


def predict(model: WindowModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    with torch.inference_mode():
        return model(x)


def mae(model: WindowModel, x: torch.Tensor, y: torch.Tensor) -> float | None:
    if len(x) == 0:
        return None
    position, _ = predict(model, x)
    return round(float((position - y).abs().mean()), 3)


def disputed(model: WindowModel, x: torch.Tensor, corrections: Sequence[Correction]) -> torch.Tensor:
    """A mask of the rows of ``x`` inside the region of an adjustment of ``model`` that the training
    ``corrections`` asked for: among the corrections whose answer it changes (with the other
    adjustments in place) by more than DISAGREE points, most are nearer the answer with it than
    without it. There the person overruled the rule, so a rule case there is not the rule's to judge."""
    out = np.zeros(len(x), dtype=bool)
    if not model.adjustments or not corrections:
        return torch.from_numpy(out)
    cx, cy = tensors(corrections)
    with torch.inference_mode():
        base = model.network(cx)[0].numpy().astype(np.float64)
    rows, labels = cx.numpy(), cy.numpy()
    adjusted = adjustments.apply(model.adjustments, rows, base)
    for a in model.adjustments:
        # What this adjustment changes, the others in place (a "closed when loud" hides a "+25 when humid").
        without = adjustments.apply([b for b in model.adjustments if b is not a], rows, base)
        changed = np.abs(adjusted - without) > DISAGREE
        if changed.any() and (np.abs(labels - adjusted) < np.abs(labels - without))[changed].mean() >= 0.5:
            out |= adjustments.region(a, x.numpy())
    return torch.from_numpy(out)


def adapt(parent: WindowModel, corrections: Sequence[Correction]) -> WindowModel:
    """A copy of ``parent``'s network with the adjustments fitted on ``corrections`` (replacing
    the parent's: every update refits them on all the corrections there are)."""
    with _one_thread():
        model = WindowModel(hidden=parent.position.in_features)
        model.load_state_dict(parent.state_dict())
        model.eval()
        if corrections:
            cx, cy = tensors(corrections)
            with torch.inference_mode():
                base, _ = model.network(cx)
            model.adjustments = tuple(adjustments.fit(cx.numpy().astype(np.float64), base.numpy().astype(np.float64),
                                                      cy.numpy().astype(np.float64)))
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


def judge(model: WindowModel, held: Sequence[Correction], everything: Sequence[Correction],
          seed: int = SEED, raw_ece: bool = False) -> dict[str, Any]:
    """The validation numbers of a model (``raw_ece``: it is served without a calibration table).
    Calibration is fitted and judged on the held-out corrections plus the undisputed rule cases."""
    hx, hy = tensors(held)
    rx, ry, _ = rule_cases(RULE_CASES, seed + 1)
    train, _ = split(everything)
    mask = ~disputed(model, rx, train)
    table, ece = calibration(model, torch.cat([hx, rx[mask]]), torch.cat([hy, ry[mask]]), raw_ece)
    return {"corrections_mae": mae(model, hx, hy), "held_out": len(held), "rule_mae": mae(model, rx[mask], ry[mask]),
            "rule_cases": int(mask.sum()), "ece": ece, "calibration": table, "tolerance": TOLERANCE}


def train_candidate(parent: WindowModel, corrections: Sequence[Correction], *, root_rule_mae: float | None,
                    seed: int = SEED, margin: float = RULE_MARGIN) -> Candidate:
    """Fine-tune, validate, and decide whether the candidate may become active."""
    rule_cases(RULE_CASES, seed + 1)  # built once and cached: the first update should not pay for it
    started = time.perf_counter()
    train, held = split(corrections)
    model = adapt(parent, train)
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
    facts = {"teacher": "corrections: adjustments on the first model's network", "seed": seed,
             "corrections": len(train), "adjustments": [a.describe() for a in model.adjustments],
             "calibration": mine["calibration"], "tolerance": TOLERANCE}
    return Candidate(model, facts, {**mine, "parent_corrections_mae": theirs["corrections_mae"]},
                     reason is None, reason, training_s, len(train))
