"""The comfort rule the default weights learn (docs/automation.md, "The rule").

It is the teacher, not the runtime: train.py labels a synthetic dataset with it and the
network learns to imitate it, so the service always answers with the model, and a model
trained on real data can replace the default without any code change. Tests compare the
default model against this rule.

In words:

* **Too warm inside** (above 23.5 °C, fully at 26.5 °C) → open, but only if it is cooler
  outside (fully from 3 K cooler); with no outdoor reading, open only 60 % as far.
* **Too humid inside** (above 65 %, fully at 85 %) → open, unless it is much warmer outside
  (from 2 K warmer the benefit fades, gone at 6 K).
* **Stale air** → open: every input the registry declares an "airing need" for (shared/devices.py,
  ``AutomationInput.airing``; e.g. CO2 above 1000 ppm, fully at 1600 ppm) is a reason of its own,
  as strong as heat or damp, whatever the outdoor temperature (airing helps either way). The rule
  names none of them, so a device type added to the registry is picked up without a change here.
* **Cold** → closed: inside below 18 °C (fully allowed from 20 °C), or freezing outside
  (closed at -5 °C, fully allowed from 5 °C).
* **Someone present and loud** (motion, sound above -40 dBFS, fully at -30 dBFS) → open 60 %
  less; loud with unknown presence → 30 % less.
* **Hysteresis**: an open window lowers the warm threshold by up to 0.5 K, so a window that
  was opened because of heat does not close again at the first tenth of a degree.

The rule also says how clear-cut its answer is (``certainty``, the model's confidence
target): 0.95 with every input known, 0.2 less without an outdoor temperature (opening might
not even help), 0.05 less per unknown motion or sound input, and up to 0.3 less when the
inputs sit right on a threshold, where a tenth of a degree flips the answer.
"""
from __future__ import annotations

import math

from .inputs import AIRING, WindowInputs

WARM_FROM, WARM_FULL = 23.5, 26.5
HYSTERESIS_K = 0.5
HUMID_FROM, HUMID_FULL = 65.0, 85.0
COOLER_OUTSIDE_FULL_K = 3.0
WARMER_OUTSIDE_FADE_K = (2.0, 6.0)
UNKNOWN_OUTSIDE_HEAT, UNKNOWN_OUTSIDE_DAMP = 0.6, 0.8
INDOOR_COLD = (18.0, 20.0)
OUTDOOR_FREEZING = (-5.0, 5.0)
LOUD = (-40.0, -30.0)
PRESENT_AND_LOUD, MAYBE_PRESENT_AND_LOUD = 0.6, 0.3


def ramp(value: float, low: float, high: float) -> float:
    """0 below ``low``, 1 above ``high``, linear between."""
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return (value - low) / (high - low)


def _near(value: float, at: float, width: float) -> float:
    """1 at ``at``, fading to 0 a few ``width`` away: how close a value is to a threshold."""
    return math.exp(-((value - at) / width) ** 2)


def comfort_rule(inputs: WindowInputs) -> tuple[float, float]:
    """``(position 0..100, certainty 0..1)`` for these inputs."""
    t, h, outside = inputs.temperature, inputs.humidity, inputs.outdoor_temperature
    opened = (inputs.position or 0.0) / 100.0
    warm_from = WARM_FROM - HYSTERESIS_K * opened
    heat = ramp(t, warm_from, warm_from + (WARM_FULL - WARM_FROM))
    damp = ramp(h, HUMID_FROM, HUMID_FULL)
    edges = [_near(t, warm_from, 1.0) if h < HUMID_FROM else 0.0, _near(h, HUMID_FROM, 4.0) if heat == 0 else 0.0]
    if outside is not None:
        cooler_by = t - outside
        heat *= ramp(cooler_by, 0.0, COOLER_OUTSIDE_FULL_K)
        damp *= 1.0 - ramp(-cooler_by, *WARMER_OUTSIDE_FADE_K)
        if t > warm_from:
            edges.append(_near(cooler_by, 0.0, 1.0))
    else:
        heat *= UNKNOWN_OUTSIDE_HEAT
        damp *= UNKNOWN_OUTSIDE_DAMP
    stale = max((ramp(inputs.get(name), *need_from) for name, need_from in AIRING.items()
                 if inputs.get(name) is not None), default=0.0)
    need = max(heat, damp, stale)
    need *= ramp(t, *INDOOR_COLD)
    if outside is not None:
        need *= ramp(outside, *OUTDOOR_FREEZING)
    if inputs.sound_level is not None:
        loud = ramp(inputs.sound_level, *LOUD)
        if inputs.motion is True:
            need *= 1.0 - PRESENT_AND_LOUD * loud
        elif inputs.motion is None:
            need *= 1.0 - MAYBE_PRESENT_AND_LOUD * loud

    certainty = 0.95
    certainty -= 0.2 if outside is None else 0.0
    certainty -= 0.05 if inputs.motion is None else 0.0
    certainty -= 0.05 if inputs.sound_level is None else 0.0
    certainty -= 0.3 * max(edges)
    return 100.0 * need, min(max(certainty, 0.05), 0.99)
