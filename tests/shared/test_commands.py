"""The one command envelope (shared/commands.py) that the bridge, the aggregator and every handler
read: a table of what it takes and what it refuses, with which code and field."""
from __future__ import annotations

import json

import pytest

from shared.commands import (
    MAX_ID_LENGTH,
    MAX_PAYLOAD,
    MAX_TIMEOUT_MS,
    STALE_AFTER_S,
    Command,
    CommandError,
    bounded_id,
    decode_payload,
    parse_command,
    peek_id,
)
from shared.jsonio import MAX_DEPTH

NOW = 1_800_000_000.0
NAN, INF = float("nan"), float("inf")

ACCEPTED = [
    # (document, values, cmd_id, timeout_ms)
    ({"values": {"position": 40}}, {"position": 40}, None, None),
    ({"position": 40, "id": "c-1", "timeout": 500}, {"position": 40}, "c-1", 500),  # values without "values"
    ({"id": 17, "values": {}}, {}, "17", None),  # an integer id; empty values are a sensor's "read now"
    ({"id": "i" * MAX_ID_LENGTH, "values": {"a": 1}}, {"a": 1}, "i" * MAX_ID_LENGTH, None),
    ({"values": {"a": 1}, "timeout": 1}, {"a": 1}, None, 1),
    ({"values": {"a": 1}, "timeout": MAX_TIMEOUT_MS}, {"a": 1}, None, MAX_TIMEOUT_MS),
    ({"values": {"a": 1}, "timestamp": NOW - STALE_AFTER_S + 1}, {"a": 1}, None, None),
    ({"values": {"a": 1}, "timestamp": NOW + STALE_AFTER_S - 1}, {"a": 1}, None, None),  # a clock a little ahead
    ({"values": {"a": 1}, "timestamp": (NOW - 5) * 1000}, {"a": 1}, None, None),  # epoch milliseconds
    ({"values": {"a": 1}, "timestamp": "2027-01-15T07:59:50Z"}, {"a": 1}, None, None),  # ISO 8601: NOW - 10 s
    ({"values": {"a": 1}, "timestamp": "2027-01-15T08:59:50+01:00"}, {"a": 1}, None, None),
    ({"values": {"a": 1}, "timestamp": None}, {"a": 1}, None, None),
    ({"values": {"list": [1, 2.5, {"deep": -3}]}}, {"list": [1, 2.5, {"deep": -3}]}, None, None),
]


REFUSED = [
    # (document, code, field)
    ("text", "INVALID_PAYLOAD", None),
    ([1, 2], "INVALID_PAYLOAD", None),
    ({"values": "open"}, "INVALID_PAYLOAD", "values"),
    ({"values": [1]}, "INVALID_PAYLOAD", "values"),
    ({"id": "i" * (MAX_ID_LENGTH + 1), "values": {"a": 1}}, "INVALID_PAYLOAD", "id"),
    ({"id": "", "values": {"a": 1}}, "INVALID_PAYLOAD", "id"),
    ({"id": "two\nlines", "values": {"a": 1}}, "INVALID_PAYLOAD", "id"),  # it would forge a log line
    ({"id": True, "values": {"a": 1}}, "INVALID_PAYLOAD", "id"),
    ({"id": [1], "values": {"a": 1}}, "INVALID_PAYLOAD", "id"),
    ({"id": 10 ** 70, "values": {"a": 1}}, "INVALID_PAYLOAD", "id"),
    ({"values": {"a": 1}, "timeout": 0}, "INVALID_PAYLOAD", "timeout"),
    ({"values": {"a": 1}, "timeout": MAX_TIMEOUT_MS + 1}, "INVALID_PAYLOAD", "timeout"),
    ({"values": {"a": 1}, "timeout": "soon"}, "INVALID_PAYLOAD", "timeout"),
    ({"values": {"a": 1}, "timeout": NAN}, "INVALID_PAYLOAD", "timeout"),
    ({"values": {"a": 1}, "timeout": True}, "INVALID_PAYLOAD", "timeout"),
    ({"values": {"a": 1}, "timestamp": NOW - STALE_AFTER_S - 1}, "STALE_COMMAND", None),
    ({"values": {"a": 1}, "timestamp": -1e300}, "STALE_COMMAND", None),
    ({"values": {"a": 1}, "timestamp": 0}, "STALE_COMMAND", None),
    ({"values": {"a": 1}, "timestamp": NOW + STALE_AFTER_S + 1}, "INVALID_PAYLOAD", "timestamp"),
    ({"values": {"a": 1}, "timestamp": 1e300}, "INVALID_PAYLOAD", "timestamp"),  # would never go stale
    ({"values": {"a": 1}, "timestamp": NAN}, "INVALID_PAYLOAD", "timestamp"),
    ({"values": {"a": 1}, "timestamp": INF}, "INVALID_PAYLOAD", "timestamp"),
    ({"values": {"a": 1}, "timestamp": "yesterday"}, "INVALID_PAYLOAD", "timestamp"),
    ({"values": {"a": 1}, "timestamp": "9999-12-31T23:59:59Z"}, "INVALID_PAYLOAD", "timestamp"),
    ({"values": {"a": 1}, "timestamp": "0001-01-01T00:00:00"}, "INVALID_PAYLOAD", "timestamp"),
    ({"values": {"a": 1}, "timestamp": True}, "INVALID_PAYLOAD", "timestamp"),
    ({"values": {"position": NAN}}, "INVALID_VALUE", "values.position"),
    ({"values": {"position": INF}}, "INVALID_VALUE", "values.position"),
    ({"values": {"position": -INF}}, "INVALID_VALUE", "values.position"),
    ({"position": NAN, "id": "x"}, "INVALID_VALUE", "values.position"),
    ({"values": {"rgb": [1, {"r": NAN}]}}, "INVALID_VALUE", "values.rgb[1].r"),
]


