"""A simulated occupant whose taste differs from the comfort rule: the proof that learning works
(bench scenario ``learning``, tests).

The stated preference, on top of the rule (rule.py):

* **humid** (above 65 %): 25 points more open;
* **loud** (sound above -35 dBFS): closed, whatever else;
* **never more than 60 %** when the outside is cold (below 10 °C).

(The model has no clock input, so "at night" is read as "cold outside".) The occupant corrects
the way a person would: some time after the situation (``delay``), a few points off
(``noise``), and now and then inconsistently (``slip``: another position altogether).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .inputs import WindowInputs
from .rule import comfort_rule

HUMID, MORE_OPEN_WHEN_HUMID = 65.0, 25.0
LOUD = -35.0
COLD_OUTSIDE, COLD_MAX = 10.0, 60.0


def preference(inputs: WindowInputs) -> float:
    """Where this occupant wants the window (0..100)."""
    position, _ = comfort_rule(inputs)
    if inputs.humidity > HUMID:
        position += MORE_OPEN_WHEN_HUMID
    if inputs.sound_level is not None and inputs.sound_level > LOUD:
        position = 0.0
    if inputs.outdoor_temperature is not None and inputs.outdoor_temperature < COLD_OUTSIDE:
        position = min(position, COLD_MAX)
    return min(max(position, 0.0), 100.0)


@dataclass
class Occupant:
    seed: int = 1
    noise: float = 3.0
    slip: float = 0.05
    delay: tuple[float, float] = (30.0, 600.0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def correct(self, inputs: WindowInputs) -> tuple[float, float]:
        """``(position chosen, seconds after the situation)``: the preference, a few points off,
        sometimes something else entirely."""
        if self.rng.random() < self.slip:
            chosen = self.rng.choice([0.0, 50.0, 100.0])
        else:
            chosen = preference(inputs) + self.rng.gauss(0.0, self.noise)
        return round(min(max(chosen, 0.0), 100.0)), self.rng.uniform(*self.delay)
