"""Adjustments (the pure core of what corrections teach): fit, apply, and what they leave alone."""
from __future__ import annotations

import random

import numpy as np
import pytest

from services.ml_inference import adjustments
from services.ml_inference.adjustments import Adjustment
from services.ml_inference.inputs import WindowInputs, features
from services.ml_inference.rule import comfort_rule
from services.ml_inference.train import sample_inputs


def situations(n: int, seed: int = 3) -> tuple[list[WindowInputs], np.ndarray, np.ndarray]:
    rng = random.Random(seed)
    cases = [sample_inputs(rng) for _ in range(n)]
    return cases, np.array([features(c) for c in cases]), np.array([comfort_rule(c)[0] for c in cases])


def test_they_compose_offsets_then_scales_then_caps_and_ignore_unknown_inputs():
    humid = Adjustment("offset", "humidity", 65.0, True, 25.0)
    loud = Adjustment("scale", "sound_level", -35.0, True, 0.0)
    cold = Adjustment("cap", "outdoor_temperature", 10.0, False, 60.0)
    cases = [WindowInputs(temperature=22, humidity=80, outdoor_temperature=5),       # humid, cold: 40+25 -> 60
             WindowInputs(temperature=22, humidity=80, sound_level=-20),             # humid but loud: closed
             WindowInputs(temperature=22, humidity=50)]                              # none applies (outside unknown)
    x = np.array([features(c) for c in cases])
    out = adjustments.apply([cold, loud, humid], x, np.array([40.0, 40.0, 40.0]))
    assert out.tolist() == [60.0, 0.0, 40.0]


def test_a_person_who_agrees_with_the_base_teaches_nothing():
    _, x, base = situations(80)
    assert adjustments.fit(x, base, base.copy()) == []


def test_a_stated_habit_is_found_with_its_threshold_despite_noise_and_slips():
    cases, x, base = situations(80)
    rng = random.Random(4)
    wanted = np.array([min(p + 25.0, 100.0) if c.humidity > 70 else p for c, p in zip(cases, base, strict=True)])
    labels = np.clip(wanted + np.array([rng.gauss(0, 3) for _ in cases]), 0, 100)
    labels[::20] = 100.0 - labels[::20]  # a few slips
    found = adjustments.fit(x, base, labels)
    assert found, "the habit was not found"
    first = found[0]
    assert (first.kind, first.input, first.above) == ("offset", "humidity", True)
    assert first.threshold == pytest.approx(70.0, abs=3.0) and first.value == pytest.approx(25.0, abs=5.0)
    assert np.abs(adjustments.apply(found, x, base) - wanted).mean() < 3.0


def test_a_bad_adjustment_from_a_file_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="not a window input"):
        Adjustment.from_dict({"kind": "offset", "input": "moon", "threshold": 1, "above": True, "value": 5})
    with pytest.raises(ValueError, match="finite threshold"):
        Adjustment.from_dict({"kind": "cap", "input": "humidity", "threshold": float("nan"), "above": True,
                              "value": 5})
    assert Adjustment.from_dict(Adjustment("cap", "humidity", 60, False, 50).to_dict()).describe() == \
        "at most 50 % when humidity is at or below 60 %"
