"""JSON on the hot paths: REST answers, event streams between the services, MQTT payloads.

orjson encodes and decodes several times faster than the standard library, which matters when
every reading is encoded and decoded four times on its way to MQTT. What orjson refuses to
encode (integers beyond 64 bits, say) falls back to the standard library, so nothing that was
encodable before fails now. NaN and infinities become ``null``: what a JSON consumer can parse.
Input from outside the connector (MQTT commands, config files, serial lines) keeps the standard
library's parser and its own checks.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON; datetimes as ISO 8601, other values JSON has no type for as ``str(value)``."""
    try:
        return orjson.dumps(obj, default=str, option=_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def dumps(obj: Any) -> str:
    return dumps_bytes(obj).decode("utf-8")


def loads(data: str | bytes) -> Any:
    """Parse JSON; a malformed document raises ``ValueError`` (``orjson.JSONDecodeError``)."""
    return orjson.loads(data)
