"""SSE publisher and follower over real HTTP servers on loopback."""
from __future__ import annotations

import gc
import json
import socket
import threading
from datetime import datetime

import pytest
import requests
from flask import Flask, request
from hypothesis import given
from hypothesis import strategies as st

from shared.server import run_in_thread
from shared.sse import Event, EventFollower, EventPublisher, Shutdown, SSEParser, parse_event_id
from testkit.helpers import free_port, wait_for


def events_app(publisher: EventPublisher) -> Flask:
    app = Flask(__name__)

    @app.get("/events")
    def events():
        return publisher.flask_response(request.headers.get("Last-Event-ID"))

    return app


class Recorder:
    """Collects what a follower reports, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.gaps: list[str] = []
        self.states: list[bool] = []

    def on_event(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def on_gap(self, reason: str) -> None:
        with self.lock:
            self.gaps.append(reason)

    def on_state(self, connected: bool) -> None:
        with self.lock:
            self.states.append(connected)

    def seqs(self) -> list[int]:
        with self.lock:
            return [e.seq for e in self.events]

    def follower(self, url: str, **kwargs) -> EventFollower:
        kwargs.setdefault("backoff", (0.02, 0.2))
        kwargs.setdefault("read_timeout", 10.0)
        return EventFollower(url + "/events", self.on_event, on_gap=self.on_gap,
                             on_state=self.on_state, **kwargs)


@pytest.fixture
def follow():
    """Start followers and always stop them."""
    started: list[EventFollower] = []

    def _start(follower: EventFollower) -> EventFollower:
        started.append(follower)
        return follower.start()

    yield _start
    for follower in started:
        follower.stop()


@pytest.fixture
def served():
    """Serve apps on loopback and always stop them."""
    servers = []

    def _serve(app, port: int = 0):
        server = run_in_thread(app, port=port)
        servers.append(server)
        return server

    yield _serve
    for server in servers:
        server.stop()


# ---------------------------------------------------------------- publisher (no network)


def test_publish_adds_type_and_timestamp_with_timezone():
    publisher = EventPublisher()
    event = publisher.publish("state", {"device_id": "t1", "state": {"temperature": 21.5}})
    assert event.kind == "state" and event.seq == 1
    assert event.id == f"{publisher.epoch}-1"
    assert event.data["type"] == "state"
    assert datetime.fromisoformat(event.data["timestamp"]).tzinfo is not None
    kept = publisher.publish("event", {"type": "custom", "timestamp": "2024-01-01T00:00:00+00:00"})
    assert kept.data["type"] == "custom" and kept.data["timestamp"].startswith("2024")
    assert publisher.stats()["published"] == 2


def test_publish_from_many_threads_gives_unique_consecutive_seqs():
    publisher = EventPublisher(history=1000)
    threads = [threading.Thread(target=lambda: [publisher.publish("state", {}) for _ in range(100)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.seq for e in publisher.recent()] == list(range(1, 401))


def preamble(publisher: EventPublisher, last_event_id: str | None) -> list:
    stream = publisher.subscribe(last_event_id)
    try:
        return SSEParser().feed(next(stream).encode())
    finally:
        stream.close()


def test_subscribe_replays_missed_events_of_the_same_epoch():
    publisher = EventPublisher(history=10)
    for n in range(5):
        publisher.publish("state", {"n": n})
    messages = preamble(publisher, f"{publisher.epoch}-2")
    assert [m.id for m in messages] == [f"{publisher.epoch}-{s}" for s in (3, 4, 5)]
    assert [m.event for m in messages] == ["state"] * 3


@pytest.mark.parametrize("last_id, reason", [
    ("otherepoch-3", "epoch changed"),
    ("garbage", "invalid"),
    ("{epoch}-99", "ahead"),
    ("{epoch}-1", "too old"),
])
def test_subscribe_sends_reset_when_replay_is_impossible(last_id, reason):
    publisher = EventPublisher(history=3, replay_s=0)  # seq 1..7 gone: not even this epoch is whole
    for n in range(10):
        publisher.publish("state", {"n": n})
    messages = preamble(publisher, last_id.format(epoch=publisher.epoch))
    assert len(messages) == 1
    assert messages[0].event == "reset"
    assert reason in messages[0].data
    assert json.loads(messages[0].data)["epoch"] == publisher.epoch
    assert messages[0].id == f"{publisher.epoch}-10"  # where to resume after resynchronising


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_replay_holds_the_last_seconds_beyond_the_count():
    clock = FakeClock()
    publisher = EventPublisher(history=3, replay_s=60, clock=clock)
    for n in range(10):  # one event a second: more than the count, all within the time
        clock.now += 1
        publisher.publish("state", {"n": n})
    assert [e.seq for e in publisher.recent()] == list(range(1, 11))
    messages = preamble(publisher, f"{publisher.epoch}-1")
    assert [m.id for m in messages] == [f"{publisher.epoch}-{s}" for s in range(2, 11)]

    clock.now += 52.5  # events 1 and 2 are now older than 60 s: the next publish lets them go
    publisher.publish("state", {"n": 10})
    assert [e.seq for e in publisher.recent()] == list(range(3, 12))
    (reset,) = preamble(publisher, f"{publisher.epoch}-1")
    assert reset.event == "reset" and "too old" in reset.data
    assert [m.id for m in preamble(publisher, f"{publisher.epoch}-2")][0] == f"{publisher.epoch}-3"

    clock.now += 3600  # an hour later: the count still holds the newest three
    publisher.publish("state", {"n": 11})
    assert [e.seq for e in publisher.recent()] == [10, 11, 12]
    stats = publisher.stats()
    assert stats["history"] == 3 and stats["history_oldest_seq"] == 10 and stats["resets"] == 1


def test_replay_holds_the_count_however_old_the_events_are():
    clock = FakeClock()
    publisher = EventPublisher(history=5, replay_s=1, clock=clock)
    for n in range(8):
        clock.now += 100
        publisher.publish("state", {"n": n})
    assert [e.seq for e in publisher.recent()] == [4, 5, 6, 7, 8]
    assert [m.id for m in preamble(publisher, f"{publisher.epoch}-3")][-1] == f"{publisher.epoch}-8"


def test_replay_beyond_the_count_stays_within_its_bytes():
    clock = FakeClock()
    publisher = EventPublisher(history=2, replay_s=60, replay_bytes=1000, clock=clock)
    for n in range(50):
        publisher.publish("state", {"n": n, "pad": "x" * 50})
    stats = publisher.stats()
    assert stats["history_bytes"] <= 1000 and stats["history"] < 50
    assert [e.seq for e in publisher.recent()][-1] == 50
    big = EventPublisher(history=2, replay_s=60, replay_bytes=10, clock=clock)
    for _ in range(5):
        big.publish("state", {"pad": "x" * 100})  # larger than the bytes: the count is still held
    assert [e.seq for e in big.recent()] == [4, 5]


def test_delivered_seq_follows_the_slowest_connected_client_and_stays_when_none_is():
    """A stream's write has happened when the server asks the generator for the next one."""
    publisher = EventPublisher(heartbeat_s=60)
    assert publisher.delivered_seq() == 0
    for n in range(3):
        publisher.publish("state", {"n": n})
    behind = publisher.subscribe(f"{publisher.epoch}-1")
    current = publisher.subscribe(None)
    assert publisher.delivered_seq() == 1  # the one behind has 1
    next(behind)  # the replay of 2 and 3, handed to the server
    next(current)
    assert publisher.delivered_seq() == 1  # not written yet
    publisher.publish("state", {"n": 3})
    next(behind)  # the replay was written; 4 handed over
    next(current)
    assert publisher.delivered_seq() == 3
    publisher.publish("state", {"n": 4})
    next(current)  # 4 written, 5 handed over
    assert publisher.delivered_seq() == 3  # the one behind has not been written 4
    behind.close()
    assert publisher.delivered_seq() == 4
    current.close()
    publisher.publish("state", {"n": 5})
    assert publisher.delivered_seq() == 4  # nobody connected: stays where the last one left it


