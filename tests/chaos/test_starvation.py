"""Starvation of a service (docs/reliability.md, row "starvation"): clients that hold the
server's threads, or try to. The real aggregator under gunicorn, in its own process as in
production, in front of a scripted serial handler (testkit/scripted_handler.py).

200 connections sent half a header, 80 clients opened ``/events``: every one of the 64 threads
was taken, ``/devices`` failed 6 of 6 and the bridge's commands timed out until they left. Now
a request reaches a thread only once it has arrived whole, and the event streams are bounded
with slots kept for the instance's own followers (shared/server.py, shared/sse.py): all of that
at once must leave /health, /devices, a command and the bridge's stream served as usual, the
extra streams refused with a JSON 503, the half-sent requests answered 408 and cut within
``REQUEST_READ_TIMEOUT_S``, and the log with a line or two about it all.
"""
from __future__ import annotations

import json
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from shared.server import DEFAULT_THREADS, REQUEST_READ_TIMEOUT_S, stream_slots
from shared.sse import EventFollower
from shared.web import BODY_BYTES_MAX
from testkit.helpers import authorization, stop_process, wait_for
from testkit.instance_dir import service_addresses, write_instance
from testkit.scripted_handler import EXAMPLE_INSTANCE_ID, ScriptedHandler
from tests.state_aggregator.conftest import SERIAL_DEVICES

ROOT = Path(__file__).resolve().parents[2]
HALF_HEADERS = 200
TRICKLED_BODIES = 20
SILENT = 5
STREAMS = 80
BRIDGE_TIMEOUT_S = 5.0  # what the bridge gives the aggregator to answer a pull (bridge/aggregator.py)
CUT_SLACK_S = 2.0  # the worker checks deadlines on every turn of its loop, at least once a second


@dataclass
class Served:
    url: str
    port: int
    handler: ScriptedHandler
    log: Path
    data_dir: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    services = service_addresses()
    handler = ScriptedHandler(SERIAL_DEVICES, services["serial_handler"]["port"]).start()
    port = services["state_aggregator"]["port"]
    log = tmp_path / "state_aggregator.log"
    with log.open("w") as output:
        proc = subprocess.Popen([sys.executable, "-m", "services.state_aggregator"], cwd=ROOT,
                                env=write_instance(tmp_path, services=services), stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(url + "/health", timeout=2).status_code == 200, 60, interval=0.05,
                 message="the aggregator serving /health")
        yield Served(url, port, handler, log, tmp_path / "data")
    finally:
        stop_process(proc)
        handler.stop()
        handler.publisher.close()


