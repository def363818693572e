"""A device command as every program reads it: the envelope, its limits, its error codes and
the one ``CommandError``.

A command travels MQTT ``cmd`` -> bridge -> aggregator ``POST /device/<id>/cmd`` -> handler
``POST /sensor/<id>/cmd`` (docs/mqtt.md, docs/rest-api.md). Every hop reads the same envelope,
``{"id"?, "timestamp"?, "timeout"? (ms), "values": {...}}``, with :func:`decode_payload` and
:func:`parse_command`, so a command meets the same limits wherever it enters and a bad one gets
the same code and sentence over MQTT as over REST. What the values may be for a device type is
shared/devices.py; this module checks only what every command has.
"""
from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import jsonio
from shared.devices import is_number
from shared.logs import clip, excerpt

# Error codes of a command and their HTTP statuses on REST (docs/rest-api.md, docs/mqtt.md).
INVALID_JSON = "INVALID_JSON"  # not UTF-8 JSON, or nested deeper than jsonio.MAX_DEPTH
INVALID_PAYLOAD = "INVALID_PAYLOAD"  # JSON, but not an envelope: its id, timestamp, timeout or values
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
STALE_COMMAND = "STALE_COMMAND"
INVALID_VALUE = "INVALID_VALUE"  # a value its device does not take, or a number that is not finite
UNSUPPORTED = "UNSUPPORTED"
UNKNOWN_DEVICE = "UNKNOWN_DEVICE"
DEVICE_DISABLED = "DEVICE_DISABLED"
TIMEOUT = "TIMEOUT"
REJECTED = "REJECTED"
OFFLINE = "OFFLINE"
HTTP_STATUS = {INVALID_JSON: 400, INVALID_PAYLOAD: 400, PAYLOAD_TOO_LARGE: 413, STALE_COMMAND: 400,
               INVALID_VALUE: 400, UNSUPPORTED: 400, UNKNOWN_DEVICE: 404, DEVICE_DISABLED: 409,
               TIMEOUT: 504, REJECTED: 409, OFFLINE: 503}

MAX_PAYLOAD = 64 * 1024
"""Bytes; a command is a few dozen. Anything bigger is refused before it is parsed."""
MAX_ID_LENGTH = 64
"""Characters; the serial protocol's bound (docs/serial-protocol.md), since the id travels to the board."""
MAX_TIMEOUT_MS = 60_000
"""A minute: more than a window motor takes for a full move, and a command waiting that long
holds one of the bridge's few command threads; a stop gives waiting commands no longer."""
STALE_AFTER_S = 30.0
"""A command whose timestamp is older is not carried out: a controller that was cut off must not
move a window half a minute late. One stamped further ahead is refused as well: its clock is
wrong, and a timestamp in the future would never go stale."""
ENVELOPE_KEYS = ("id", "timestamp", "timeout")
"""Fields about the command, not values for the device."""


