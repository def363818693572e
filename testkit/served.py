"""A handler service's Flask app served on loopback in the test process, with a follower that
records everything its ``/events`` stream says (the tests of every handler service use it)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask

from shared.api_token import ApiToken
from shared.server import run_in_thread
from shared.sse import Event, EventFollower
from testkit.helpers import header_of, wait_for


class ServedService:
    """``domain`` is the service's domain object (started after the stream is followed, so no
    event is missed); ``app`` its Flask app."""

    def __init__(self, app: Flask, domain: Any, token: ApiToken | None = None) -> None:
        self.domain = domain
        self.auth = header_of(token)  # the instance's API token: post() sends it
        self.server = run_in_thread(app)
        self.url = self.server.url
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self.follower = EventFollower(self.url + "/events", self._record, read_timeout=10).start()
        wait_for(lambda: self.follower.connected, 10, message="the /events stream")
        domain.start()

    def _record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        kwargs["headers"] = {**self.auth, **kwargs.get("headers", {})}
        return requests.post(self.url + path, json=body, timeout=30, **kwargs)

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def events_since(self, start: int, kind: str | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self.events[start:] if kind is None or e.kind == kind]

    def wait_event(self, predicate: Callable[[Event], bool], timeout: float = 15.0, start: int = 0,
                   message: str = "event") -> Event:
        def found() -> Event | None:
            with self._lock:
                return next((e for e in self.events[start:] if predicate(e)), None)
        return wait_for(found, timeout, message=message)

    def stop(self) -> None:
        self.follower.stop()
        self.server.stop()
        self.domain.stop()
