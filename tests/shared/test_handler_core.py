"""What the serial handler's and the HTTP poller's cores share (shared/handler_core.py)."""
from __future__ import annotations

import pytest

from shared.commands import UNKNOWN_DEVICE, Command, CommandError
from shared.config import DeviceSpec
from shared.device_table import DeviceTable
from shared.handler_core import HandlerCore, command_id


class Core(HandlerCore):
    where = "the test handler"


def core(make_settings) -> Core:
    specs = [DeviceSpec("t1", "temperature", "Temperature", "serial_handler", board="b1")]
    return Core("serial_handler", make_settings(), DeviceTable(specs, source_fields=("board",), waiting="waiting"),
                None, None, None)


def test_an_unknown_device_is_refused_naming_the_service_and_the_known_ones(make_settings):
    with pytest.raises(CommandError) as refused:
        core(make_settings).view("nope")
    assert refused.value.code == UNKNOWN_DEVICE
    assert "on the test handler" in refused.value.message and refused.value.extra["known"] == ["t1"]


def test_a_fresh_view_says_why_it_is_not_fresh(make_settings):
    handler = core(make_settings)
    device = handler.device("t1")
    assert handler._fresh(device, None)["fresh"] is True and "fresh_error" not in handler._fresh(device, None)
    stale = handler._fresh(device, "TIMEOUT: no answer")
    assert (stale["fresh"], stale["fresh_error"], stale["device_id"]) == (False, "TIMEOUT: no answer", "t1")


def test_a_recorded_error_is_kept_and_published(make_settings):
    handler = core(make_settings)
    handler._record("SENSOR_FAILURE", "t1: no answer", "warning", device_id="t1", board="b1")
    [kept] = handler.errors.list()
    assert (kept["error_code"], kept["device_id"], kept["board"], kept["source"]) == \
        ("SENSOR_FAILURE", "t1", "b1", "serial_handler")
    [event] = handler.events.recent()
    assert event.kind == "error" and event.data["message"] == "t1: no answer"


def test_a_command_keeps_its_id_or_gets_a_new_one():
    assert command_id(Command({}, cmd_id="abc")) == "abc"
    first, second = command_id(Command({})), command_id(Command({}))
    assert first != second and len(first) == 12