def test_subscribe_without_id_tells_the_current_position():
    publisher = EventPublisher()
    publisher.publish("state", {})
    (message,) = preamble(publisher, None)
    assert message.data is None and message.id == f"{publisher.epoch}-1"


def test_full_queue_drops_the_client_and_ends_its_stream():
    publisher = EventPublisher(client_queue=2)
    stream = publisher.subscribe()
    next(stream)
    for _ in range(3):
        publisher.publish("state", {})
    assert publisher.stats()["clients_dropped"] == 1
    assert publisher.stats()["clients"] == 0
    assert list(stream) == []  # ended, not drained


def test_events_queued_meanwhile_go_out_in_one_write():
    publisher = EventPublisher()
    stream = publisher.subscribe()
    next(stream)
    for n in range(5):
        publisher.publish("state", {"n": n})
    chunk = next(stream)
    parser = SSEParser()
    assert [json.loads(m.data)["n"] for m in parser.feed(chunk.encode())] == [0, 1, 2, 3, 4]
    publisher.publish("state", {"n": 5})
    assert [json.loads(m.data)["n"] for m in parser.feed(next(stream).encode())] == [5]


def test_close_ends_streams_and_refuses_new_ones():
    publisher = EventPublisher()
    stream = publisher.subscribe()
    next(stream)
    publisher.close()
    assert list(stream) == []
    late = publisher.subscribe()
    assert len(list(late)) == 1  # only the preamble
    assert publisher.stats()["clients"] == 0


