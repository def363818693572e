"""Board lines: framing and validation (docs/serial-protocol.md, "Framing" and "Board -> host").

Pure functions and one small stateful splitter, no I/O. ``parse_line`` never raises: every
byte string is either a ``Message`` the rest of the service can trust (types checked, numbers
finite and in range, text valid UTF-8) or a ``Rejection`` naming the reason it is counted under.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from shared.devices import board_fields

MAX_LINE = 1024
"""Bytes per line including the newline, both directions."""
MAX_ID = 64
SEQ_LIMIT = 1 << 30
PROTOCOL_VERSION = 1

# Rejection reasons (the keys of the per-board ``rejected`` counters).
OVERSIZE = "oversize"
EMPTY = "empty"
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
NOT_OBJECT = "not_object"
MISSING_TYPE = "missing_type"
UNKNOWN_TYPE = "unknown_type"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
NON_FINITE = "non_finite"
OUT_OF_RANGE = "out_of_range"
REASONS = (OVERSIZE, EMPTY, INVALID_UTF8, INVALID_JSON, NOT_OBJECT, MISSING_TYPE, UNKNOWN_TYPE,
           MISSING_FIELD, WRONG_TYPE, NON_FINITE, OUT_OF_RANGE)


@dataclass(frozen=True)
class Message:
    """A valid board line. ``fields`` holds only the known fields of its type, already checked."""

    type: str
    seq: int
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str | None:
        return self.fields.get("id")

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


@dataclass(frozen=True)
class Rejection:
    """A line that was dropped, and why (``reason`` is one of ``REASONS``)."""

    reason: str
    detail: str
    sample: bytes = b""


class LineSplitter:
    """Bytes in, complete lines out; an unfinished line never grows beyond ``MAX_LINE``.

    ``feed`` returns the complete lines (without ``\\n`` and a trailing ``\\r``) and, for each
    line that was too long, a ``Rejection(OVERSIZE)``: the excess is discarded as it arrives,
    so a megabyte without a newline costs at most ``MAX_LINE`` bytes of memory.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = 0  # bytes dropped of the current oversize line (0 = not discarding)

    def reset(self) -> None:
        """Forget an unfinished line (the port was reopened: its start is gone)."""
        self._buffer.clear()
        self._discarding = 0

    def feed(self, chunk: bytes) -> list[bytes | Rejection]:
        out: list[bytes | Rejection] = []
        start = 0
        limit = self.max_line - 1  # content bytes allowed before the newline
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            if self._discarding:
                self._discarding += len(piece)
            elif len(self._buffer) + len(piece) > limit:
                self._discarding = len(self._buffer) + len(piece)
                self._buffer.clear()
            else:
                self._buffer += piece
            if end < 0:
                break
            if self._discarding:
                out.append(Rejection(OVERSIZE, f"line of {self._discarding + 1} bytes exceeds {self.max_line}"))
                self._discarding = 0
            else:
                line = bytes(self._buffer)
                out.append(line[:-1] if line.endswith(b"\r") else line)
                self._buffer.clear()
            start = end + 1
        return out


# --------------------------------------------------------------------------- field checks


