"""One HTTP request to a network sensor, bounded in time and size, its failures in plain words.

Every endpoint shares the poller's one pooled ``requests.Session``; an ``EndpointClient`` only
knows its endpoint's base URL and timeout. A request either returns the parsed JSON (or nothing,
for an action that answers with an empty body) or raises :class:`EndpointFailure` whose
``reason`` is what a user sees on the devices: ``timeout after 5 s``, ``connection refused``,
``HTTP 500``, ``not JSON``, ``response larger than 1 MiB``.
"""
from __future__ import annotations

import json
import time
from typing import Any

import requests

from shared.connection import is_refused

MAX_BODY_BYTES = 1 << 20
"""A sensor answers in a few hundred bytes; anything past 1 MiB is a misconfigured URL (a web
page, a firmware image) and is cut off without reading the rest."""
CHUNK_BYTES = 8192

# Error codes, on /errors and the event stream (docs/rest-api.md, "HTTP poller").
ENDPOINT_UNREACHABLE = "ENDPOINT_UNREACHABLE"
ENDPOINT_ERROR = "ENDPOINT_ERROR"
BAD_PAYLOAD = "BAD_PAYLOAD"
KEY_MISSING = "KEY_MISSING"

# What went wrong, for commands (a timeout is TIMEOUT, an unreachable device OFFLINE...).
TIMED_OUT, UNREACHABLE, HTTP_STATUS, PAYLOAD = "timeout", "unreachable", "http", "payload"
_CODES = {TIMED_OUT: ENDPOINT_UNREACHABLE, UNREACHABLE: ENDPOINT_UNREACHABLE, HTTP_STATUS: ENDPOINT_ERROR,
          PAYLOAD: BAD_PAYLOAD}


class EndpointFailure(Exception):
    """A request that gave no usable answer. ``kind`` is one of timeout, unreachable, http,
    payload; ``status`` and ``body`` are set when the endpoint answered with an error status."""

    def __init__(self, kind: str, reason: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(reason)
        self.kind, self.reason, self.status, self.body = kind, reason, status, body

    @property
    def code(self) -> str:
        return _CODES[self.kind]

    def device_message(self) -> str | None:
        """The endpoint's own words about an error status, when it gave any."""
        body = self.body
        if isinstance(body, dict):
            for key in ("message", "error", "Command"):
                if isinstance(body.get(key), str):
                    return body[key]
        return None


def seconds(value: float) -> str:
    return f"{value:g} s"


def _connection_failure(exc: requests.RequestException, timeout: float) -> EndpointFailure:
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        return EndpointFailure(TIMED_OUT, f"timeout after {seconds(timeout)}")
    if is_refused(exc):
        return EndpointFailure(UNREACHABLE, "connection refused")
    text = str(exc)
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset by peer" in text:
        return EndpointFailure(UNREACHABLE, "connection closed without an answer")
    if "Name or service not known" in text or "getaddrinfo" in text or "resolve" in text:
        return EndpointFailure(UNREACHABLE, "host name not resolved")
    return EndpointFailure(UNREACHABLE, f"connection failed ({type(exc).__name__})")


class EndpointClient:
    """Requests to one endpoint: ``get_json("/sensor/temperature")``, ``post("/switch/x/turn_on")``."""

    def __init__(self, session: requests.Session, base_url: str, timeout: float,
                 max_bytes: int = MAX_BODY_BYTES) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.requests = 0

    def get_json(self, path: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        return self.request("GET", path, params, timeout)

    def post(self, path: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """A POST action; its JSON answer, or None when the device answers with an empty body."""
        return self.request("POST", path, params, timeout, allow_empty=True)

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                timeout: float | None = None, allow_empty: bool = False) -> Any:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        url = self.base_url + path if path else self.base_url
        self.requests += 1
        try:
            response = self.session.request(method, url, params=params, timeout=(timeout, timeout), stream=True,
                                            headers={"Accept": "application/json"}, allow_redirects=False)
        except requests.RequestException as exc:
            raise _connection_failure(exc, timeout) from None
        try:
            raw = self._read(response, deadline, timeout)
        finally:
            response.close()
        body = self._parse(raw, allow_empty)
        if response.status_code >= 400:
            raise EndpointFailure(HTTP_STATUS, f"HTTP {response.status_code}", response.status_code,
                                  body if body is not _GARBAGE else None)
        if body is _GARBAGE:
            raise EndpointFailure(PAYLOAD, "not JSON")
        return body

    def _read(self, response: requests.Response, deadline: float, timeout: float) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise EndpointFailure(PAYLOAD, f"response larger than {_size(self.max_bytes)} "
                                           f"({_size(int(declared))} announced)")
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                size += len(chunk)
                if size > self.max_bytes:
                    raise EndpointFailure(PAYLOAD, f"response larger than {_size(self.max_bytes)}")
                if time.monotonic() > deadline:  # a device trickling bytes is as good as silent
                    raise EndpointFailure(TIMED_OUT, f"timeout after {seconds(timeout)}")
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise _connection_failure(exc, timeout) from None
        return b"".join(chunks)

    @staticmethod
    def _parse(raw: bytes, allow_empty: bool) -> Any:
        if not raw.strip():
            return None if allow_empty else _GARBAGE
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return _GARBAGE


_GARBAGE = object()


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):g} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):g} KiB"
    return f"{n} bytes"