def test_shutdown_ends_a_stream_that_waits_for_its_next_event():
    shutdown = Shutdown()
    publisher = EventPublisher(heartbeat_s=60, shutdown=shutdown)  # no heartbeat wakes it meanwhile
    stream = publisher.subscribe()
    next(stream)
    rest: list[str] = []
    reader = threading.Thread(target=lambda: rest.extend(stream))  # blocks in the wait for an event
    reader.start()
    assert shutdown.begin() == 1
    reader.join(10)
    assert not reader.is_alive() and rest == []
    assert publisher.stats()["clients"] == 0
    assert len(list(publisher.subscribe())) == 1  # a later connection: the preamble, then the end


def test_shutdown_closes_a_publisher_made_after_it_began_and_forgets_those_gone():
    shutdown = Shutdown()
    EventPublisher(shutdown=shutdown)  # dropped at once: nothing to end
    gc.collect()
    assert shutdown.begin() == 0 and shutdown.begun
    late = EventPublisher(shutdown=shutdown)  # a service still starting when the stop came
    assert len(list(late.subscribe())) == 1


def test_shutdown_of_one_set_of_publishers_leaves_the_others_streaming():
    ours, theirs = Shutdown(), Shutdown()
    publisher = EventPublisher(shutdown=theirs)
    stream = publisher.subscribe()
    next(stream)
    ours.begin()
    publisher.publish("state", {"n": 1})
    assert '"n":1' in next(stream).replace(" ", "")


# ---------------------------------------------------------------- parser


def test_parser_multiline_data_comments_and_fields():
    stream = (b": hello\n"
              b"id: e-1\nevent: state\ndata: {\"a\":\ndata:  1}\n\n"
              b"data:no-space\nunknown: x\n\n"
              b"id: e-2\n\n"
              b"retry: 1500\ndata\n\n")
    parser = SSEParser()
    messages = parser.feed(stream)
    assert parser.comments == 1
    assert (messages[0].id, messages[0].event, messages[0].data) == ("e-1", "state", '{"a":\n 1}')
    assert (messages[1].event, messages[1].data) == (None, "no-space")
    assert (messages[2].id, messages[2].data) == ("e-2", None)
    assert (messages[3].retry, messages[3].data) == (1500, "")


def test_parser_crlf_and_cr_line_ends():
    for newline in (b"\r\n", b"\r"):
        text = b"id: x-1\nevent: e\ndata: one\ndata: two\n\n".replace(b"\n", newline)
        (message,) = SSEParser().feed(text)
        assert (message.id, message.event, message.data) == ("x-1", "e", "one\ntwo")


def test_parser_crlf_split_between_chunks_is_one_line_end():
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []  # a second blank line here would split the message
    (message,) = parser.feed(b"\n\r\n")
    assert message.data == "a\nb"


def test_parser_utf8_split_inside_a_character():
    raw = 'data: {"t": "21.5 °C"}\n\n'.encode()
    cut = raw.index("°".encode()) + 1
    parser = SSEParser()
    assert parser.feed(raw[:cut]) == []
    (message,) = parser.feed(raw[cut:])
    assert message.data == '{"t": "21.5 °C"}'


