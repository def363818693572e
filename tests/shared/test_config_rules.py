"""The cross-field rules of shared/config/rules.py, each on its own, on the smallest document
that breaks it (and one that does not)."""
from __future__ import annotations

import inspect
from typing import Any

from shared.config import rules
from shared.config.rules import InstanceDocument


def _doc(devices: list[Any] | None = None, groups: list[Any] | None = None, **config: Any) -> InstanceDocument:
    return InstanceDocument.read({"instance_id": "hub", "devices": devices or [], "groups": groups or [],
                             "config": config})


def _device(device_id: str, type_: str = "temperature", **source: str) -> dict[str, Any]:
    return {"device_id": device_id, "type": type_, "source": source or {"board": "b1"}}


BOARD = {"board_id": "b1", "port": "/dev/ttyUSB0"}


def test_instance_id_must_match_instance_name():
    document = InstanceDocument.read({"instance_id": "hub"}, instance_name="other")
    assert rules.instance_id_matches_instance_name(document) == [
        "instance_id: 'hub' does not match INSTANCE_NAME 'other'"]
    assert rules.instance_id_matches_instance_name(InstanceDocument.read({"instance_id": "hub"}, "hub")) == []
    assert rules.instance_id_matches_instance_name(InstanceDocument.read({"instance_id": "hub"})) == []


def test_instance_id_must_match_file_name():
    document = InstanceDocument.read({"instance_id": "hub"}, file_stem="hub2")
    assert rules.instance_id_matches_file_name(document) == [
        "instance_id: 'hub' does not match the file name 'hub2.json'"]
    assert rules.instance_id_matches_file_name(InstanceDocument.read({"instance_id": "hub"}, file_stem="hub")) == []


def test_ids_are_unique_within_each_section():
    document = _doc([_device("t"), _device("t")], groups=[{"group_id": "g"}, {"group_id": "g"}],
                    serial_ports=[BOARD, BOARD], http_endpoints=[{"endpoint_id": "e"}, {"endpoint_id": "e"}],
                    window_automations=[{"automation_id": "a"}, {"automation_id": "a"}])
    assert rules.ids_are_unique(document) == [
        "devices[1].device_id: 't' is a duplicate (already used by devices[0])",
        "groups[1].group_id: 'g' is a duplicate (already used by groups[0])",
        "config.serial_ports[1].board_id: 'b1' is a duplicate (already used by config.serial_ports[0])",
        "config.http_endpoints[1].endpoint_id: 'e' is a duplicate (already used by config.http_endpoints[0])",
        "config.window_automations[1].automation_id: 'a' is a duplicate "
        "(already used by config.window_automations[0])",
    ]
    # The same id in two sections is fine: each section is its own namespace.
    assert rules.ids_are_unique(_doc([_device("x")], groups=[{"group_id": "x"}])) == []


def test_one_board_per_port():
    document = _doc(serial_ports=[BOARD, {"board_id": "b2", "port": "/dev/ttyUSB0"}])
    assert rules.one_board_per_port(document) == [
        "config.serial_ports[1].port: '/dev/ttyUSB0' is a duplicate (already used by config.serial_ports[0])"]
    assert rules.one_board_per_port(_doc(serial_ports=[BOARD, {"board_id": "b2", "port": "loop://"}])) == []


def test_a_source_names_exactly_one_kind():
    document = _doc()
    two = _device("t", board="b1", endpoint="e1")
    assert rules.source_names_one_kind(document, 3, two) == [
        "devices[3].source: must name exactly one of board, endpoint or automation (found board and endpoint)"]
    assert rules.source_names_one_kind(document, 0, _device("t", key="temp")) == [
        "devices[0].source: must name exactly one of board, endpoint or automation (found none of them)"]
    assert rules.source_names_one_kind(document, 0, _device("t", board="b1")) == []
    assert rules.source_names_one_kind(document, 0, {"device_id": "t", "source": {}}) == []  # the schema's