class _Invalid(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf
        raise _Invalid(NON_FINITE, f"number {text[:20]} is not finite")
    return value


def _reject_constant(name: str) -> Any:
    raise _Invalid(NON_FINITE, f"{name} is not a number")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")  # lone surrogates (from \\ud800 escapes) are not text
    except UnicodeEncodeError:
        return False
    return True


def _plain_json(value: Any) -> bool:
    """Nested data we pass on (event data, ack results) must re-encode as UTF-8 JSON."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError, TypeError):
        return False
    return True


# A field spec: (kind, low, high). kind: "number", "int", "bool", "text", "dict", "list".
_Spec = tuple[str, float | None, float | None]


def _check(msg: dict[str, Any], name: str, spec: _Spec, required: bool, nullable: bool,
           out: dict[str, Any]) -> None:
    if name not in msg:
        if required:
            raise _Invalid(MISSING_FIELD, f"{name!r} is missing")
        return
    value = msg[name]
    if value is None:
        if nullable:
            out[name] = None
            return
        raise _Invalid(WRONG_TYPE, f"{name!r} must not be null")
    kind, low, high = spec
    if kind in ("number", "int"):
        if not _is_number(value) or (kind == "int" and not isinstance(value, int)):
            raise _Invalid(WRONG_TYPE, f"{name!r} must be {'an integer' if kind == 'int' else 'a number'}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise _Invalid(OUT_OF_RANGE, f"{name!r} {value} is outside {low}..{high}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _Invalid(WRONG_TYPE, f"{name!r} must be true or false")
    elif kind == "text":
        if not _text(value) or (high is not None and len(value) > high):
            raise _Invalid(WRONG_TYPE, f"{name!r} must be a string" + (f" of at most {high:.0f}" if high else ""))
    elif kind == "dict":
        if not isinstance(value, dict) or not _plain_json(value):
            raise _Invalid(WRONG_TYPE, f"{name!r} must be an object")
    elif kind == "list":
        if not isinstance(value, list) or not all(_text(v) for v in value):
            raise _Invalid(WRONG_TYPE, f"{name!r} must be a list of strings")
    out[name] = value


NUMBER = ("number", None, None)
UPTIME = ("number", 0, None)
INT = ("int", None, None)
BOOL = ("bool", None, None)
TEXT = ("text", None, 200)
DICT = ("dict", None, None)
PERCENT = ("int", 0, 100)

# Plausible sensor ranges: a reading outside is a broken sensor or a corrupted line, not weather.
# Each field, its kind and range are the registry's (shared/devices.py, ``SensorField``).
SENSOR_FIELDS: dict[str, _Spec] = {name: (prop.board.kind, prop.board.low, prop.board.high)  # type: ignore[union-attr]
                                   for name, (_, prop) in board_fields().items()}

# type -> (required fields, optional fields); sensor readings are handled apart (nullable).
_SCHEMAS: dict[str, tuple[dict[str, _Spec], dict[str, _Spec]]] = {
    "hello": ({"board_id": TEXT}, {"fw": TEXT, "protocol": ("int", 0, None), "caps": ("list", None, None),
                                   "interval_ms": ("int", 1, None), "reset_cause": TEXT, "uptime_s": UPTIME,
                                   "led": DICT}),
    "sensor": ({}, {"uptime_s": UPTIME, "ts": ("number", 0, None)}),
    "event": ({"event": TEXT}, {"uptime_s": UPTIME, "data": DICT}),
    "window": ({"position": PERCENT}, {"target": PERCENT, "moving": BOOL, "stopped": TEXT}),
    "status": ({}, {"uptime_s": UPTIME, "free_mem": ("int", 0, None), "sensor_errors": DICT,
                    "interval_ms": ("int", 1, None), "deep_sleep": BOOL, "led": DICT}),
    "alert": ({"alert": TEXT, "active": BOOL}, {"value": NUMBER, "threshold": NUMBER, "sensor": TEXT,
                                                "message": TEXT}),
    "ack": ({"id": ("text", None, MAX_ID), "ok": BOOL}, {"error": ("text", None, 1000), "result": DICT}),
    "error": ({"error": TEXT}, {"message": ("text", None, 1000)}),
}
MESSAGE_TYPES = tuple(_SCHEMAS)


def _validate(msg: dict[str, Any]) -> Message:
    kind = msg.get("type")
    if not _text(kind):
        raise _Invalid(MISSING_TYPE, 'no string "type"')
    if kind not in _SCHEMAS:
        raise _Invalid(UNKNOWN_TYPE, f"unknown message type {kind[:40]!r}")
    seq = msg.get("seq")
    if seq is None:
        raise _Invalid(MISSING_FIELD, "'seq' is missing")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise _Invalid(WRONG_TYPE, "'seq' must be an integer")
    if not 0 <= seq < SEQ_LIMIT:
        raise _Invalid(OUT_OF_RANGE, f"'seq' {seq} is outside 0..{SEQ_LIMIT - 1}")
    fields: dict[str, Any] = {}
    required, optional = _SCHEMAS[kind]
    for name, spec in required.items():
        _check(msg, name, spec, True, False, fields)
    for name, spec in optional.items():
        _check(msg, name, spec, False, False, fields)
    if "id" not in required:
        _check(msg, "id", ("text", None, MAX_ID), False, False, fields)
    if kind == "sensor":
        for name, spec in SENSOR_FIELDS.items():
            _check(msg, name, spec, False, True, fields)  # null = the sensor failed this round
    elif kind == "status" and "rssi" in msg:
        _check(msg, "rssi", ("number", -150, 0), False, True, fields)
    return Message(kind, seq, fields)


def _decoder() -> json.JSONDecoder:
    # Built once: json.loads with hooks builds a new decoder per call (5 % of the handler's CPU).
    return json.JSONDecoder(parse_float=_finite_float, parse_constant=_reject_constant)


_DECODER = _decoder()


def parse_line(line: bytes) -> Message | Rejection:
    """One line (without its newline) -> a valid ``Message`` or a ``Rejection``. Never raises."""
    sample = line[:80]
    if len(line) + 1 > MAX_LINE:
        return Rejection(OVERSIZE, f"line of {len(line) + 1} bytes exceeds {MAX_LINE}", sample)
    if not line.strip():
        return Rejection(EMPTY, "empty line", sample)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(INVALID_UTF8, f"not UTF-8 at byte {exc.start}", sample)
    try:
        msg = _DECODER.decode(text)
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail, sample)
    except (ValueError, RecursionError) as exc:
        return Rejection(INVALID_JSON, f"invalid JSON: {str(exc)[:80]}", sample)
    if not isinstance(msg, dict):
        return Rejection(NOT_OBJECT, f"a line must be a JSON object, not {type(msg).__name__}", sample)
    try:
        return _validate(msg)
    except _Invalid as exc:
        return Rejection(exc.reason, exc.detail, sample)
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. a float too big to compare
        return Rejection(WRONG_TYPE, str(exc)[:80], sample)


def encode_command(command: dict[str, Any]) -> bytes:
    """A host -> board line. Raises ``ValueError`` when it would exceed ``MAX_LINE``."""
    line = (json.dumps(command, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n").encode()
    if len(line) > MAX_LINE:
        raise ValueError(f"command of {len(line)} bytes exceeds the {MAX_LINE}-byte line limit")
    return line