@given(newline=st.sampled_from([b"\n", b"\r\n", b"\r"]), cuts=st.lists(st.integers(0, 200), max_size=8))
def test_parser_result_does_not_depend_on_chunking(newline, cuts):
    text = (b": hb\nid: a-1\nevent: state\ndata: {\"x\": 1}\ndata: more\n\n"
            b"id: a-2\n\n: hb\ndata: last\n\n").replace(b"\n", newline)
    whole = [vars(m) for m in SSEParser().feed(text)]
    parser, got, start = SSEParser(), [], 0
    for cut in sorted(c % (len(text) + 1) for c in cuts):
        got += [vars(m) for m in parser.feed(text[start:cut])]
        start = cut
    got += [vars(m) for m in parser.feed(text[start:])]
    assert got == whole and len(whole) == 3


def test_parse_event_id():
    assert parse_event_id("abc-12") == ("abc", 12)
    assert parse_event_id("a-b-3") == ("a-b", 3)
    assert parse_event_id("abc") is None and parse_event_id("-3") is None
    assert parse_event_id(None) is None and parse_event_id("abc-x") is None


# ---------------------------------------------------------------- over HTTP


def test_events_response_headers(served):
    publisher = EventPublisher(heartbeat_s=0.2)
    server = served(events_app(publisher))
    with requests.get(server.url + "/events", stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
    publisher.close()


def test_follower_receives_published_events(served, follow):
    publisher = EventPublisher(heartbeat_s=0.5)
    server = served(events_app(publisher))
    rec = Recorder()
    follower = follow(rec.follower(server.url))
    wait_for(lambda: rec.states == [True], message="follower connected")
    assert publisher.stats()["clients"] == 1
    for n in range(3):
        publisher.publish("state", {"device_id": f"d{n}", "state": {"n": n}})
    wait_for(lambda: len(rec.events) == 3, message="3 events received")
    assert rec.seqs() == [1, 2, 3]
    assert [e.data["device_id"] for e in rec.events] == ["d0", "d1", "d2"]
    assert all(e.kind == "state" and e.epoch == publisher.epoch for e in rec.events)
    assert rec.gaps == []
    assert follower.last_event_id == f"{publisher.epoch}-3"


def test_follower_hands_over_each_read_as_one_batch(served, follow):
    publisher = EventPublisher(heartbeat_s=0.5)
    server = served(events_app(publisher))
    batches: list[list[Event]] = []
    follower = follow(EventFollower(server.url + "/events", on_events=batches.append, backoff=(0.02, 0.2)))
    wait_for(lambda: follower.connected, message="follower connected")
    for n in range(200):
        publisher.publish("state", {"n": n})
    wait_for(lambda: sum(len(b) for b in batches) == 200, message="200 events received")
    assert [e.data["n"] for b in batches for e in b] == list(range(200))
    assert all(batches)  # never an empty hand-over
    with pytest.raises(ValueError):
        EventFollower(server.url, on_event=print, on_events=print)


def test_follower_resumes_after_restart_without_loss_or_duplicates(served, follow):
    publisher = EventPublisher(heartbeat_s=0.5)
    port = free_port()
    server = served(events_app(publisher), port=port)
    rec = Recorder()
    follower = follow(rec.follower(server.url))
    wait_for(lambda: follower.connected, message="connected")
    publisher.publish("state", {"n": 1})
    publisher.publish("state", {"n": 2})
    wait_for(lambda: len(rec.events) == 2)

    server.stop()
    wait_for(lambda: not follower.connected, message="follower noticed the server is gone")
    for n in range(3, 6):
        publisher.publish("state", {"n": n})  # while nobody can connect

    served(events_app(publisher), port=port)
    wait_for(lambda: len(rec.events) == 5, message="missed events replayed")
    publisher.publish("state", {"n": 6})
    wait_for(lambda: len(rec.events) == 6)
    assert rec.seqs() == [1, 2, 3, 4, 5, 6]
    assert [e.data["n"] for e in rec.events] == [1, 2, 3, 4, 5, 6]
    assert rec.gaps == []
    assert rec.states == [True, False, True]
    assert follower.connects == 2


def test_a_follower_given_a_saved_position_resumes_on_its_first_connection(served, follow):
    publisher = EventPublisher(heartbeat_s=0.5)
    for n in range(5):
        publisher.publish("state", {"n": n})
    server = served(events_app(publisher))
    rec = Recorder()
    follow(rec.follower(server.url, last_event_id=f"{publisher.epoch}-3"))  # a previous run had 1..3
    wait_for(lambda: len(rec.events) == 2, message="4 and 5 replayed")
    assert rec.seqs() == [4, 5] and rec.gaps == []


def test_new_epoch_is_a_gap_then_the_whole_new_epoch_is_replayed(served, follow, caplog):
    """A restarted publisher: what it published before the follower got back is not lost, and
    its seqs are never taken for the old epoch's (the follower's seq 1 is not its seq 1)."""
    old = EventPublisher(heartbeat_s=0.5)
    port = free_port()
    server = served(events_app(old), port=port)
    rec = Recorder()
    follower = follow(rec.follower(server.url))
    wait_for(lambda: follower.connected)
    for n in range(3):
        old.publish("state", {"n": f"old {n}"})
    wait_for(lambda: len(rec.events) == 3)
    server.stop()

    new = EventPublisher(heartbeat_s=0.5)  # the publishing process restarted
    new.publish("state", {"n": "new 0"})  # before the follower is back
    served(events_app(new), port=port)
    wait_for(lambda: len(rec.events) == 4, message="the new epoch replayed")
    assert len(rec.gaps) == 1 and "epoch changed" in rec.gaps[0]
    new.publish("state", {"n": "new 1"})
    wait_for(lambda: len(rec.events) == 5)
    assert [(e.epoch, e.seq) for e in rec.events[3:]] == [(new.epoch, 1), (new.epoch, 2)]
    assert [e.data["n"] for e in rec.events] == ["old 0", "old 1", "old 2", "new 0", "new 1"]
    assert len(rec.gaps) == 1
    said = [r for r in caplog.records if r.name == "shared.sse" and "gap" in r.getMessage()]
    assert len(said) == 1  # logged once


def test_new_epoch_that_is_no_longer_whole_is_a_reset_at_its_current_position():
    publisher = EventPublisher(history=3, replay_s=0)
    for n in range(5):
        publisher.publish("state", {"n": n})
    messages = preamble(publisher, "otherepoch-40")
    assert [m.event for m in messages] == ["reset"]
    assert messages[0].id == f"{publisher.epoch}-5"
    whole = EventPublisher(history=3, replay_s=0)
    whole.publish("state", {"n": 0})
    messages = preamble(whole, "otherepoch-40")
    assert [(m.event, m.id) for m in messages] == [("reset", f"{whole.epoch}-0"), ("state", f"{whole.epoch}-1")]
    assert whole.stats()["resets"] == 1 and whole.stats()["replayed"] == 1


def test_too_old_resume_point_triggers_gap(served, follow):
    publisher = EventPublisher(history=2, replay_s=0, heartbeat_s=0.5)
    port = free_port()
    server = served(events_app(publisher), port=port)
    rec = Recorder()
    follower = follow(rec.follower(server.url))
    wait_for(lambda: follower.connected)
    server.stop()
    wait_for(lambda: not follower.connected)
    for n in range(5):
        publisher.publish("state", {"n": n})
    served(events_app(publisher), port=port)
    wait_for(lambda: rec.gaps, message="gap reported")
    assert "too old" in rec.gaps[0]
    assert rec.events == []  # nothing half-replayed: the consumer resyncs from a pull
    publisher.publish("state", {"n": 5})
    wait_for(lambda: rec.events)
    assert rec.seqs() == [6] and len(rec.gaps) == 1


def stalled_client(url: str) -> socket.socket:
    """A client that asks for the stream and then never reads."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up sooner
    sock.connect((host, int(port)))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    return sock


def test_stalled_client_is_dropped_without_blocking_publish_or_others(served, follow):
    publisher = EventPublisher(client_queue=4, heartbeat_s=0.5)
    server = served(events_app(publisher))
    rec = Recorder()
    follower = follow(rec.follower(server.url))
    wait_for(lambda: follower.connected)
    stalled = stalled_client(server.url)
    try:
        wait_for(lambda: publisher.stats()["clients"] == 2, message="both clients connected")
        blob = "x" * 65536  # big events fill the socket buffers quickly
        published = 0
        while publisher.stats()["clients_dropped"] == 0:
            assert published < 1000, "the stalled client was never dropped"
            publisher.publish("state", {"n": published, "blob": blob})
            published += 1
            # The healthy follower keeps up (it is paced by this wait, not by a sleep).
            wait_for(lambda n=published: len(rec.events) == n, message=f"event {published}")
        for n in range(published + 1, published + 6):  # the others still get everything
            publisher.publish("state", {"n": n})
            wait_for(lambda n=n: len(rec.events) == n)
    finally:
        stalled.close()
    assert rec.seqs() == list(range(1, published + 6))
    assert rec.gaps == []
    assert publisher.stats()["clients_dropped"] == 1
    assert publisher.stats()["clients"] == 1


def test_heartbeats_arrive(served, follow):
    publisher = EventPublisher(heartbeat_s=0.1)
    server = served(events_app(publisher))
    rec = Recorder()
    follower = follow(rec.follower(server.url))
    wait_for(lambda: follower.heartbeats >= 3, message="three heartbeats")
    assert rec.events == [] and follower.connects == 1


def test_read_timeout_notices_a_silent_peer(served, follow):
    publisher = EventPublisher(heartbeat_s=60)  # never beats within the test
    server = served(events_app(publisher))
    rec = Recorder()
    follower = follow(rec.follower(server.url, read_timeout=0.3))
    wait_for(lambda: follower.connects >= 2, message="reconnect after silence")
    assert False in rec.states


def test_stop_returns_while_blocked_reading(served):
    publisher = EventPublisher(heartbeat_s=60)
    server = served(events_app(publisher))
    rec = Recorder()
    follower = rec.follower(server.url, read_timeout=60).start()
    wait_for(lambda: follower.connected)
    follower.stop(timeout=10)
    assert not follower._thread.is_alive()
    assert rec.states == [True, False]


def test_callback_exception_does_not_kill_the_follower(served, follow):
    publisher = EventPublisher(heartbeat_s=0.5)
    server = served(events_app(publisher))
    seen = []

    def on_event(event: Event) -> None:
        seen.append(event.seq)
        if event.seq == 1:
            raise RuntimeError("consumer bug")

    follower = follow(EventFollower(server.url + "/events", on_event, backoff=(0.02, 0.2)))
    wait_for(lambda: follower.connected)
    publisher.publish("state", {})
    publisher.publish("state", {})
    wait_for(lambda: seen == [1, 2])
    assert follower.connects == 1


def test_follower_retries_until_the_server_appears(served, follow):
    port = free_port()
    rec = Recorder()
    follower = follow(rec.follower(f"http://127.0.0.1:{port}"))
    publisher = EventPublisher(heartbeat_s=0.5)
    publisher.publish("state", {"n": 1})  # before the follower ever connected: not replayed
    served(events_app(publisher), port=port)
    wait_for(lambda: follower.connected, message="connected once the server is up")
    publisher.publish("state", {"n": 2})
    wait_for(lambda: rec.events)
    assert rec.seqs() == [2] and rec.gaps == []


def test_follower_refuses_what_is_not_an_event_stream(served, follow):
    app = Flask(__name__)
    app.add_url_rule("/events", "events", lambda: {"not": "sse"})
    server = served(app)
    rec = Recorder()
    follower = follow(rec.follower(server.url))
    wait_for(lambda: follower.failures >= 2, message="two refused attempts")
    assert follower.connects == 0 and rec.states == [] and rec.events == []


def test_follower_keeps_reconnecting_to_a_peer_that_hangs_up(served, follow):
    publisher = EventPublisher()
    publisher.close()  # every stream ends right after its first lines
    server = served(events_app(publisher))
    rec = Recorder()
    follower = follow(rec.follower(server.url, backoff=(0.01, 0.05)))
    wait_for(lambda: follower.connects >= 3, message="keeps retrying")
    assert rec.states[:4] == [True, False, True, False]
    assert rec.events == [] and rec.gaps == []