def connect(port: int, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if first:
        sock.sendall(first)
    return sock


def raw_answer(port: int, request: bytes) -> tuple[int, dict[str, str], dict]:
    """Send ``request`` as it is; the status, headers and JSON body of the answer."""
    with connect(port, request) as sock:
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def wait_until_cut(sockets: list[socket.socket], timeout: float) -> dict[socket.socket, tuple[float, bytes]]:
    """When the server closed each socket, and what it said before (waits on the sockets)."""
    ends: dict[socket.socket, tuple[float, bytes]] = {}
    said = {sock: b"" for sock in sockets}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while len(ends) < len(sockets) and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                sock = key.fileobj
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    said[sock] += chunk
                    continue
                ends[sock] = (time.monotonic(), said[sock])
                selector.unregister(sock)
    return ends


def stream_status(url: str) -> int:
    with requests.get(url + "/events", stream=True, timeout=BRIDGE_TIMEOUT_S) as response:
        return response.status_code


def trickle(sockets: list[socket.socket], stop: threading.Event) -> None:
    """A byte of body every 0.3 s on each socket, for as long as the server takes them."""
    while not stop.is_set():
        for sock in sockets:
            try:
                sock.send(b"x")
            except OSError:
                pass  # cut: the point
        stop.wait(0.3)  # pacing the trickle, not synchronising with anything


def test_half_sent_requests_and_a_flood_of_streams_starve_nothing(served: Served):
    url, port = served.url, served.port
    general, _reserved = stream_slots(DEFAULT_THREADS)
    stop_trickle = threading.Event()
    opened: list[socket.socket] = []
    streams: list[requests.Response] = []
    follower = EventFollower(url + "/events", on_event=lambda event: None, instance_id=EXAMPLE_INSTANCE_ID,
                             backoff=(0.05, 0.5), name="the bridge's stream")
    try:
        # 80 onlookers on /events: the bound takes 16, the others are told so at once.
        refused = []
        for _ in range(STREAMS):
            response = requests.get(url + "/events", stream=True, timeout=BRIDGE_TIMEOUT_S)
            (streams if response.status_code == 200 else refused).append(response)
        assert len(streams) == general and len(refused) == STREAMS - general
        for response in refused:
            assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
            assert response.json()["error"] == "TOO_MANY_STREAMS" and str(general) in response.json()["message"]
            assert response.headers["X-Instance-Id"] == EXAMPLE_INSTANCE_ID

        # Half headers, bodies trickled a byte at a time, connections that say nothing.
        opened_at = time.monotonic()
        half = [connect(port, b"GET /devices HTTP/1.1\r\nHost: x\r\nAccept: appl") for _ in range(HALF_HEADERS)]
        trickled = [connect(port, b"POST /device/living_led/cmd HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
                    for _ in range(TRICKLED_BODIES)]
        silent = [connect(port) for _ in range(SILENT)]
        opened = half + trickled + silent
        threading.Thread(target=trickle, args=(trickled, stop_trickle), daemon=True).start()

        # The connector's own follower (the bridge) still gets its stream: a slot kept for it.
        follower.start()
        wait_for(lambda: follower.connected, BRIDGE_TIMEOUT_S, message="the bridge's stream connected")

        # Pulls and a command are served as usual, all the while.
        latencies = []
        for _ in range(6):
            started = time.monotonic()
            for path in ("/health", "/devices"):
                answer = requests.get(url + path, timeout=BRIDGE_TIMEOUT_S)
                assert answer.status_code == 200, answer.text
            latencies.append(time.monotonic() - started)
        auth = authorization(served.data_dir)  # the token the aggregator made at its start
        command = requests.post(url + "/device/living_led/cmd", json={"values": {"state": "on"}, "id": "starve-1"},
                                timeout=BRIDGE_TIMEOUT_S, headers=auth)
        assert command.status_code == 200 and command.json()["status"] == "success", command.text
        assert [body["id"] for _, body in served.handler.commands] == ["starve-1"]

        # A 10 MB command is refused unread, and never carried out.
        huge = json.dumps({"values": {"state": "off"}, "id": "huge-1", "pad": "x" * 10_000_000})
        answer = requests.post(url + "/device/living_led/cmd", data=huge, timeout=BRIDGE_TIMEOUT_S,
                               headers={"Content-Type": "application/json", **auth})
        assert answer.status_code == 413 and answer.json()["error"] == "PAYLOAD_TOO_LARGE", answer.text
        assert str(BODY_BYTES_MAX) in answer.json()["message"]
        assert answer.headers["X-Instance-Id"] == EXAMPLE_INSTANCE_ID

        # What gunicorn's parser refuses is JSON too, not an HTML page.
        status, headers, body = raw_answer(port, b"GARBAGE\r\n\r\n")
        assert (status, body["error"]) == (400, "INVALID_REQUEST_LINE") and "GARBAGE" in body["message"]
        assert headers["content-type"] == "application/json" and headers["x-instance-id"] == EXAMPLE_INSTANCE_ID
        status, _, body = raw_answer(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
        assert (status, body["error"]) == (431, "HEADERS_TOO_LARGE"), body
        status, _, body = raw_answer(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000)
        assert (status, body["error"]) == (431, "HEADERS_TOO_LARGE"), body
        status, _, body = raw_answer(port, b"POST /device/living_led/cmd HTTP/1.1\r\nHost: x\r\n"
                                           b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        assert (status, body["error"]) == (411, "LENGTH_REQUIRED"), body
        assert [body["id"] for _, body in served.handler.commands] == ["starve-1"]

        # The onlookers leave; their slots come back (noticed at the stream's next heartbeat).
        for response in streams:
            response.close()

        # Every half-sent request is answered 408 and cut at the deadline, not before; a
        # connection that never said a word is closed without an answer.
        ends = wait_until_cut(opened, REQUEST_READ_TIMEOUT_S + CUT_SLACK_S + 1)
        assert len(ends) == len(opened), f"{len(opened) - len(ends)} connections still open"
        after = sorted(end - opened_at for end, _ in ends.values())
        assert REQUEST_READ_TIMEOUT_S - 0.2 <= after[0] and after[-1] <= REQUEST_READ_TIMEOUT_S + CUT_SLACK_S, after
        for sock in half + trickled:
            said = ends[sock][1]
            assert said.startswith(b"HTTP/1.1 408 ") and b'"error":"REQUEST_TIMEOUT"' in said, said
        assert all(ends[sock][1] == b"" for sock in silent)

        wait_for(lambda: stream_status(url) == 200, 15, interval=0.2, message="a stream slot free again")
        assert follower.connects == 1, "the bridge's stream was never dropped"
        print(f"\n/health + /devices under the flood: {max(latencies) * 1000:.1f} ms at most; "
              f"half-sent requests cut {after[0]:.2f}-{after[-1]:.2f} s after they began")
    finally:
        stop_trickle.set()
        follower.stop()
        for thing in [*opened, *streams]:
            thing.close()

    lines = served.log.read_text(errors="replace").splitlines()
    assert not [line for line in lines if "Traceback" in line]
    refusals = [line for line in lines if "refused" in line]
    assert 1 <= len(refusals) <= 4, refusals  # summaries, not a line per connection
