"""End to end: a sensor input changes → the model's recommendation → the window actuator command.

Not measurable until the ML service exists: services/ml_inference (the model and the window
automation). When it does, the round is: pin the inputs on a board (temperature, humidity, sound
level) through the control channel so the recommendation flips, and time it to the window's
``position`` command arriving at the board (its ``window`` line on MQTT ``state``).
"""
from __future__ import annotations

from bench.fixtures import require_files
from bench.harness import Context, Sample, Scenario


def setup(ctx: Context) -> None:
    require_files("services/ml_inference/__main__.py")
    raise NotImplementedError("e2e_window_automation is not written yet (services/ml_inference exists now)")


def run(ctx: Context, fixture: None) -> Sample:
    raise NotImplementedError


SCENARIO = Scenario("e2e_window_automation", title="input change → recommendation → actuator command",
                    setup=setup, run=run, baseline="ceiling_torch_forward")
