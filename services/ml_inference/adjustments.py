"""Adjustments: what a person's corrections teach, said the way a person says it.

A learnt model is the model it started from (the comfort rule's network, which it never
changes) plus a few adjustments in the rule's own vocabulary, each tied to one input crossing a
threshold:

* ``offset``: "25 points more open when the humidity is above 65 %";
* ``scale``: "closed (x 0) when the sound level is above -35 dBFS", or half as open (x 0.5);
* ``cap``: "never more than 60 % when it is below 10 °C outside".

They compose in that order: position = min(caps, clip((base + offsets) x scales, 0, 100)).
An input that is unknown never triggers an adjustment.

Why this and not fine-tuning the network: a hundred noisy corrections spread over a dozen inputs
are far too few for a network (or a kernel estimate) to generalise from (measured: the network
fitted its training corrections and barely improved on new situations). The adjustments are a
strong inductive bias that a person's habits fit: each one is one threshold and one number,
fitted on all the corrections in its region, and where none applies the answer is exactly the
first model's, so nothing the person did not contradict is forgotten.

Fitting is greedy and deterministic: each round tries every input, threshold (midpoints between
the corrections' values), side, kind and a few robust values, and keeps the adjustment that
lowers the Huber loss (a slip costs linearly, not squared) the most, if it lowers it by more
than ``PENALTY`` per correction and covers at least ``MIN_SHARE`` of the corrections (and at least 3).
Pure numpy; a fit of 100 corrections takes a fraction of a second.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .inputs import FEATURES, INPUTS

OFFSET, SCALE, CAP = "offset", "scale", "cap"
KINDS = (OFFSET, SCALE, CAP)
MAX_ADJUSTMENTS = 4
PENALTY = 25.0
"""Huber loss (points²) an adjustment must save per correction to be kept: it must lower the mean
loss by about what a 5-point error costs. Per correction, so that with more data a small effect
must be a real one (a fixed amount let spurious adjustments in at 100 corrections and kept real
ones out at 30: measured over 24 simulated occupants, docs/automation.md)."""
MIN_SHARE = 0.1
HUBER = 15.0
QUIET = 4.0
"""A correction within this many points of the answer is what a person calls right (noise, not a wish):
it costs nothing, so it does not pull a threshold one way or the other."""
THRESHOLDS = 24
"""Candidate thresholds per input at most (quantiles of the corrections' values)."""
EDGE = 3.0
"""A label within this of 0 or 100 says "at most / at least", not how far: it does not size an offset."""


@dataclass(frozen=True)
class Adjustment:
    kind: str
    input: str
    threshold: float
    above: bool
    value: float

    def describe(self) -> str:
        side = "above" if self.above else "at or below"
        unit = INPUTS[self.input].unit or ""
        when = f"when {self.input} is {side} {self.threshold:g}{' ' + unit if unit else ''}"
        if self.kind == OFFSET:
            return f"{self.value:+.0f} points {when}"
        if self.kind == SCALE:
            return f"x {self.value:.2f} {when}"
        return f"at most {self.value:.0f} % {when}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Adjustment:
        """From a model file: checked, ``ValueError`` says what is wrong."""
        kind, name = data.get("kind"), data.get("input")
        if kind not in KINDS:
            raise ValueError(f"adjustment kind {kind!r} is not one of {', '.join(KINDS)}")
        if name not in INPUTS or name == "position":
            raise ValueError(f"adjustment input {name!r} is not a window input")
        threshold, value, above = data.get("threshold"), data.get("value"), data.get("above")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (threshold, value)) or not isinstance(above, bool):
            raise ValueError(f"adjustment {dict(data)!r} needs a finite threshold and value and a boolean 'above'")
        return cls(kind, name, float(threshold), above, float(value))


def _column(name: str) -> tuple[int, int | None]:
    """``(value column, known-flag column or None)`` of an input in the feature vector."""
    flag = f"{name}_known"
    return FEATURES.index(name), (FEATURES.index(flag) if flag in FEATURES else None)


def _scaled(name: str, value: float) -> float:
    centre, spread = INPUTS[name].scale
    return (value - centre) / spread


def _raw(name: str, scaled: float) -> float:
    centre, spread = INPUTS[name].scale
    return round(scaled * spread + centre, 3)


def region(adjustment: Adjustment, x: np.ndarray) -> np.ndarray:
    """The rows of a feature matrix (inputs.features) where the adjustment applies."""
    column, flag = _column(adjustment.input)
    t = _scaled(adjustment.input, adjustment.threshold)
    inside = x[:, column] > t if adjustment.above else x[:, column] <= t
    return inside & (x[:, flag] > 0.5) if flag is not None else inside


