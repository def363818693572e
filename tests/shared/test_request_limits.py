"""What a request must be to take a server thread (shared/server.py ``WholeRequestWorker``) and
how many event streams a process serves (shared/sse.py ``StreamSlots``). The flood of them
all against the real aggregator is tests/chaos/test_starvation.py; here each rule on its own."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, request

import shared.sse
from shared.server import HEADER_BYTES_MAX, _Arrival, stream_slots
from shared.sse import EventPublisher, StreamSlots
from shared.web import BODY_BYTES_MAX, install_error_handlers, install_instance_header
from testkit.helpers import free_port, stop_process, wait_for
from tests.shared.test_server import ROOT, SERVICE

LINE_LIMIT = 4094  # gunicorn's limit_request_line


def examine(*chunks: bytes) -> tuple[bool | object, _Arrival]:
    arrival = _Arrival(deadline=0)
    verdict: bool | object = False
    for chunk in chunks:
        arrival.data += chunk
        verdict = arrival.examine(LINE_LIMIT)
    return verdict, arrival


def test_a_request_is_whole_once_its_header_and_announced_body_are_here():
    assert examine(b"GET /health HTTP/1.1\r\nHost: x\r\n")[0] is False
    assert examine(b"GET /health HTTP/1.1\r\nHost: x\r\n", b"\r\n")[0] is True
    head = b"POST /cmd HTTP/1.1\r\nContent-Length: 10\r\n\r\n"
    assert examine(head + b"01234")[0] is False
    assert examine(head + b"01234", b"56789")[0] is True
    assert examine(head + b"0123456789GET / HTTP/1.1\r\n")[0] is True  # a pipelined next one: the parser's
    # A field the parser refuses (two lengths, a sign) needs no body: gunicorn answers at once.
    assert examine(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")[0] is True
    assert examine(b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n")[0] is True
    # A request line already too long goes to the parser, which answers 414.
    assert examine(b"GET /" + b"a" * LINE_LIMIT)[0] is True


def test_what_can_never_be_taken_is_refused_as_soon_as_the_header_says_so():
    verdict, _ = examine(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (BODY_BYTES_MAX + 1))
    assert (verdict.status, verdict.code) == (413, "PAYLOAD_TOO_LARGE") and str(BODY_BYTES_MAX) in verdict.message
    assert examine(b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % BODY_BYTES_MAX)[0] is False
    verdict, _ = examine(b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n")
    assert (verdict.status, verdict.code) == (411, "LENGTH_REQUIRED")
    verdict, _ = examine(b"GET / HTTP/1.1\r\n", b"X: " + b"a" * HEADER_BYTES_MAX)
    assert (verdict.status, verdict.code) == (431, "HEADERS_TOO_LARGE")


def test_a_client_expecting_100_continue_is_told_to_go_on_once():
    _, arrival = examine(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert arrival.expects_continue
    _, arrival = examine(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc")
    assert not arrival.expects_continue  # the body is here already


def test_stream_slots_keep_some_for_the_instances_followers():
    assert stream_slots(64) == (16, 4) and stream_slots(2) == (1, 1)
    slots = StreamSlots()
    assert all(slots.take() for _ in range(100))  # unbounded until configured
    slots = StreamSlots()
    slots.configure(limit=2, reserved=1)
    anyone = [slots.take(), slots.take()]
    assert all(anyone) and slots.take() is None
    own = slots.take(own_follower=True)
    assert own is not None and slots.take(own_follower=True) is None  # the kept one, then anyone's: full
    anyone[0]()
    anyone[0]()  # giving back twice frees one slot, not two
    assert slots.stats() == {"limit": 2, "reserved": 1, "open": 1, "open_reserved": 1, "refused": 2}
    assert slots.take(own_follower=True) is not None and slots.take() is None


def test_events_answer_too_many_streams_in_json(monkeypatch):
    slots = StreamSlots()
    slots.configure(limit=1, reserved=1)
    monkeypatch.setattr(shared.sse, "STREAM_SLOTS", slots)
    app = Flask(__name__)
    install_error_handlers(app)
    install_instance_header(app, "hub_a")
    publisher = EventPublisher(heartbeat_s=0.2, shutdown=shared.sse.Shutdown())
    app.add_url_rule("/events", "events", lambda: publisher.flask_response(request.headers.get("Last-Event-ID")))
    client = app.test_client()
    first = client.get("/events", buffered=False)
    assert first.status_code == 200
    refused = client.get("/events")
    assert refused.status_code == 503 and refused.json["error"] == "TOO_MANY_STREAMS"
    assert refused.headers["Retry-After"] == "5" and refused.headers["X-Instance-Id"] == "hub_a"
    own = client.get("/events", headers={"X-Instance-Id": "hub_a"}, buffered=False)
    assert own.status_code == 200  # the slot kept for the instance's own followers
    assert client.get("/events", headers={"X-Instance-Id": "other_hub"}).status_code == 503
    first.close()  # the stream ends: its slot comes back
    second = client.get("/events", buffered=False)
    assert second.status_code == 200
    second.close()
    own.close()
    publisher.close()


@pytest.fixture
def demo() -> Iterator[tuple[str, int]]:
    """The demo service of test_server.py under gunicorn, with a budget of 300 KB for requests
    still arriving."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), DEMO_ARRIVING_BYTES_MAX=str(300_000))
    proc = subprocess.Popen([sys.executable, "-c", SERVICE, str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(url + "/health", timeout=2), timeout=30, message="the demo serving /health")
        yield url, port
    finally:
        stop_process(proc)


def read_answers(sock: socket.socket, count: int) -> list[bytes]:
    """The status lines of the next ``count`` answers (each with Content-Length)."""
    data, statuses = b"", []
    while len(statuses) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {statuses}"
            data += chunk
            continue
        head = data[:head_end].decode("latin-1")
        length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                       if line.lower().startswith("content-length:")), 0)
        while len(data) < head_end + 4 + length:
            data += sock.recv(65536)
        statuses.append(head.split("\r\n", 1)[0].encode())
        data = data[head_end + 4 + length:]
    return statuses


def test_kept_alive_and_piecemeal_requests_are_served(demo):
    _, port = demo
    post = b'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n'
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answers(sock, 1) == [b"HTTP/1.1 200 OK"]
        sock.sendall(post + b'{"device": 1}')  # the same connection, kept alive
        assert read_answers(sock, 1) == [b"HTTP/1.1 200 OK"]
        for piece in (post[:7], post[7:40], post[40:], b'{"devi', b'ce": 2}'):  # one in pieces
            sock.sendall(piece)
        assert read_answers(sock, 1) == [b"HTTP/1.1 200 OK"]


def test_a_client_that_expects_100_continue_gets_it_before_sending_its_body(demo):
    _, port = demo
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 13\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b'{"device": 3}')
        data = b""
        while b"200 OK" not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk


def test_requests_arriving_beyond_the_memory_budget_are_told_to_retry(demo):
    url, port = demo
    head = b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as first, \
            socket.create_connection(("127.0.0.1", port), timeout=10) as second:
        first.sendall(head + b"x" * 160_000)
        second.sendall(head + b"x" * 160_000)  # 320 KB arriving together: over the 300 KB
        answer = b""
        while chunk := second.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 ") and b'"error":"BUSY"' in answer and b"Retry-After: 1" in answer
    assert requests.get(url + "/health", timeout=5).status_code == 200  # the budget is back