def test_a_source_names_a_configured_board_endpoint_or_automation():
    document = _doc(serial_ports=[BOARD])
    assert rules.source_is_configured(document, 0, _device("t", board="b9")) == [
        "devices[0].source.board: 'b9' is not in config.serial_ports (known: b1)"]
    assert rules.source_is_configured(document, 1, _device("t", endpoint="e1")) == [
        "devices[1].source.endpoint: 'e1' is not in config.http_endpoints (known: none are configured)"]
    assert rules.source_is_configured(document, 2, _device("t", automation="a1")) == [
        "devices[2].source.automation: 'a1' is not in config.window_automations (known: none are configured)"]
    assert rules.source_is_configured(document, 0, _device("t", board="b1")) == []
    # Two kinds at once is source_names_one_kind's problem, not reported twice.
    assert rules.source_is_configured(document, 0, _device("t", board="b9", endpoint="e9")) == []


def test_only_an_endpoint_source_takes_a_key():
    document = _doc()
    assert rules.key_only_for_endpoints(document, 2, _device("t", board="b1", key="temp")) == [
        "devices[2].source.key: only an endpoint source takes a key"]
    assert rules.key_only_for_endpoints(document, 2, _device("t", endpoint="e1", key="temp")) == []


def test_group_members_are_configured_devices():
    document = _doc([_device("t")], groups=[{"group_id": "g", "devices": ["t", "ghost"]}])
    assert rules.group_members_are_devices(document) == ["groups[0].devices[1]: 'ghost' is not a configured device"]


def test_an_automation_moves_a_window_device():
    document = _doc([_device("w", "window"), _device("l", "led")])
    assert rules.window_is_a_window_device(document, 0, {"window": "l"}) == [
        "config.window_automations[0].window: 'l' is a led device, expected a window device"]
    assert rules.window_is_a_window_device(document, 0, {"window": "ghost"}) == [
        "config.window_automations[0].window: 'ghost' is not a configured device"]
    assert rules.window_is_a_window_device(document, 0, {"window": "w"}) == []


def test_an_automations_sensors_fit_their_roles():
    document = _doc([_device("t"), _device("h", "humidity"), _device("x", "thermometer")])
    automation = {"sensors": {"temperature": "h", "humidity": "h", "outdoor_temperature": "t", "motion": "m",
                              "sound_level": "x"}}
    assert rules.sensors_fit_their_roles(document, 1, automation) == [
        "config.window_automations[1].sensors.temperature: 'h' is a humidity device, expected a temperature device",
        "config.window_automations[1].sensors.motion: 'm' is not a configured device",
    ]  # outdoor_temperature takes a temperature device; an invalid type is the schema's to report


def test_an_automations_positions_are_in_order():
    document = _doc()
    assert rules.positions_in_order(document, 0, {"min_position": 60, "max_position": 40}) == [
        "config.window_automations[0].min_position: 60 is above max_position 40"]
    assert rules.positions_in_order(document, 0, {"min_position": 40, "max_position": 40}) == []
    # Read with the schema's defaults: an absent max_position is 100.
    document = _doc(window_automations=[{"min_position": 101}])
    assert rules.positions_in_order(document, 0, document.automations[0]) == [
        "config.window_automations[0].min_position: 101 is above max_position 100"]


def test_two_services_never_share_an_address():
    clash = _doc(services={"http_poller": {"port": 5001}})
    assert rules.service_ports_differ(clash) == [
        "config.services.http_poller.port: 5001 is already used by serial_handler"]
    apart = _doc(services={"http_poller": {"host": "127.0.0.2", "port": 5001}})
    assert rules.service_ports_differ(apart) == []


def test_rules_survive_sections_of_the_wrong_type():
    doc = {"instance_id": 7, "devices": "x", "groups": {"a": 1},
           "config": {"serial_ports": 3, "services": {"http_poller": "z"}, "window_automations": [1, None]}}
    assert rules.cross_field_problems(doc) == []
    assert rules.cross_field_problems({"config": []}) == []


def test_every_rule_is_in_rules():
    """A rule written but never listed would never run."""
    listed = {rule.__name__ for rule in rules.RULES} | {
        check.__name__ for check in rules.DEVICE_CHECKS + rules.AUTOMATION_CHECKS}
    public = {name for name, value in inspect.getmembers(rules, inspect.isfunction)
              if value.__module__ == rules.__name__ and not name.startswith("_")}
    assert public - {"each", "cross_field_problems"} <= listed
