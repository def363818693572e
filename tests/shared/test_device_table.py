"""The one DeviceTable of the handler services and its change rule (shared/device_table.py)."""
from __future__ import annotations

import pytest

from shared.clock import iso, iso_at
from shared.config import DeviceSpec
from shared.device_table import DeviceTable, device_view, same_state, same_value

WAITING = "waiting for the board"


def board_table() -> DeviceTable:
    specs = [DeviceSpec("t1", "temperature", "Temperature", "serial_handler", board="b1"),
             DeviceSpec("h1", "humidity", "Humidity", "serial_handler", board="b1"),
             DeviceSpec("t2", "temperature", "Other", "serial_handler", board="b2")]
    return DeviceTable(specs, source_fields=("board",), waiting=WAITING)


@pytest.mark.parametrize(("old", "new", "same"), [
    (21, 21.0, True),          # a JSON writer that drops ".0" is no change of the reading
    (21.0, 21, True),
    (21.5, 21.5, True),
    (21.5, 21.6, False),
    (True, 1, False),          # a bool is not a number
    (1, True, False),
    (0, False, False),
    (True, True, True),
    (True, False, False),
    ("on", "on", True),
    ("on", "off", False),
    ("1", 1, False),           # a string is never a number here
    (None, None, True),
    (None, 0, False),
    (0, None, False),
    ({"a": 1}, {"a": 1}, True),
])
def test_the_change_rule(old, new, same):
    assert same_value(old, new) is same


def test_the_first_reading_is_news_and_a_numerically_equal_one_is_not():
    table = board_table()
    t1 = table.get("t1")
    assert table.update(t1, {"temperature": 21}, now=100.0) == {"temperature": 21}
    assert table.update(t1, {"temperature": 21.0}, now=101.0) is None
    assert t1.last_seen == 101.0  # seen, though nothing changed
    assert table.update(t1, {"temperature": 21.5}, now=102.0) == {"temperature": 21.5}


def test_a_new_property_is_a_change_and_the_state_merges():
    table = board_table()
    t1 = table.get("t1")
    table.update(t1, {"temperature": 21.5}, now=1.0)
    assert table.update(t1, {"battery": 80}, now=2.0) == {"temperature": 21.5, "battery": 80}


def test_a_bool_replacing_an_equal_int_is_a_change():
    table = board_table()
    t1 = table.get("t1")
    table.update(t1, {"motion": 1}, now=1.0)
    assert table.update(t1, {"motion": True}, now=2.0) == {"motion": True}


def test_an_empty_update_is_no_news_even_at_first():
    table = board_table()
    assert table.update(table.get("t1"), {}, now=1.0) is None


def test_availability_changes_with_online_or_the_reason():
    table = board_table()
    t1 = table.get("t1")
    assert table.view(t1)["reason"] == WAITING and table.view(t1)["online"] is False
    assert table.set_online(t1, False, "port closed", "BOARD_OFFLINE") is True  # a new reason is news
    assert t1.problem == "BOARD_OFFLINE"
    assert table.set_online(t1, False, "port closed", "BOARD_OFFLINE") is False
    assert table.set_online(t1, True, "ignored when online") is True
    assert table.view(t1)["reason"] is None and t1.problem is None
    assert table.set_online(t1, True, None) is False


def test_a_source_goes_offline_together_and_says_which_devices_changed():
    table = board_table()
    changed = table.set_source_online("b1", True, None)
    assert [d.spec.device_id for d in changed] == ["t1", "h1"]
    assert table.set_source_online("b1", True, None) == []
    assert [d.spec.device_id for d in table.set_source_online("b1", False, "silent")] == ["t1", "h1"]
    assert table.get("t2").reason == WAITING  # another board is untouched


def test_lookups_by_source_and_type_and_touch():
    table = board_table()
    assert [d.spec.device_id for d in table.of_source("b1")] == ["t1", "h1"]
    assert [d.spec.device_id for d in table.of_type("b1", "temperature")] == ["t1"]
    assert table.of_type("b3", "temperature") == [] and table.get("nope") is None
    table.touch("b1", 50.0)
    assert table.get("h1").last_seen == 50.0 and table.get("t2").last_seen is None


def test_the_view_shape_is_the_handler_apis():
    table = board_table()
    t1 = table.get("t1")
    table.update(t1, {"temperature": 20}, now=1_700_000_000.0)
    view = table.view(t1)
    assert list(view) == ["device_id", "type", "name", "board", "online", "state", "last_seen", "reason"]
    assert view["state"] == {"temperature": 20} and view["last_seen"] == iso_at(1_700_000_000.0)
    view["state"]["temperature"] = 99  # a copy: the table is not changed through a view
    assert table.view(t1)["state"] == {"temperature": 20}
    assert [v["device_id"] for v in table.views()] == ["t1", "h1", "t2"]


def test_one_view_builder_for_every_source():
    spec = DeviceSpec("w", "switch", "Auto", "ml_inference", automation="a1")
    view = device_view(spec, ("automation",), online=True, state={"state": "on"}, last_seen=None, reason=None)
    assert view == {"device_id": "w", "type": "switch", "name": "Auto", "automation": "a1", "online": True,
                    "state": {"state": "on"}, "last_seen": None, "reason": None}
    http = DeviceSpec("e", "temperature", "Out", "http_poller", endpoint="ep", key="t")
    assert list(device_view(http, ("endpoint", "key"), online=False, state={}, last_seen=None, reason="x"))[3:5] \
        == ["endpoint", "key"]


def test_whole_states_compare_by_the_same_rule():
    assert same_state({"position": 40, "moving": False}, {"position": 40.0, "moving": False})
    assert not same_state({"position": 40}, {"position": 40, "moving": False})
    assert not same_state({"moving": 0}, {"moving": False})
    assert not same_state(None, {})


def test_iso_of_never_is_none():
    assert iso(None) is None and iso(0.0) == iso_at(0.0)