class CommandError(Exception):
    """A command refused or failed: ``code`` one of the codes above (or a device's own),
    ``message`` a sentence, ``extra`` further fields of the JSON answer (``field``, ``known``...).
    ``status`` is the HTTP status of the answer, the code's own unless given."""

    def __init__(self, code: str, message: str, status: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra
        self.status = status or HTTP_STATUS.get(code, 500)

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


def _bad(name: str, message: str) -> CommandError:
    return CommandError(INVALID_PAYLOAD, message, field=name)


@dataclass(frozen=True)
class Command:
    """A command taken apart: the values for the device and what is about the command itself."""

    values: dict[str, Any]
    cmd_id: str | None = None
    timeout_ms: int | float | None = None
    received: float = field(default_factory=time.time)

    def timeout_s(self, default: float) -> float:
        """Seconds to wait for the device: the command's ``timeout``, else ``default``."""
        return default if self.timeout_ms is None else self.timeout_ms / 1000.0

    def body(self, cmd_id: str | None = None) -> dict[str, Any]:
        """The envelope for the next hop (the timestamp was checked here and stays behind)."""
        body: dict[str, Any] = {"values": dict(self.values)}
        if (cmd_id or self.cmd_id) is not None:
            body["id"] = cmd_id or self.cmd_id
        if self.timeout_ms is not None:
            body["timeout"] = self.timeout_ms
        return body


def decode_payload(payload: bytes, allow_empty: bool = False) -> Any:
    """An MQTT payload or a REST body as JSON, or CommandError: ``PAYLOAD_TOO_LARGE``,
    ``INVALID_JSON`` (not UTF-8 JSON, or nested too deep) or, when not ``allow_empty``,
    ``INVALID_PAYLOAD`` for an empty one (which is ``{}`` otherwise)."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(PAYLOAD_TOO_LARGE, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD} bytes")
    if not payload.strip():
        if allow_empty:
            return {}
        raise CommandError(INVALID_PAYLOAD, "empty payload (expected a JSON object)")
    try:
        return jsonio.loads_input(payload)
    except ValueError as exc:
        raise CommandError(INVALID_JSON, f"payload is not UTF-8 JSON ({clip(str(exc), 120)})") from None


def peek_id(payload: bytes) -> str | None:
    """The command id when one can be read and is valid (so even a bad command, one nested too
    deep included, is answered on ``cmd/response``); None otherwise: an id that breaks the rules
    is not echoed anywhere."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        doc = jsonio.loads_input(payload, max_depth=None)  # only the top level is read
        return parse_command_id(doc.get("id")) if isinstance(doc, dict) else None
    except (ValueError, CommandError):
        return None


def parse_command_id(raw: Any) -> str | None:
    """A string or an integer of 1..64 printable characters (it goes into log lines and to the board)."""
    if raw is None:
        return None
    text = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
    if text is None or not 0 < len(text) <= MAX_ID_LENGTH or not text.isprintable():
        raise _bad("id", f"id must be a string or integer of 1..{MAX_ID_LENGTH} printable characters, "
                         f"got {excerpt(raw)}")
    return text


def bounded_id(text: str) -> str:
    """An id the connector makes up (a group member's ``<id>.<device>``, an automation's move),
    kept within MAX_ID_LENGTH: a longer one is cut and ends in a digest of the whole, so two
    such ids still differ."""
    if len(text) <= MAX_ID_LENGTH:
        return text
    digest = hashlib.blake2s(text.encode(), digest_size=4).hexdigest()
    return f"{text[:MAX_ID_LENGTH - len(digest) - 1]}~{digest}"


def parse_timeout_ms(raw: Any) -> int | float | None:
    """Milliseconds 1..MAX_TIMEOUT_MS (the MQTT contract's unit)."""
    if raw is None:
        return None
    if not is_number(raw) or not 1 <= raw <= MAX_TIMEOUT_MS:
        raise _bad("timeout", f"timeout must be milliseconds 1..{MAX_TIMEOUT_MS}, got {excerpt(raw)}")
    return raw


def parse_timestamp(raw: Any, now: float) -> float:
    """ISO 8601 (naive means local time) or epoch seconds, or milliseconds (above 1e11), within
    STALE_AFTER_S of ``now``: older is STALE_COMMAND; ahead, or not a time at all, INVALID_PAYLOAD."""
    expected = f"timestamp must be ISO 8601 or epoch seconds or milliseconds, got {excerpt(raw)}"
    if is_number(raw):
        at = raw / 1000.0 if raw > 1e11 else float(raw)
    elif isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            at = parsed.timestamp() if parsed.tzinfo else parsed.astimezone().timestamp()
        except (ValueError, OverflowError, OSError):  # not ISO 8601, or a year the clock cannot hold
            raise _bad("timestamp", expected) from None
    else:
        raise _bad("timestamp", expected)
    if not math.isfinite(at) or at - now > STALE_AFTER_S:
        raise _bad("timestamp", f"timestamp {excerpt(raw)} is more than {STALE_AFTER_S:.0f} s ahead of this "
                                "connector's clock; is the sender's clock set?")
    if now - at > STALE_AFTER_S:
        age = f"{now - at:.1f}" if now - at < 1e9 else f"{now - at:.3g}"  # 1e300 s has 300 digits
        raise CommandError(STALE_COMMAND, f"command is {age} s old (limit {STALE_AFTER_S:.0f} s); not carried out")
    return at


def command_values(body: Mapping[str, Any]) -> Any:
    """``body["values"]``, or else the body itself minus the envelope's fields (the IoT2MQTT
    contract's rule, handy with curl too)."""
    if "values" in body:
        return body["values"]
    return {k: v for k, v in body.items() if k not in ENVELOPE_KEYS}


def _check_finite(values: Any) -> None:
    """INVALID_VALUE for NaN or an infinity anywhere in ``values`` (Python's JSON reader takes
    NaN, Infinity and 1e400): no device takes one, and no JSON encoder can pass one on."""
    pending: list[tuple[str, Any]] = [("values", values)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise CommandError(INVALID_VALUE, f"{clip(path, 80)} must be a finite number, got {value!r}",
                               field=clip(path, 80))
        if isinstance(value, dict):
            pending.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            pending.extend((f"{path}[{i}]", v) for i, v in enumerate(value))


def parse_command(doc: Any, now: float | None = None) -> Command:
    """A command envelope -> :class:`Command`, or CommandError naming the field that is wrong.

    ``{"values": {...}, "id"?, "timestamp"?, "timeout"?}``; a body without ``values`` is the
    values itself minus ``id``/``timestamp``/``timeout``. The values are checked only to be an
    object of finite numbers; what a device takes is shared/devices.py's to say.
    """
    if not isinstance(doc, dict):
        raise CommandError(INVALID_PAYLOAD, f"expected a JSON object like {{\"values\": {{...}}}}, "
                                            f"got {type(doc).__name__}")
    now = time.time() if now is None else now
    cmd_id = parse_command_id(doc.get("id"))
    if doc.get("timestamp") is not None:
        parse_timestamp(doc["timestamp"], now)
    timeout_ms = parse_timeout_ms(doc.get("timeout"))
    values = command_values(doc)
    if not isinstance(values, dict):
        raise _bad("values", f"values must be an object, got {type(values).__name__}")
    _check_finite(values)
    return Command(values, cmd_id, timeout_ms, now)
