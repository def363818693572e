"""The automation policy (a pure function) and the input checks, without a model."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ml_inference.inputs import FEATURES, OPTIONAL, InvalidInput, features, parse_batch, parse_inputs
from services.ml_inference.policy import ManualCommand, WindowFacts, decide
from services.ml_inference.recommender import Recommendation
from shared.config import AutomationSpec

SPEC = AutomationSpec(automation_id="a1", name="A1", window="w1", sensors={"temperature": "t", "humidity": "h"},
                      mode="auto", min_change=10, interval=60, min_position=5, max_position=80, manual_hold=600)
NOW = 1_000_000.0


def run(position: float = 60.0, confidence: float = 0.9, mode: str = "auto", window: WindowFacts | None = None,
        manual: ManualCommand | None = None, resumed_at: float = 0.0, spec: AutomationSpec = SPEC):
    return decide(spec, mode, Recommendation(position, confidence, "m"), window or WindowFacts(position=0.0),
                  manual, resumed_at, 0.6, NOW)


def test_a_confident_worthwhile_change_moves_within_the_limits():
    decision = run(position=95.4)
    assert (decision.action, decision.position) == ("move", 80)  # max_position
    assert run(position=1.0, window=WindowFacts(position=50.0)).position == 5  # min_position


def test_a_small_change_stays():
    assert run(position=65.0, window=WindowFacts(position=58.0)).action == "stay"
    assert run(position=68.0, window=WindowFacts(position=58.0)).action == "move"


def test_an_unknown_window_position_is_always_worth_a_move():
    assert run(position=5.0, window=WindowFacts(position=None)).action == "move"


def test_low_confidence_or_suggest_mode_only_suggests():
    low = run(confidence=0.55)
    assert low.action == "suggest" and "0.55 is below the threshold 0.6" in low.reason
    assert run(mode="suggest").action == "suggest"


def test_mode_off_and_a_window_that_cannot_move_now():
    assert run(mode="off").action == "off"
    assert run(window=WindowFacts(position=0.0, moving=True)).action == "wait"
    assert run(window=WindowFacts(position=0.0, online=False)).action == "wait"


def test_a_manual_command_holds_off_until_manual_hold_has_passed():
    held = run(manual=ManualCommand(at=NOW - 30, cmd_id="c-7"))
    assert held.action == "hold" and held.held_until == NOW - 30 + 600 and "c-7" in held.reason
    assert run(manual=ManualCommand(at=NOW - 601)).action == "move"
    # Switching the automation on after the manual command ends the hold.
    assert run(manual=ManualCommand(at=NOW - 30), resumed_at=NOW - 10).action == "move"
    no_hold = AutomationSpec(**{**SPEC.__dict__, "manual_hold": 0.0})
    assert run(manual=ManualCommand(at=NOW - 1), spec=no_hold).action == "move"


def test_hold_comes_before_suggesting():
    assert run(mode="suggest", manual=ManualCommand(at=NOW - 1)).action == "hold"


@pytest.mark.parametrize("body,field,words", [
    ({"humidity": 50}, "temperature", "missing; it is required"),
    ({"temperature": float("nan"), "humidity": 50}, "temperature", "finite number"),
    ({"temperature": float("inf"), "humidity": 50}, "temperature", "finite number"),
    ({"temperature": 21, "humidity": 140}, "humidity", "out of range (0..100 %)"),
    ({"temperature": "21", "humidity": 50}, "temperature", "got '21'"),
    ({"temperature": True, "humidity": 50}, "temperature", "got true/false"),
    ({"temperature": 21, "humidity": 50, "motion": 1}, "motion", "true or false"),
    ({"temperature": 21, "humidity": 50, "sound_level": 3}, "sound_level", "out of range"),
    ({"temperature": 21, "humidity": 50, "position": -1}, "position", "out of range"),
    ({"temperature": 21, "humidity": 50, "outdoor": 3}, "outdoor", "did you mean 'outdoor_temperature'"),
    ({"temperature": 21, "humidity": 50, "co2": -5}, "co2", "out of range (0..40000 ppm)"),
    ({"temperature": 21, "humidity": 50, "co2": "high"}, "co2", "finite number"),
])
def test_bad_inputs_are_refused_naming_the_field(body, field, words):
    with pytest.raises(InvalidInput) as caught:
        parse_inputs(body)
    assert caught.value.field == field and words in caught.value.message


def test_missing_optional_inputs_are_explicit_in_the_features():
    bare = features(parse_inputs({"temperature": 21, "humidity": 50, "motion": None}))
    full_inputs = {"outdoor_temperature": 0, "motion": False, "sound_level": -45, "position": 0, "co2": 800}
    full = features(parse_inputs({"temperature": 21, "humidity": 50, **full_inputs}))
    known = [FEATURES.index(f) for f in FEATURES if f.endswith("_known")]
    assert len(known) == len(OPTIONAL)
    assert [bare[i] for i in known] == [0.0] * len(known)
    assert [full[FEATURES.index(f"{name}_known")] for name in full_inputs] == [1.0] * len(full_inputs)


def test_a_batch_names_the_bad_item():
    with pytest.raises(InvalidInput) as caught:
        parse_batch([{"temperature": 21, "humidity": 50}, {"temperature": 21}])
    assert caught.value.field == "[1].humidity"
    with pytest.raises(InvalidInput, match="empty"):
        parse_batch([])
    assert parse_batch({"temperature": 21, "humidity": 50})[1] is False


@given(st.dictionaries(st.sampled_from(["temperature", "humidity", "outdoor_temperature", "motion", "sound_level",
                                        "position", "co2", "x"]),
                       st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
                                 st.integers(-1000, 1000), st.text(max_size=3))))
def test_any_json_either_parses_to_finite_features_or_is_refused_by_name(body):
    try:
        inputs = parse_inputs(body)
    except InvalidInput as exc:
        assert exc.field and exc.message
        return
    vector = features(inputs)
    assert len(vector) == len(FEATURES) and all(math.isfinite(v) and -5 <= v <= 5 for v in vector)


def test_registry_inputs_reach_the_features_and_the_rule_without_naming_them_in_ml_code():
    from services.ml_inference import inputs as module
    from services.ml_inference.rule import comfort_rule
    from shared.devices import automation_inputs

    assert set(automation_inputs()) <= set(module.FIELDS)
    assert module.AIRING == {role: spec.airing for role, (_, spec) in automation_inputs().items() if spec.airing}
    fresh = parse_inputs({"temperature": 21, "humidity": 45, "co2": 600})
    stuffy = parse_inputs({"temperature": 21, "humidity": 45, "co2": 1800})
    half = parse_inputs({"temperature": 21, "humidity": 45, "co2": 1300})
    assert comfort_rule(fresh)[0] == 0.0 and comfort_rule(stuffy)[0] == 100.0
    assert comfort_rule(half)[0] == pytest.approx(50.0)
    assert comfort_rule(parse_inputs({"temperature": 16, "humidity": 45, "co2": 1800}))[0] == 0.0  # too cold
    scaled = features(stuffy)[FEATURES.index("co2")]
    assert scaled == pytest.approx((1800 - 1000) / 600) and features(stuffy)[FEATURES.index("co2_known")] == 1.0
