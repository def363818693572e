"""shared.jsonio: the fast JSON of the hot paths behaves like the standard library where it matters."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared import jsonio


def test_round_trip_is_compact_utf8():
    doc = {"device_id": "küche", "state": {"temperature": 21.5, "online": True}, "reason": None}
    data = jsonio.dumps_bytes(doc)
    assert b" " not in data and "küche".encode() in data
    assert jsonio.loads(data) == doc == json.loads(jsonio.dumps(doc))


def test_what_orjson_refuses_falls_back_to_the_standard_library():
    assert jsonio.loads(jsonio.dumps({"big": 2 ** 70})) == {"big": 2 ** 70}
    assert jsonio.loads(jsonio.dumps({1: "a"})) == {"1": "a"}


def test_values_without_a_json_type_become_strings_and_nan_becomes_null():
    moment = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert jsonio.loads(jsonio.dumps({"at": moment, "x": float("nan")})) == {"at": moment.isoformat(), "x": None}


@pytest.mark.parametrize("text", ["", "{", "NaN", "{'a': 1}"])
def test_malformed_input_raises_value_error(text):
    with pytest.raises(ValueError):
        jsonio.loads(text)
