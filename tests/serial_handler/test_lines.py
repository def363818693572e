"""The line splitter and parser: every protocol example is accepted, every kind of garbage is
rejected with its reason, and (hypothesis) no byte string makes the parser raise or accept an
invalid message."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.serial_handler.lines import (
    MAX_LINE,
    MESSAGE_TYPES,
    REASONS,
    SENSOR_FIELDS,
    SEQ_LIMIT,
    LineSplitter,
    Message,
    Rejection,
    encode_command,
    parse_line,
)

# Exact lines from docs/serial-protocol.md.
PROTOCOL_EXAMPLES = [
    b'{"type":"hello","seq":0,"board_id":"board-1","fw":"1.0.0","protocol":1,"caps":["temperature","humidity",'
    b'"motion","battery","sound_level","window","led"],"interval_ms":5000,"reset_cause":"power_on","uptime_s":0.0}',
    b'{"type":"sensor","seq":12,"uptime_s":60.0,"temperature":21.5,"humidity":40.2,"motion":false,"battery_v":3.92,'
    b'"battery_pct":78,"sound_dbfs":-52.3}',
    b'{"type":"sensor","seq":13,"id":"r-7","uptime_s":61.3,"temperature":null,"humidity":40.3,"motion":true}',
    b'{"type":"event","seq":21,"event":"button","uptime_s":93.4,"data":{"press":"short"}}',
    b'{"type":"window","seq":40,"position":47,"target":47,"moving":false,"stopped":"stop"}',
    b'{"type":"status","seq":1,"uptime_s":0.1,"free_mem":112640,"rssi":null,"sensor_errors":{"temperature":0},'
    b'"interval_ms":5000,"deep_sleep":false}',
    b'{"type":"alert","seq":61,"alert":"sensor_failure","active":true,"sensor":"temperature",'
    b'"message":"DHT22 timeout"}',
    b'{"type":"ack","seq":71,"id":"p-1","ok":true,"result":{"pong":true,"uptime_s":301.2}}',
    b'{"type":"ack","seq":72,"id":"w-9","ok":false,"error":"position must be an integer 0..100, got 140"}',
    b'{"type":"error","seq":84,"id":"x-1","error":"unknown_type","message":"unknown command type \\"dance\\""}',
]


@pytest.mark.parametrize("line", PROTOCOL_EXAMPLES)
def test_protocol_examples_are_accepted(line: bytes) -> None:
    message = parse_line(line)
    assert isinstance(message, Message), message
    assert message.type == json.loads(line)["type"]


def test_fields_are_kept_and_unknown_fields_ignored() -> None:
    message = parse_line(b'{"type":"sensor","seq":5,"temperature":21.5,"future_field":[1,2]}')
    assert isinstance(message, Message)
    assert message.seq == 5 and message.get("temperature") == 21.5
    assert "future_field" not in message.fields


@pytest.mark.parametrize(("line", "reason"), [
    (b"", "empty"),
    (b"ets Jun  8 2016 00:22:57", "invalid_json"),
    (b"rst:0x1 (POWERON_RESET),boot:0x13 \xff\xfe", "invalid_utf8"),
    (b'{"type":"sensor","seq":1,"temperature":21.5', "invalid_json"),
    (b"[1,2,3]", "not_object"),
    (b'"text"', "not_object"),
    (b'{"seq":1}', "missing_type"),
    (b'{"type":7,"seq":1}', "missing_type"),
    (b'{"type":"dance","seq":1}', "unknown_type"),
    (b'{"type":"sensor"}', "missing_field"),
    (b'{"type":"sensor","seq":"1"}', "wrong_type"),
    (b'{"type":"sensor","seq":true}', "wrong_type"),
    (b'{"type":"sensor","seq":-1}', "out_of_range"),
    (b'{"type":"sensor","seq":1073741824}', "out_of_range"),
    (b'{"type":"sensor","seq":1,"temperature":NaN}', "non_finite"),
    (b'{"type":"sensor","seq":1,"temperature":Infinity}', "non_finite"),
    (b'{"type":"sensor","seq":1,"temperature":1e400}', "non_finite"),
    (b'{"type":"sensor","seq":1,"humidity":140}', "out_of_range"),
    (b'{"type":"sensor","seq":1,"temperature":-41}', "out_of_range"),
    (b'{"type":"sensor","seq":1,"temperature":86}', "out_of_range"),
    (b'{"type":"sensor","seq":1,"temperature":"21.5"}', "wrong_type"),
    (b'{"type":"sensor","seq":1,"motion":1}', "wrong_type"),
    (b'{"type":"sensor","seq":1,"battery_pct":50.5}', "wrong_type"),
    (b'{"type":"sensor","seq":1,"sound_dbfs":3}', "out_of_range"),
    (b'{"type":"window","seq":1,"position":140}', "out_of_range"),
    (b'{"type":"window","seq":1}', "missing_field"),
    (b'{"type":"ack","seq":1,"ok":true}', "missing_field"),
    (b'{"type":"ack","seq":1,"id":"a","ok":"yes"}', "wrong_type"),
    (b'{"type":"ack","seq":1,"id":"' + b"x" * 65 + b'","ok":true}', "wrong_type"),
    (b'{"type":"hello","seq":0,"board_id":"\\ud800"}', "wrong_type"),
    (b'{"type":"event","seq":1,"event":"button","data":[1]}', "wrong_type"),
    (b"{" * 5000, "oversize"),
])
def test_garbage_is_rejected_with_its_reason(line: bytes, reason: str) -> None:
    result = parse_line(line)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result.detail


def test_deeply_nested_json_is_rejected_not_raised() -> None:
    line = b'{"type":"event","seq":1,"event":"x","data":' + b'{"a":' * 300 + b"1" + b"}" * 301
    assert isinstance(parse_line(line[:MAX_LINE - 1]), Rejection)


def test_line_at_the_limit_is_accepted_one_byte_more_is_not() -> None:
    head = b'{"type":"event","seq":1,"event":"x","pad":"'
    fill = MAX_LINE - 1 - len(head) - 2
    exact = head + b"a" * fill + b'"}'
    assert len(exact) + 1 == MAX_LINE
    assert isinstance(parse_line(exact), Message)
    too_long = head + b"a" * (fill + 1) + b'"}'
    assert parse_line(too_long) == Rejection("oversize", parse_line(too_long).detail, too_long[:80])


# --------------------------------------------------------------------------- splitter


def test_splitter_joins_partial_lines_and_strips_cr() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"type":"sen') == []
    assert splitter.feed(b'sor","seq":1}\r\n{"a"') == [b'{"type":"sensor","seq":1}']
    assert splitter.feed(b":1}\n\n") == [b'{"a":1}', b""]


def test_splitter_discards_an_oversize_line_without_buffering_it() -> None:
    splitter = LineSplitter()
    out = []
    for _ in range(1024):  # 1 MiB without a newline, in 1 KiB chunks
        out += splitter.feed(b"x" * 1024)
        assert len(splitter._buffer) <= MAX_LINE
    out += splitter.feed(b'\n{"ok":1}\n')
    assert len(out) == 2
    assert isinstance(out[0], Rejection) and out[0].reason == "oversize"
    assert out[1] == b'{"ok":1}'


def test_splitter_reset_forgets_the_unfinished_line() -> None:
    splitter = LineSplitter()
    splitter.feed(b'{"type":"sensor"')
    splitter.reset()
    assert splitter.feed(b'{"b":2}\n') == [b'{"b":2}']


@given(st.lists(st.binary(max_size=3000), max_size=20), st.integers(1, 64))
def test_splitter_matches_a_reference_split(chunks: list[bytes], step: int) -> None:
    """However the bytes are chunked, the splitter yields what splitting the whole stream gives."""
    data = b"".join(chunks)
    splitter = LineSplitter()
    got: list[bytes | str] = []
    for i in range(0, len(data), step):
        for item in splitter.feed(data[i:i + step]):
            got.append("OVERSIZE" if isinstance(item, Rejection) else item)
        assert len(splitter._buffer) < MAX_LINE
    expected: list[bytes | str] = []
    for line in data.split(b"\n")[:-1]:
        if len(line) + 1 > MAX_LINE:
            expected.append("OVERSIZE")
        else:
            expected.append(line[:-1] if line.endswith(b"\r") else line)
    assert got == expected


# --------------------------------------------------------------------------- property: never raise, never accept


def _finite_numbers(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    return True


def assert_valid(message: Message, line: bytes) -> None:
    """An independent statement of "valid" (docs/serial-protocol.md), checked on the raw line."""
    raw = json.loads(line.decode("utf-8"))  # valid UTF-8 JSON object...
    assert isinstance(raw, dict)
    assert raw["type"] == message.type and message.type in MESSAGE_TYPES
    assert type(raw["seq"]) is int and 0 <= raw["seq"] < SEQ_LIMIT and raw["seq"] == message.seq
    assert _finite_numbers(message.fields)
    json.dumps(message.fields, allow_nan=False).encode("utf-8")  # re-encodable, no lone surrogates
    if message.type == "sensor":
        for name, (kind, low, high) in SENSOR_FIELDS.items():
            value = message.fields.get(name)
            if value is None:
                continue
            if kind == "bool":
                assert isinstance(value, bool)
            else:
                assert not isinstance(value, bool) and low <= value <= high
    if message.type == "ack":
        assert isinstance(message.fields["id"], str) and isinstance(message.fields["ok"], bool)
    if message.type == "window":
        assert 0 <= message.fields["position"] <= 100


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_and_are_never_wrongly_accepted(line: bytes) -> None:
    result = parse_line(line)
    assert isinstance(result, (Message, Rejection))
    if isinstance(result, Rejection):
        assert result.reason in REASONS
    else:
        assert_valid(result, line)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
field_names = st.sampled_from(["type", "seq", "id", "ok", "temperature", "humidity", "motion", "battery_pct",
                               "battery_v", "sound_dbfs", "position", "target", "moving", "event", "data",
                               "board_id", "result", "error", "alert", "active"])
type_names = st.sampled_from([*MESSAGE_TYPES, "dance", ""])


@given(type_names, st.integers(-5, SEQ_LIMIT + 5) | json_values, st.dictionaries(field_names, json_values, max_size=6))
def test_json_shaped_lines_are_accepted_only_when_valid(kind: str, seq: object, fields: dict) -> None:
    """Lines that look like messages (the interesting case random bytes rarely reach)."""
    doc = {**fields, "type": kind, "seq": seq}
    line = json.dumps(doc, allow_nan=True).encode("utf-8", errors="surrogatepass")
    result = parse_line(line)
    assert isinstance(result, (Message, Rejection))
    if isinstance(result, Message):
        assert_valid(result, line)


sensor_lines = st.fixed_dictionaries(
    {"type": st.just("sensor"), "seq": st.integers(0, SEQ_LIMIT - 1)},
    optional={"temperature": st.floats(-40, 85) | st.none(), "humidity": st.floats(0, 100),
              "motion": st.booleans(), "battery_pct": st.integers(0, 100), "battery_v": st.floats(0, 6),
              "sound_dbfs": st.floats(-140, 0), "co2": st.integers(0, 40_000) | st.none(),
              "uptime_s": st.floats(0, 1e6)})


@given(sensor_lines)
def test_every_valid_sensor_line_is_accepted(doc: dict) -> None:
    line = json.dumps(doc, separators=(",", ":")).encode()
    result = parse_line(line)
    assert isinstance(result, Message), result
    assert {k: v for k, v in result.fields.items()} == {k: v for k, v in doc.items() if k not in ("type", "seq")}


def test_encode_command_refuses_lines_over_the_limit() -> None:
    assert encode_command({"type": "ping", "id": "p-1"}) == b'{"type":"ping","id":"p-1"}\n'
    with pytest.raises(ValueError, match="1024"):
        encode_command({"type": "config", "pad": "x" * 1100})


def test_a_co2_reading_is_checked_and_split_to_the_co2_device() -> None:
    from services.serial_handler.devices import sensor_updates

    message = parse_line(b'{"type":"sensor","seq":3,"temperature":21.5,"co2":1234}')
    assert isinstance(message, Message)
    assert sensor_updates(message) == {"temperature": {"temperature": 21.5}, "co2": {"co2": 1234}}
    for bad, reason in ((b'{"type":"sensor","seq":3,"co2":40001}', "out_of_range"),
                        (b'{"type":"sensor","seq":3,"co2":812.5}', "wrong_type")):  # the SCD40 reports whole ppm
        rejected = parse_line(bad)
        assert isinstance(rejected, Rejection) and rejected.reason == reason, rejected
