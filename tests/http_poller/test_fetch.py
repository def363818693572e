"""Requests to endpoints: every way an endpoint can fail becomes one short reason, and a body
past the cap is cut off without being read."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from services.http_poller.fetch import (
    BAD_PAYLOAD,
    ENDPOINT_ERROR,
    ENDPOINT_UNREACHABLE,
    EndpointClient,
    EndpointFailure,
)
from testkit.helpers import free_port

from .conftest import sim_post


def client(url: str, timeout: float = 5.0, max_bytes: int = 1 << 20) -> EndpointClient:
    return EndpointClient(requests.Session(), url, timeout, max_bytes)


def failure_of(c: EndpointClient, path: str = "/sensor/temperature") -> EndpointFailure:
    with pytest.raises(EndpointFailure) as caught:
        c.get_json(path)
    return caught.value


def test_a_good_answer_is_parsed(simulator):
    sim = simulator("esphome")
    assert client(sim.url).get_json("/sensor/temperature")["value"] == 21.0


def test_connection_refused(cleanup):
    failure = failure_of(client(f"http://127.0.0.1:{free_port()}"))
    assert (failure.code, failure.reason) == (ENDPOINT_UNREACHABLE, "connection refused")


def test_a_hanging_endpoint_times_out_within_its_timeout(simulator):
    sim = simulator("esphome")
    sim_post(sim, "fault", {"fault": "hang"})
    started = time.monotonic()
    failure = failure_of(client(sim.url, timeout=0.5))
    took = time.monotonic() - started
    assert (failure.code, failure.reason, failure.kind) == (ENDPOINT_UNREACHABLE, "timeout after 0.5 s", "timeout")
    assert 0.4 < took < 3.0


def test_an_error_status_and_garbage(simulator):
    sim = simulator("esphome")
    sim_post(sim, "fault", {"fault": "error", "status": 500})
    failure = failure_of(client(sim.url))
    assert (failure.code, failure.reason, failure.status) == (ENDPOINT_ERROR, "HTTP 500", 500)
    sim_post(sim, "fault", {"fault": "garbage"})
    failure = failure_of(client(sim.url))
    assert (failure.code, failure.reason) == (BAD_PAYLOAD, "not JSON")


def test_an_endless_body_is_cut_at_the_cap(simulator):
    sim = simulator("json")
    sim_post(sim, "fault", {"fault": "huge"})
    started = time.monotonic()
    failure = failure_of(client(sim.url, max_bytes=64 * 1024), "")
    assert (failure.code, failure.reason) == (BAD_PAYLOAD, "response larger than 64 KiB")
    assert time.monotonic() - started < 5


class _Announced(BaseHTTPRequestHandler):
    """Announces a 50 MiB body and sends a few bytes: refused on the header alone."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(50 << 20))
        self.end_headers()
        self.wfile.write(b"[1,2,3")

    def log_message(self, *args) -> None:
        pass


def test_an_announced_oversized_body_is_refused_before_reading(cleanup):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Announced)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cleanup.add(server, lambda: (server.shutdown(), server.server_close()))
    failure = failure_of(client(f"http://127.0.0.1:{server.server_address[1]}"), "/")
    assert failure.reason == "response larger than 1 MiB (50 MiB announced)"


def test_a_server_that_closes_without_answering(cleanup):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    cleanup.add(listener, listener.close)

    def accept_and_close() -> None:
        for _ in range(2):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(1024)
            conn.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    failure = failure_of(client(f"http://127.0.0.1:{listener.getsockname()[1]}"), "/")
    assert (failure.code, failure.reason) == (ENDPOINT_UNREACHABLE, "connection closed without an answer")