def apply(adjustments: Sequence[Adjustment], x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Positions (0..100): ``base`` (the first model's answers for ``x``) adjusted."""
    offset = np.zeros(len(base))
    scale = np.ones(len(base))
    cap = np.full(len(base), 100.0)
    for a in adjustments:
        inside = region(a, x)
        if a.kind == OFFSET:
            offset[inside] += a.value
        elif a.kind == SCALE:
            scale[inside] *= a.value
        else:
            cap[inside] = np.minimum(cap[inside], a.value)
    return np.minimum(cap, np.clip((base + offset) * scale, 0.0, 100.0))


def huber(error: np.ndarray) -> float:
    """Huber loss of the errors beyond QUIET points (square near, linear far: a slip costs little)."""
    size = np.maximum(np.abs(error) - QUIET, 0.0)
    return float(np.where(size <= HUBER, size * size, 2.0 * HUBER * size - HUBER * HUBER).sum())


def _thresholds(values: np.ndarray) -> Iterable[float]:
    unique = np.unique(values)
    if len(unique) < 2:
        return []
    mids = (unique[:-1] + unique[1:]) / 2.0
    if len(mids) > THRESHOLDS:
        mids = np.unique(np.quantile(mids, np.linspace(0.0, 1.0, THRESHOLDS)))
    return [float(m) for m in mids]


def _stages(adjustments: Sequence[Adjustment], x: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(base + offsets, product of the scales, final answer)`` per row."""
    offset, factor = np.zeros(len(base)), np.ones(len(base))
    for a in adjustments:
        if a.kind == OFFSET:
            offset[region(a, x)] += a.value
        elif a.kind == SCALE:
            factor[region(a, x)] *= a.value
    return base + offset, factor, apply(adjustments, x, base)


def _values(kind: str, inside: np.ndarray, stages: tuple[np.ndarray, ...], y: np.ndarray) -> list[float]:
    """A few robust candidate values for an adjustment of ``kind`` on the rows ``inside``."""
    pre, factor, now = (stage[inside] for stage in stages)
    label = y[inside]
    scaled = np.clip(pre * factor, 0.0, 100.0)
    free = now >= scaled - 1e-9  # no cap binds
    if kind == OFFSET:
        usable = free & (label > EDGE) & (label < 100.0 - EDGE) & (factor > 0.5)
        if usable.sum() < 3:
            return []
        implied = label[usable] / factor[usable] - pre[usable]
        return [round(float(v), 2) for v in np.percentile(implied, [25, 50, 75])]
    if kind == SCALE:
        usable = free & (scaled > EDGE)
        if usable.sum() < 3:
            return [0.0]
        gain = float((label[usable] * scaled[usable]).sum() / (scaled[usable] ** 2).sum())
        return sorted({0.0, round(min(max(gain, 0.0), 2.0), 3)})
    below = label < now - 5.0
    if below.sum() < 3:
        return []
    return [round(float(v), 1) for v in np.percentile(label[below], [50, 75, 90])]


def fit(x: np.ndarray, base: np.ndarray, y: np.ndarray, *, penalty: float = PENALTY, min_share: float = MIN_SHARE,
        most: int = MAX_ADJUSTMENTS) -> list[Adjustment]:
    """The adjustments that best explain labels ``y`` given the first model's ``base`` answers for
    the feature rows ``x`` (see the module's docstring)."""
    adjustments: list[Adjustment] = []
    support = max(3, math.ceil(min_share * len(y)))
    names = [name for name in INPUTS if name != "position"]
    for _ in range(most):
        stages = _stages(adjustments, x, base)
        current = huber(stages[2] - y)
        tried: list[tuple[float, Adjustment]] = []
        for name in names:
            column, flag = _column(name)
            known = x[:, flag] > 0.5 if flag is not None else np.ones(len(y), dtype=bool)
            for t in _thresholds(x[known, column]):
                for above in (True, False):
                    inside = (x[:, column] > t if above else x[:, column] <= t) & known
                    if inside.sum() < support:
                        continue
                    for kind in KINDS:
                        for value in _values(kind, inside, stages, y):
                            candidate = Adjustment(kind, name, _raw(name, t), above, value)
                            tried.append((huber(apply([*adjustments, candidate], x, base) - y), candidate))
        best = min(tried, key=lambda t: t[0], default=None)  # min keeps the first of equals: deterministic
        if best is None or current - best[0] < penalty * len(y):
            break
        adjustments.append(best[1])
    return adjustments

