"""Command validation by device type: what is refused before any service is asked."""
from __future__ import annotations

import pytest

from services.state_aggregator.commands import validate_values
from shared.commands import CommandError, parse_command

ACCEPTED = [
    ("window", {"position": 0}), ("window", {"position": 100}), ("window", {"position": 42.5}),
    ("window", {"stop": True}), ("window", {"position": "stop"}),
    ("led", {"state": "on"}), ("led", {"state": "off", "color": "#FF8800", "brightness": 0}),
    ("led", {"brightness": 255, "blink": 500}), ("led", {"blink": True}),
    ("switch", {"state": "off"}),
    ("temperature", {"interval": 1}), ("battery", {"interval": 86400}), ("motion", {}),
]
REFUSED = [
    ("window", {"position": 101}, "INVALID_VALUE"), ("window", {"position": -1}, "INVALID_VALUE"),
    ("window", {"position": "50"}, "INVALID_VALUE"), ("window", {"position": True}, "INVALID_VALUE"),
    ("window", {"stop": False}, "INVALID_VALUE"), ("window", {}, "INVALID_VALUE"),
    ("window", {"position": 10, "stop": True}, "INVALID_VALUE"),
    ("window", {"state": "on"}, "UNSUPPORTED"),
    ("led", {"state": "ON!"}, "INVALID_VALUE"), ("led", {"color": "red"}, "INVALID_VALUE"),
    ("led", {"color": "#12345"}, "INVALID_VALUE"), ("led", {"brightness": 256}, "INVALID_VALUE"),
    ("led", {"brightness": 12.5}, "INVALID_VALUE"), ("led", {"blink": 10}, "INVALID_VALUE"),
    ("led", {"position": 3}, "UNSUPPORTED"),
    ("temperature", {"interval": 0}, "INVALID_VALUE"), ("humidity", {"interval": 86401}, "INVALID_VALUE"),
    ("pressure", {"interval": "5"}, "INVALID_VALUE"), ("motion", {"position": 5}, "UNSUPPORTED"),
]


@pytest.mark.parametrize(("device_type", "values"), ACCEPTED)
def test_accepted_values(device_type, values):
    validate_values(device_type, values)


@pytest.mark.parametrize(("device_type", "values", "code"), REFUSED)
def test_refused_values_name_the_problem(device_type, values, code):
    with pytest.raises(CommandError) as caught:
        validate_values(device_type, values)
    assert caught.value.code == code
    assert caught.value.status == 400
    assert caught.value.message  # a sentence for the user


def test_body_without_values_is_taken_as_the_values():
    request = parse_command({"id": "c-1", "position": 40, "timeout": 5000})
    assert dict(request.values) == {"position": 40}
    assert request.cmd_id == "c-1"
    assert request.body("c-1") == {"values": {"position": 40}, "id": "c-1", "timeout": 5000}


@pytest.mark.parametrize("body", [[1, 2], {"values": [1]}, {"values": {}, "timeout": -5},
                                  {"values": {}, "id": {"x": 1}}])
def test_malformed_bodies_are_refused(body):
    with pytest.raises(CommandError) as caught:
        parse_command(body)
    assert caught.value.status == 400


def test_the_model_command_is_checked_for_an_automations_switch_only():
    assert validate_values("switch", {"model": "window-v1:45b98a2cdb34"}, automation=True) == {
        "model": "window-v1:45b98a2cdb34"}
    with pytest.raises(CommandError) as relay:
        validate_values("switch", {"model": "window-v1:45b98a2cdb34"})
    assert relay.value.code == "UNSUPPORTED" and relay.value.status == 400
    with pytest.raises(CommandError) as bad:
        validate_values("switch", {"model": "no such thing!"}, automation=True)
    assert bad.value.code == "INVALID_VALUE"
