"""What a device said, turned into state properties: conversions and refusals."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.http_poller.values import BadValue, MissingKey, lookup, state_from


@pytest.mark.parametrize("device_type,raw,state", [
    ("temperature", 21.5, {"temperature": 21.5}),
    ("temperature", "21.5 °C", {"temperature": 21.5}),
    ("temperature", None, {}),
    ("temperature", math.nan, {}),
    ("temperature", "unknown", {}),
    ("humidity", {"humidity": 40, "other": 1}, {"humidity": 40}),
    ("battery", {"battery": 80, "voltage": 3.9}, {"battery": 80, "voltage": 3.9}),
    ("motion", "ON", {"motion": True}),
    ("motion", 0, {"motion": False}),
    ("switch", True, {"state": "on"}),
    ("switch", "OFF", {"state": "off"}),
    ("window", 40, {"position": 40, "target": 40}),
    ("window", {"position": 10, "target": 50, "moving": True}, {"position": 10, "target": 50, "moving": True}),
    ("led", {"state": "ON", "color": {"r": 255, "g": 136, "b": 0}, "brightness": 128},
     {"state": "on", "color": "#ff8800", "brightness": 128}),
    ("led", {"value": True}, {"state": "on"}),
])
def test_values_become_the_type_s_properties(device_type, raw, state):
    assert state_from(device_type, raw) == state


@pytest.mark.parametrize("device_type,raw,words", [
    ("temperature", "warm", "expected a number, got 'warm'"),
    ("temperature", True, "expected a number, got True"),
    ("humidity", 140, "humidity: 140 is out of range (0..100)"),
    ("motion", "maybe", "expected on/off or true/false"),
    ("window", [1, 2], "got a list"),
    ("led", {"color": "orange"}, "expected a colour"),
    ("switch", {"power": 1}, "expected state in"),
])
def test_wrong_values_are_refused_with_what_was_expected(device_type, raw, words):
    with pytest.raises(BadValue, match=words.replace("(", r"\(").replace(")", r"\)")):
        state_from(device_type, raw)


def test_lookup_walks_objects_and_lists():
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    assert lookup(doc, "a.b.1.c") == 2
    assert lookup(doc, "a.b.-1.c") == 2
    with pytest.raises(MissingKey, match=r"'x' not found in a\.b"):
        lookup(doc, "a.b.x")


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8),
       st.sampled_from(["temperature", "humidity", "battery", "motion", "switch", "window", "led"]))
def test_any_json_value_gives_a_state_or_a_bad_value_never_a_crash(raw, device_type):
    try:
        state = state_from(device_type, raw)
    except BadValue:
        return
    assert isinstance(state, dict)
    for value in state.values():
        assert not isinstance(value, float) or math.isfinite(value)


def test_a_co2_reading_follows_the_registry():
    assert state_from("co2", "812 ppm") == {"co2": 812.0}
    assert state_from("co2", {"value": 1450}) == {"co2": 1450}
    with pytest.raises(BadValue, match="out of range"):
        state_from("co2", -5)
