"""One client per handler service (serial_handler, http_poller, ml_inference — all alike).

A :class:`HandlerClient` speaks the handler API of docs/architecture.md: pulls (``/sensors``,
``/sensor/<id>``), commands, health, errors — and follows the handler's ``/events`` stream.
It decides only what the handler's condition is and tells its :class:`HandlerListener`:

* stream connected, or a gap in it  -> pull ``GET /sensors`` and hand the views over (resync);
* stream lost -> probe ``/health``: the devices go offline only when the handler is really down
  (``service not running`` when the connection is refused); a handler that still answers keeps
  its devices, and the follower reconnects and resyncs by itself.
* stream not connected at all (the handler died before the follower ever got through) -> a
  watchdog probes ``/health`` every ``watch_interval`` until either the stream is up or the
  handler is known to be down: the follower reports only transitions, so it would say nothing.

Every answer must carry this instance's ``X-Instance-Id`` (shared/identity.py): a service of
another instance on the configured port is treated as unreachable, its sentence as the reason.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

from shared.api_token import ApiToken
from shared.connection import is_refused
from shared.identity import ForeignInstance, check_instance
from shared.sse import Event, EventFollower

from .registry import SERVICE_NOT_RUNNING

log = logging.getLogger(__name__)

NOT_RESPONDING = "service not responding"
CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 5.0
COMMAND_MARGIN_S = 2.0
"""Time given to a handler beyond the command's own timeout, so the handler's answer (a
TIMEOUT error with its reason) arrives before we give up on the HTTP request."""
DEFAULT_COMMAND_TIMEOUT_S = 10.0


class HandlerUnavailable(Exception):
    """The handler could not be reached; ``reason`` is what a user sees on its devices."""

    def __init__(self, service: str, reason: str, detail: str = "", timed_out: bool = False) -> None:
        super().__init__(f"{service}: {reason}" + (f" ({detail})" if detail else ""))
        self.service = service
        self.reason = reason
        self.detail = detail
        self.timed_out = timed_out


class HandlerReplyError(Exception):
    """The handler answered with an error status: ``status`` and its JSON ``body``."""

    def __init__(self, service: str, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{service}: HTTP {status} {body.get('error', '')}".strip())
        self.service = service
        self.status = status
        self.body = body


class HandlerListener(Protocol):
    def on_handler_event(self, service: str, event: Event) -> None: ...
    def on_handler_sync(self, service: str, views: list[dict[str, Any]]) -> None: ...
    def on_handler_down(self, service: str, reason: str) -> None: ...


class HandlerClient:
    """The aggregator's link to one handler service."""

    def __init__(self, service: str, url: str, listener: HandlerListener, instance_id: str,
                 backoff: tuple[float, float] = (0.1, 2.0), read_timeout: float = 15.0,
                 watch_interval: float = 1.0, last_event_id: str | None = None) -> None:
        """``last_event_id``: where a previous run left the handler's stream (the first
        connection resumes there, and the handler replays what happened since)."""
        self.service = service
        self.url = url.rstrip("/")
        self.instance_id = instance_id
        self._listener = listener
        self._session = requests.Session()
        # Group commands fan out concurrently: allow as many pooled connections as threads.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self._session.mount("http://", adapter)
        self._follower = EventFollower(f"{self.url}/events", on_event=self._on_event,
                                       on_gap=self._on_gap, on_state=self._on_stream,
                                       backoff=backoff, read_timeout=read_timeout,
                                       connect_timeout=CONNECT_TIMEOUT_S, name=service,
                                       instance_id=instance_id, last_event_id=last_event_id)
        self._starter: threading.Thread | None = None
        self._watch_interval = watch_interval
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # Held while availability is decided (a resync, a "down"), so a watchdog verdict taken
        # before a reconnect can never overwrite the resync that followed it.
        self._verdict = threading.RLock()
        self._generation = 0
        self.down_reason: str | None = None
        self.last_sync: float | None = None
        self.syncs = 0

    # -- lifecycle

    def start(self) -> None:
        """Probe once (so an absent service shows up at once), then follow the stream."""
        self._starter = threading.Thread(target=self._start, name=f"watch {self.service}", daemon=True)
        self._starter.start()

    def _start(self) -> None:
        try:
            self.resync()
        except HandlerUnavailable as exc:
            self._down(exc.reason)
        except HandlerReplyError as exc:
            log.warning("%s answered GET /sensors with HTTP %s", self.service, exc.status)
        if self._stopping.is_set():  # stopped during the first pull: start nothing more
            return
        self._follower.start()
        self._watch()

    def _watch(self) -> None:
        """While the stream is not connected, probe: a handler that went away before the
        follower ever connected is noticed, and the reason converges on the truth (a
        process being killed can look "not responding" for a moment, then "not running")."""
        while not self._stopping.wait(self._watch_interval):
            if self._follower.connected:
                continue
            generation = self._generation
            health = self.health()
            if health["status"] != "down" or health["reason"] == self.down_reason:
                continue
            with self._verdict:
                if self._generation == generation and not self._follower.connected:
                    self._down(health["reason"])

    def stop(self) -> None:
        self._stopping.set()
        self._follower.stop()
        if self._starter is not None:
            self._starter.join(5)
        self._session.close()

    def authorize(self, token: ApiToken | None) -> HandlerClient:
        """Send the instance's API token with every request: commands and other POSTs need it."""
        if token is not None:
            self._session.headers.update(token.header())
        return self

    @property
    def stream_connected(self) -> bool:
        return self._follower.connected

    def stream_stats(self) -> dict[str, Any]:
        f = self._follower
        return {"connected": f.connected, "connects": f.connects, "gaps": f.gaps,
                "events": f.events, "last_event_id": f.last_event_id}

    # -- the handler API

    def _request(self, method: str, path: str, timeout: tuple[float, float] | None = None,
                 **kwargs: Any) -> requests.Response:
        """One request. A GET whose connection dropped under it (neither refused nor timed
        out) is sent once more: that is a pooled keep-alive connection the handler closed a
        moment ago (it restarted its streams), not a handler that is down. An answer from
        another instance's service is no answer (HandlerUnavailable with the reason why)."""
        attempts = 2 if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._session.request(method, f"{self.url}{path}",
                                                 timeout=timeout or (CONNECT_TIMEOUT_S, READ_TIMEOUT_S), **kwargs)
            except requests.Timeout as exc:
                raise HandlerUnavailable(self.service, NOT_RESPONDING, str(exc)[:200], timed_out=True) from exc
            except requests.RequestException as exc:
                refused = is_refused(exc)
                if refused or attempt == attempts:
                    reason = SERVICE_NOT_RUNNING if refused else NOT_RESPONDING
                    raise HandlerUnavailable(self.service, reason, str(exc)[:200]) from exc
                log.debug("%s %s%s: %s; trying once more", method, self.service, path, exc)
                continue
            try:
                check_instance(self.url, response.headers, self.instance_id)
            except ForeignInstance as exc:
                response.close()
                raise HandlerUnavailable(self.service, exc.reason) from exc
            return response
        raise AssertionError("unreachable")

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = {"error": "BAD_REPLY", "message": response.text[:200]}
        if not isinstance(body, dict):
            body = {"value": body}
        if response.status_code >= 400:
            raise HandlerReplyError(self.service, response.status_code, body)
        return body

    def sensors(self) -> list[dict[str, Any]]:
        views = self._json(self._request("GET", "/sensors")).get("sensors", [])
        return [v for v in views if isinstance(v, dict) and "device_id" in v]

    def sensor(self, device_id: str, fresh: bool = False) -> dict[str, Any]:
        params = {"fresh": "1"} if fresh else None
        return self._json(self._request("GET", f"/sensor/{device_id}", params=params))

    def command(self, device_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST the command; returns the handler's status and JSON body, whatever they are."""
        timeout_ms = body.get("timeout")
        read = (timeout_ms / 1000.0 if timeout_ms else DEFAULT_COMMAND_TIMEOUT_S) + COMMAND_MARGIN_S
        response = self._request("POST", f"/sensor/{device_id}/cmd", json=body,
                                 timeout=(CONNECT_TIMEOUT_S, read))
        try:
            return response.status_code, self._json(response)
        except HandlerReplyError as exc:
            return exc.status, exc.body

    def post(self, path: str, body: dict[str, Any], timeout: float = READ_TIMEOUT_S) -> dict[str, Any]:
        """POST to an endpoint of this handler's own (the window automation asks ml_inference);
        the JSON answer, or HandlerUnavailable / HandlerReplyError."""
        return self._json(self._request("POST", path, json=body, timeout=(CONNECT_TIMEOUT_S, timeout)))

    def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """``{"status": "ok"|"degraded"|"down", "reason"?, "detail"?}`` — never raises."""
        try:
            response = self._request("GET", "/health", timeout=(CONNECT_TIMEOUT_S, timeout))
        except HandlerUnavailable as exc:
            return {"status": "down", "reason": exc.reason}
        try:
            body = response.json()
        except ValueError:
            body = {}
        status = "ok" if response.status_code == 200 else "degraded"
        return {"status": status, "http_status": response.status_code, "detail": body}

    def get(self, path: str) -> dict[str, Any]:
        """GET an endpoint of this handler's own (``/boards``, ``/endpoints``): its JSON answer,
        or HandlerUnavailable / HandlerReplyError."""
        return self._json(self._request("GET", path))

    def errors(self) -> list[dict[str, Any]]:
        return list(self._json(self._request("GET", "/errors")).get("errors", []))

    # -- the stream

    def resync(self) -> int:
        """Pull every view and hand it to the listener; returns how many views."""
        views = self.sensors()
        with self._verdict:
            with self._lock:
                self.down_reason = None
                self.last_sync = time.time()
                self.syncs += 1
                self._generation += 1
            self._listener.on_handler_sync(self.service, views)
        return len(views)

    def _down(self, reason: str) -> None:
        with self._verdict:
            with self._lock:
                first = self.down_reason != reason
                self.down_reason = reason
            if first:
                log.warning("%s is down (%s): its devices are unavailable", self.service, reason)
            self._listener.on_handler_down(self.service, reason)

    def _on_event(self, event: Event) -> None:
        self._listener.on_handler_event(self.service, event)

    def _on_gap(self, reason: str) -> None:
        self._resync_or_down(f"gap: {reason}")

    def _on_stream(self, connected: bool) -> None:
        if connected:
            self._resync_or_down("stream connected")
            return
        # The stream broke. Only a handler that does not answer at all takes its devices down;
        # one that answers is restarting its stream or briefly busy, and the follower is already
        # on its way back (it resyncs on connect).
        health = self.health()
        if health["status"] == "down":
            self._down(health["reason"])

    def _resync_or_down(self, why: str) -> None:
        try:
            count = self.resync()
            log.info("%s: resynchronised %d devices (%s)", self.service, count, why)
        except HandlerUnavailable as exc:
            self._down(exc.reason)
        except HandlerReplyError as exc:
            log.warning("%s: resync after %s failed: HTTP %s", self.service, why, exc.status)
