"""Device command -> protocol command mapping and its validation (no board needed)."""
from __future__ import annotations

import pytest

from services.serial_handler.commands import CommandError, board_command, build_command


@pytest.mark.parametrize(("device_type", "values", "expected"), [
    ("window", {"position": 40}, {"type": "window", "position": 40}),
    ("window", {"position": 39.6}, {"type": "window", "position": 40}),
    ("window", {"position": "stop"}, {"type": "window", "stop": True}),
    ("window", {"stop": True}, {"type": "window", "stop": True}),
    ("led", {"state": "ON"}, {"type": "led", "state": "on"}),
    ("led", {"state": False}, {"type": "led", "state": "off"}),
    ("led", {"color": "#FF8800", "brightness": 128, "blink": True},
     {"type": "led", "color": "#ff8800", "brightness": 128, "blink": 500}),
    ("temperature", {"interval": 5}, {"type": "config", "interval_ms": 5000}),
    ("battery", {"interval": 0.5}, {"type": "config", "interval_ms": 500}),
    ("motion", {}, {"type": "read"}),
])
def test_device_commands_map_to_protocol_commands(device_type: str, values: dict, expected: dict) -> None:
    assert build_command(device_type, values) == expected


@pytest.mark.parametrize(("device_type", "values", "code"), [
    ("window", {"position": 140}, "INVALID_VALUE"),
    ("window", {"position": True}, "INVALID_VALUE"),
    ("window", {"position": "40"}, "INVALID_VALUE"),
    ("window", {"stop": False}, "INVALID_VALUE"),
    ("led", {"state": "dim"}, "INVALID_VALUE"),
    ("led", {"color": "red"}, "INVALID_VALUE"),
    ("led", {"brightness": 300}, "INVALID_VALUE"),
    ("led", {"blink": 10}, "INVALID_VALUE"),
    ("temperature", {"interval": 0}, "INVALID_VALUE"),
    ("temperature", {"interval": float("nan")}, "INVALID_VALUE"),
    ("temperature", [1], "INVALID_VALUE"),
    ("temperature", {"position": 3}, "UNSUPPORTED"),
    ("led", {"dance": True}, "UNSUPPORTED"),
    ("switch", {"state": "on"}, "UNSUPPORTED"),
])
def test_bad_commands_fail_before_reaching_the_board(device_type: str, values: object, code: str) -> None:
    with pytest.raises(CommandError) as info:
        build_command(device_type, values)
    assert info.value.code == code
    assert info.value.message


def test_board_commands_pass_fields_through_and_check_the_type() -> None:
    assert board_command({"type": "config", "interval_ms": 500}) == {"type": "config", "interval_ms": 500}
    with pytest.raises(CommandError) as info:
        board_command({"type": "dance"})
    assert info.value.code == "UNSUPPORTED" and "ping" in info.value.extra["supported"]