@pytest.mark.parametrize(("doc", "values", "cmd_id", "timeout_ms"), ACCEPTED)
def test_accepted(doc, values, cmd_id, timeout_ms):
    command = parse_command(doc, NOW)
    assert (command.values, command.cmd_id, command.timeout_ms) == (values, cmd_id, timeout_ms)
    assert command.received == NOW


@pytest.mark.parametrize(("doc", "code", "field"), REFUSED)
def test_refused_with_the_code_and_field(doc, code, field):
    with pytest.raises(CommandError) as caught:
        parse_command(doc, NOW)
    error = caught.value
    assert (error.code, error.extra.get("field")) == (code, field)
    assert error.status == 400
    assert error.message and len(error.message) < 300  # a sentence, never the input whole


def test_a_long_bad_value_is_quoted_in_part():
    with pytest.raises(CommandError) as caught:
        parse_command({"id": "x" * 60_000, "values": {"a": 1}}, NOW)
    assert "more characters" in caught.value.message and len(caught.value.message) < 300


DECODED = [
    # (payload, allow_empty, code or the document)
    (b'{"id": "a", "values": {"x": 1}}', False, {"id": "a", "values": {"x": 1}}),
    (b"  ", True, {}),
    (b"", False, "INVALID_PAYLOAD"),
    (b"not json", False, "INVALID_JSON"),
    (b"\xff\xfe", False, "INVALID_JSON"),
    (b"[" * 10_000 + b"]" * 10_000, False, "INVALID_JSON"),  # Python's parser: RecursionError
    (b"[" * 500 + b"]" * 500, False, "INVALID_JSON"),  # parses, but deeper than any command
    (json.dumps({"values": {"a": [[1]] * 3}}).encode(), False, {"values": {"a": [[1]] * 3}}),
    (b"{" * (MAX_PAYLOAD + 1), False, "PAYLOAD_TOO_LARGE"),
    (b'{"values": {"position": NaN}}', False, "parsed"),  # NaN is read, and refused by name later
    (b'{"values": {"position": 1e400}}', False, "parsed"),
]


@pytest.mark.parametrize(("payload", "allow_empty", "expected"), DECODED)
def test_decode_payload(payload, allow_empty, expected):
    if isinstance(expected, str) and expected != "parsed":
        with pytest.raises(CommandError) as caught:
            decode_payload(payload, allow_empty)
        assert caught.value.code == expected and len(caught.value.message) < 300
        assert caught.value.status == (413 if expected == "PAYLOAD_TOO_LARGE" else 400)
    elif expected == "parsed":
        with pytest.raises(CommandError) as caught:
            parse_command(decode_payload(payload, allow_empty), NOW)
        assert caught.value.code == "INVALID_VALUE"
    else:
        assert decode_payload(payload, allow_empty) == expected


def test_nesting_just_within_the_bound_is_fine():
    doc = inner = {}
    for _ in range(MAX_DEPTH - 1):
        inner["x"] = {}
        inner = inner["x"]
    assert decode_payload(json.dumps(doc).encode()) == doc
    inner["x"] = {}
    with pytest.raises(CommandError):
        decode_payload(json.dumps(doc).encode())


@pytest.mark.parametrize(("payload", "expected"), [
    (b'{"id": "c-9", "values": "bad"}', "c-9"),
    (b'{"id": 7}', "7"),
    (b'{"id": "' + b"i" * (MAX_ID_LENGTH + 1) + b'"}', None),  # a bad id is not echoed
    (b'{"id": "a\\u0000b"}', None),
    (b'{"id": "deep", "v": ' + b"[" * 100 + b"]" * 100 + b"}", "deep"),  # too deep to carry out, not to answer
    (b'{"id": "deeper", "v": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", None),  # the parser gives up
    (b"not json", None),
    (b'["c-1"]', None),
])
def test_peek_id_reads_only_a_valid_id(payload, expected):
    assert peek_id(payload) == expected


def test_the_next_hop_gets_the_envelope_without_the_timestamp():
    command = parse_command({"id": "c", "values": {"a": 1}, "timeout": 900, "timestamp": NOW}, NOW)
    assert command.body() == {"values": {"a": 1}, "id": "c", "timeout": 900}
    assert command.body("agg-1") == {"values": {"a": 1}, "id": "agg-1", "timeout": 900}
    assert Command({"a": 1}).body() == {"values": {"a": 1}}
    assert command.timeout_s(3.0) == 0.9 and Command({}).timeout_s(3.0) == 3.0


def test_a_command_error_takes_its_status_from_its_code_unless_told():
    assert CommandError("TIMEOUT", "late").status == 504
    assert CommandError("DEVICE_DISABLED", "off").status == 409
    assert CommandError("SOMETHING_NEW", "?").status == 500
    error = CommandError("INVALID_VALUE", "bad", 422, field="values.position")
    assert error.status == 422 and error.to_dict() == {"error": "INVALID_VALUE", "message": "bad",
                                                         "field": "values.position"}


def test_ids_the_connector_makes_up_stay_within_the_bound_and_distinct():
    short = "g-1.living_led"
    assert bounded_id(short) == short
    base = "g" * MAX_ID_LENGTH
    made = {bounded_id(f"{base}.{device}") for device in ("living_led", "living_window", "x" * 64)}
    assert len(made) == 3 and all(len(i) == MAX_ID_LENGTH and i.startswith("ggg") for i in made)
    assert all(parse_command({"id": i, "values": {}}, NOW).cmd_id == i for i in made)
