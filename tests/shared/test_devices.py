"""The device-type registry: one entry per type, consistent with itself and with its readers."""
from __future__ import annotations

import math

import pytest

from shared import devices
from shared.devices import (
    DEVICE_TABLE,
    DEVICE_TYPES,
    SENSOR_TYPES,
    InvalidCommand,
    automation_inputs,
    board_fields,
    device_type,
    normalize_command,
    on_off_word,
)


def test_every_type_has_properties_a_component_and_unique_names():
    assert len(set(DEVICE_TYPES)) == len(DEVICE_TYPES)
    for entry in DEVICE_TABLE:
        names = [p.name for p in entry.properties]
        assert names and len(set(names)) == len(names), entry.name
        assert entry.ha_component in ("sensor", "binary_sensor", "cover", "light", "switch"), entry.name
        if entry.ha_component == "sensor":
            assert all(p.ha is not None for p in entry.properties), f"{entry.name}: every sensor property is an entity"
        for prop in entry.properties:
            low, high = prop.range
            assert low < high, (entry.name, prop.name)


def test_sensor_types_take_an_interval_or_nothing():
    assert SENSOR_TYPES >= {"temperature", "humidity", "motion", "battery", "sound_level"}
    for name in SENSOR_TYPES:
        assert normalize_command(name, {}) == {}
        assert normalize_command(name, {"interval": 5}) == {"interval": 5.0}
    with pytest.raises(InvalidCommand) as caught:
        normalize_command("window", {})
    assert caught.value.code == "INVALID_VALUE"


def test_sound_level_is_dbfs_without_a_sound_pressure_class():
    prop = device_type("sound_level").main
    assert prop.unit == "dBFS" and prop.ha is not None
    assert (prop.ha.device_class, prop.ha.unit, prop.ha.state_class) == (None, "dBFS", "measurement")


def test_board_fields_name_a_property_of_their_type():
    fields = board_fields()
    assert fields["sound_dbfs"][0] == "sound_level" and fields["battery_v"][1].name == "voltage"
    for name, (type_name, prop) in fields.items():
        assert prop in device_type(type_name).properties
        assert prop.board is not None and prop.board.name == name


def test_automation_inputs_put_the_required_first_and_name_real_ranges():
    inputs = automation_inputs()
    roles = list(inputs)
    assert roles[:2] == ["temperature", "humidity"] and all(inputs[r][1].required for r in roles[:2])
    assert not any(inputs[r][1].required for r in roles[2:])
    assert inputs["outdoor_temperature"][0] == "temperature"
    for role, (type_name, spec) in inputs.items():
        assert spec.prop in [p.name for p in device_type(type_name).properties], role
        if spec.kind == "number":
            assert spec.training is not None and spec.range[0] <= spec.training[0] < spec.training[1] <= spec.range[1]
            assert spec.scale[1] > 0 and math.isfinite(spec.scale[0])
        if spec.airing is not None:
            assert spec.training[0] <= spec.airing[0] < spec.airing[1] <= spec.training[1], role


def test_unknown_type_names_the_known_ones():
    with pytest.raises(KeyError, match="known: temperature"):
        device_type("thermostat")


@pytest.mark.parametrize(("word", "meaning"), [("ON", True), (" detected ", True), ("idle", False), ("Off", False),
                                               ("maybe", None), (1, None)])
def test_on_off_words_are_one_set(word, meaning):
    assert on_off_word(word) is meaning


def test_colour_pattern_is_shared():
    assert devices.COLOR.match("#A0b1C2") and not devices.COLOR.match("#abc")
    assert not devices.COLOR.match("#a0b1c2\n")  # "$" would have let the newline through
    assert normalize_command("led", {"color": "#A0B1C2"}) == {"color": "#a0b1c2"}


def test_the_instance_config_takes_a_co2_device_as_an_automation_input():
    from shared.config import validate_document
    from testkit.example import example_document

    doc = example_document()
    doc["devices"].append({"device_id": "living_co2", "type": "co2", "source": {"board": "living_room_esp32"}})
    doc["config"]["window_automations"][0]["sensors"]["co2"] = "living_co2"
    assert validate_document(doc) == []
    doc["config"]["window_automations"][0]["sensors"]["co2"] = "living_temperature"
    [problem] = validate_document(doc)
    assert "sensors.co2: 'living_temperature' is a temperature device, expected a co2 device" in problem


def test_an_automations_switch_also_takes_a_model_version():
    """``model`` (a rollback) is a command of an automation's switch only; its shape is checked here,
    whether the version exists is ml_inference's to say."""
    assert normalize_command("switch", {"model": " window-v1:45b98a2cdb34 "}, automation=True) == {
        "model": "window-v1:45b98a2cdb34"}
    assert normalize_command("switch", {"model": "45b98a2cdb34", "state": "ON"}, automation=True) == {
        "model": "45b98a2cdb34", "state": "on"}
    assert devices.command_keys("switch", automation=True) == ("model", "state")
    with pytest.raises(InvalidCommand) as relay:
        normalize_command("switch", {"model": "window-v1:45b98a2cdb34"})  # a relay has no model
    assert relay.value.code == "UNSUPPORTED" and relay.value.extra["accepted"] == ["state"]
    for bad in ("", "two words", "x" * 65, 7, None, ":leading", "a/b"):
        with pytest.raises(InvalidCommand) as caught:
            normalize_command("switch", {"model": bad}, automation=True)
        assert caught.value.code == "INVALID_VALUE" and "GET /models" in caught.value.message, bad
