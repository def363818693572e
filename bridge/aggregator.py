"""The bridge's only view of the rest of the connector: the state aggregator's REST API.

Only this instance's aggregator counts: an answer without our ``X-Instance-Id`` (another
instance's aggregator on the configured port) is treated as no answer (shared/identity.py).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests

from shared.api_token import ApiToken
from shared.identity import ForeignInstance, check_instance


@dataclass
class CommandOutcome:
    """What the aggregator answered: ``ok`` with its JSON, or an error code and message."""

    ok: bool
    body: dict[str, Any]
    error: str | None = None
    message: str | None = None
    http_status: int | None = None


class AggregatorUnavailable(Exception):
    """The aggregator did not answer (refused, timed out, not JSON), or what answered is another
    instance's (``foreign``; the message says whose)."""

    def __init__(self, message: str, foreign: bool = False) -> None:
        super().__init__(message)
        self.foreign = foreign


class AggregatorClient:
    def __init__(self, base_url: str, instance_id: str, timeout: float = 5.0,
                 api_token: ApiToken | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.instance_id = instance_id
        self.timeout = timeout
        self._auth = api_token.header() if api_token is not None else {}  # commands carry it
        self._local = threading.local()  # a requests.Session per thread: sessions are not thread-safe

    @property
    def events_url(self) -> str:
        return f"{self.base_url}/events"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _get(self, path: str) -> Any:
        try:
            response = self._session().get(self.base_url + path, timeout=self.timeout)
            check_instance(self.base_url, response.headers, self.instance_id)
            response.raise_for_status()
            return response.json()
        except ForeignInstance as exc:
            raise AggregatorUnavailable(exc.reason, foreign=True) from exc
        except (requests.RequestException, ValueError) as exc:
            raise AggregatorUnavailable(f"GET {path}: {exc}") from exc

    def devices(self) -> list[dict[str, Any]]:
        body = self._get("/devices?include=state")
        devices = body.get("devices", body) if isinstance(body, dict) else body
        if not isinstance(devices, list):
            raise AggregatorUnavailable("GET /devices: not a list of devices")
        return devices

    def command(self, kind: str, target: str, values: dict[str, Any], cmd_id: str | None,
                timeout_ms: int | None) -> CommandOutcome:
        """POST /device/<id>/cmd or /group/<id>/cmd; never raises for an answered error."""
        body: dict[str, Any] = {"values": values}
        if cmd_id is not None:
            body["id"] = cmd_id
        if timeout_ms is not None:
            body["timeout"] = timeout_ms
        wait = self.timeout + (timeout_ms or 0) / 1000.0
        try:
            response = self._session().post(f"{self.base_url}/{kind}/{target}/cmd", json=body, timeout=wait,
                                            headers=self._auth)
        except requests.Timeout:
            return CommandOutcome(False, {}, "TIMEOUT", f"the aggregator did not answer within {wait:.1f} s")
        except requests.exceptions.InvalidJSONError:  # the command's fault, not the aggregator's
            return CommandOutcome(False, {}, "INVALID_VALUE", "the command's values cannot be sent as JSON")
        except requests.RequestException as exc:
            return CommandOutcome(False, {}, "UNAVAILABLE", f"the aggregator is unreachable ({type(exc).__name__})")
        try:
            check_instance(self.base_url, response.headers, self.instance_id)
        except ForeignInstance as exc:
            return CommandOutcome(False, {}, "UNAVAILABLE", exc.reason)
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {"result": data}
        if response.ok and data.get("status", "success") != "error":
            return CommandOutcome(True, data, http_status=response.status_code)
        return CommandOutcome(False, data, str(data.get("error") or f"HTTP_{response.status_code}"),
                              str(data.get("message") or response.reason), response.status_code)
