"""The protocol module: framing, decoding and the value checks every command handler uses."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.esp32.sensorhub.protocol import (
    MAX_LINE,
    CommandRefused,
    LineBuffer,
    ProtocolError,
    decode_command,
    encode,
    error_message,
    format_color,
    int_in,
    parse_color,
)


def test_encode_is_one_compact_newline_terminated_line():
    line = encode({"type": "ack", "seq": 3, "id": "a", "ok": True})
    assert line == b'{"type":"ack","seq":3,"id":"a","ok":true}\n'
    assert line.count(b"\n") == 1


def test_decode_accepts_commands_and_ignores_unknown_fields():
    cmd = decode_command(b'{"type":"window","id":"w-1","position":80,"future_field":[1,2]}')
    assert cmd["type"] == "window" and cmd["position"] == 80


@pytest.mark.parametrize("raw, code", [
    (b"garbage", "bad_json"),
    (b"\xff\xfe{}", "bad_json"),
    (b'{"type":"ping"', "bad_json"),
    (b"[1,2]", "not_object"),
    (b'"ping"', "not_object"),
    (b'{"id":"x"}', "missing_type"),
    (b'{"type":7}', "missing_type"),
    (b'{"type":"dance","id":"d"}', "unknown_type"),
    (b'{"type":"ping","id":5}', "bad_json"),
    (b'{"type":"ping","id":"' + b"i" * 65 + b'"}', "bad_json"),
    (b'{"type":"ping","x":"' + b"x" * MAX_LINE + b'"}', "too_long"),
])
def test_decode_errors_carry_the_code_the_board_answers_with(raw, code):
    with pytest.raises(ProtocolError) as err:
        decode_command(raw)
    assert err.value.code == code
    msg = error_message(err.value)
    assert msg["type"] == "error" and msg["error"] == code and msg["message"]


def test_unknown_type_error_keeps_the_command_id():
    with pytest.raises(ProtocolError) as err:
        decode_command(b'{"type":"dance","id":"d-1"}')
    assert error_message(err.value)["id"] == "d-1"


def test_line_buffer_joins_partial_lines_strips_cr_and_drops_oversized():
    buf = LineBuffer()
    assert buf.feed(b'{"type":"pi') == []
    assert buf.feed(b'ng"}\r\n{"a":1}\nrest') == [b'{"type":"ping"}', b'{"a":1}']
    assert buf.feed(b"x" * (MAX_LINE + 10)) == []          # too long already: discarded as it comes
    assert buf.feed(b"tail\nok\n") == [None, b"ok"]         # reported once, then back in sync
    assert buf.feed(b"y" * (MAX_LINE - 1) + b"\n") == [b"y" * (MAX_LINE - 1)]
    assert buf.feed(b"z" * MAX_LINE + b"\n") == [None]


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(1, 50))
def test_line_buffer_never_loses_lines_whatever_the_chunking(lines, chunk):
    lines = [line.replace(b"\n", b"").replace(b"\r", b"") for line in lines]
    stream = b"".join(line + b"\n" for line in lines)
    buf = LineBuffer()
    out = []
    for i in range(0, len(stream), chunk):
        out += buf.feed(stream[i:i + chunk])
    assert out == lines


def test_value_checks_name_the_field_and_refuse_bools():
    assert int_in("brightness", 12, 0, 255) == 12
    with pytest.raises(CommandRefused, match="brightness must be an integer 0..255, got 300"):
        int_in("brightness", 300, 0, 255)
    with pytest.raises(CommandRefused):
        int_in("brightness", True, 0, 255)
    assert parse_color("#FF8800") == (255, 136, 0) and format_color((255, 136, 0)) == "#ff8800"
    for bad in ("ff8800", "#ff88", "#gg0000", 0xFF8800):
        with pytest.raises(CommandRefused, match="color"):
            parse_color(bad)


def test_doc_examples_are_valid_commands():
    """Every host → board example line in docs/serial-protocol.md decodes."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "serial-protocol.md").read_text()
    host_section = doc.split("## Host → board", 1)[1].split("## When the host is away", 1)[0]
    examples = [line for line in host_section.splitlines() if line.startswith('{"type"')]
    assert len(examples) >= 15
    for line in examples:
        decode_command(line.encode())
    board_section = doc.split("## Board → host", 1)[1].split("## Host → board", 1)[0]
    for line in board_section.splitlines():
        if line.startswith('{"type"'):
            msg = json.loads(line)
            assert isinstance(msg["seq"], int) and len(line.encode()) < MAX_LINE
