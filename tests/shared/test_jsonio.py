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


def test_encoded_bytes_hold_no_more_memory_than_their_length():
    # orjson hands back its growing buffer (4 KiB for a small reading); kept by the thousand in
    # an event stream's replay history or the bridge's outbox, that was tens of MiB.
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [jsonio.dumps_bytes({"device_id": "b1_temperature", "state": {"temperature": n / 10}})
                for n in range(1000)]
        per_payload = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert per_payload < 4 * len(kept[0]) + 200


def test_an_encoded_part_is_placed_as_is_and_reads_back_plainly():
    part = jsonio.encoded({"device_id": "a", "online": True})
    assert jsonio.loads(jsonio.dumps_bytes({"devices": [part, part]})) == {
        "devices": [{"device_id": "a", "online": True}] * 2}
    # for the standard library's encoder (a pretty answer), as plain values
    assert json.loads(json.dumps(jsonio.plain({"devices": [part]}))) == {
        "devices": [{"device_id": "a", "online": True}]}
