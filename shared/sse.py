"""Server-Sent Events: the publisher behind every service's ``GET /events`` and the follower
that consumes such a stream (see docs/architecture.md, "Event streams", and docs/events.md).

Wire format, one message per event::

    id: <epoch>-<seq>
    event: <kind>
    data: {"type": "<kind>", "timestamp": "...", ...}

``seq`` counts up by one per event; ``epoch`` is new for every publisher object (so for every
process start). A follower reconnects with ``Last-Event-ID``; the publisher replays what its
ring still holds (at least the last ``REPLAY_S`` seconds or ``REPLAY_COUNT`` events, whichever
is more), or sends a ``reset`` event telling the follower to resynchronise from a pull.
"""
from __future__ import annotations

import json
import logging
import queue
import random
import secrets
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from shared import jsonio
from shared.clock import now_iso
from shared.identity import INSTANCE_HEADER, ForeignInstance, check_instance

log = logging.getLogger(__name__)

RESET = "reset"
"""Kind of the per-client event that tells a follower it missed events and must resync."""

BATCH_BYTES = 64 * 1024
"""Most queued event text one write of a stream carries (see ``EventPublisher._backlog``)."""

REPLAY_COUNT = 10_000
"""A publisher can always replay at least this many of its most recent events..."""
REPLAY_S = 60.0
"""...and every event of the last this many seconds, whichever is more..."""
REPLAY_BYTES = 16 * 1024 * 1024
"""...as long as the held SSE text stays within this much (about 200 bytes a reading: the 60 s
hold up to roughly 1,400 events/s; the ``REPLAY_COUNT`` newest are held whatever their size). A
follower that needs more than is held is told to ``reset`` (docs/events.md, "Resuming and gaps")."""


def parse_event_id(event_id: str | None) -> tuple[str, int] | None:
    """``"<epoch>-<seq>"`` -> ``(epoch, seq)``; ``None`` when missing or malformed."""
    if not event_id:
        return None
    epoch, sep, seq = event_id.strip().rpartition("-")
    if not sep or not epoch or not seq.isdigit():
        return None
    return epoch, int(seq)


@dataclass(frozen=True)
class Event:
    """One event of a stream. ``data`` always carries ``type`` and ``timestamp``."""

    id: str
    epoch: str
    seq: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_sse(self) -> str:
        return format_message(self.data, event=self.kind, event_id=self.id)


def format_message(data: Any, event: str | None = None, event_id: str | None = None) -> str:
    """One SSE message. Data is JSON; a multi-line payload becomes several ``data:`` lines."""
    text = data if isinstance(data, str) else jsonio.dumps(data)
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in text.splitlines() or [""])
    return "\n".join(lines) + "\n\n"


# --------------------------------------------------------------------------- publisher


class Shutdown:
    """"This process is stopping", for the event streams: ``begin()`` closes every publisher
    that watches it, so every open stream ends at once and so does every later connection.

    An open ``/events`` stream is the one request that never finishes by itself, and a server
    stopping gracefully (gunicorn's worker on SIGTERM) waits for its requests before it exits:
    without this it waits until it is killed (shared/server.py ``StreamEndingWorker``).
    Publishers are held weakly: one that is gone needs no ending.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._publishers: weakref.WeakSet[EventPublisher] = weakref.WeakSet()
        self._begun = False

    @property
    def begun(self) -> bool:
        return self._begun

    def watch(self, publisher: EventPublisher) -> None:
        """Close ``publisher`` on ``begin()``, or now when the stop has already begun."""
        with self._lock:
            if not self._begun:
                self._publishers.add(publisher)
                return
        publisher.close()

    def begin(self) -> int:
        """End the streams of every watching publisher; returns how many publishers that was.

        Takes locks, so never call it from a signal handler: the handler may have interrupted
        a thread holding one of them.
        """
        with self._lock:
            self._begun = True
            publishers = list(self._publishers)
            self._publishers = weakref.WeakSet()
        for publisher in publishers:
            publisher.close()
        return len(publishers)


PROCESS_SHUTDOWN = Shutdown()
"""The one a signal to this process begins; every publisher watches it unless given its own
(a test's). Process-wide because a signal reaches a process, not an object."""


# --------------------------------------------------------------------------- stream bound

STREAM_RETRY_AFTER_S = 5
"""How long a client refused for too many streams is asked to wait (``Retry-After``)."""

OWN_FOLLOWER_ENVIRON = "sensor_hub.own_follower"
"""WSGI environ key: true when the request names this service's instance in ``X-Instance-Id``
(set by ``shared.web.install_instance_header``)."""

STREAM_REFUSAL_LOG_INTERVAL_S = 60.0


class StreamSlots:
    """How many event streams this process serves at once.

    Every open ``/events`` stream holds one of the server's threads for as long as it lasts, so
    unbounded streams could take them all: 80 ``curl -N`` left /devices and the bridge's
    commands unanswered until they went away. ``limit`` streams are open to anyone; ``reserved``
    more only to this instance's own followers, requests that name it in ``X-Instance-Id`` (the
    aggregator following its handlers and the bridge following the aggregator do: their
    ``EventFollower``), so that they get in however many others watch. The header is no
    password: it keeps the connector's own streams apart from onlookers, not from an attacker.

    Unbounded until ``configure``: the server does it from its thread count (shared/server.py
    ``stream_slots``); a test's in-process server stays unbounded. Process-wide because the
    threads are.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.limit: int | None = None
        self.reserved = 0
        self._open = 0
        self._open_reserved = 0
        self._refused = 0
        self._logged_at = float("-inf")

    def configure(self, limit: int, reserved: int) -> None:
        if limit < 1 or reserved < 0:
            raise ValueError("limit must be >= 1 and reserved >= 0")
        with self._lock:
            self.limit, self.reserved = limit, reserved

    def take(self, own_follower: bool = False) -> Callable[[], None] | None:
        """A slot for one more stream: the function that gives it back when the stream ends (once
        is enough; more calls do nothing), or None when every slot it may have is taken."""
        with self._lock:
            if own_follower and self._open_reserved < self.reserved:
                self._open_reserved += 1
                return self._giver(reserved=True)
            if self.limit is None or self._open < self.limit:
                self._open += 1
                return self._giver(reserved=False)
            self._refused += 1
            now = time.monotonic()
            if now - self._logged_at < STREAM_REFUSAL_LOG_INTERVAL_S:
                return None
            self._logged_at = now
            refused = self._refused
        log.warning("refused an event stream: %d open, the most this service serves (%d refused since it "
                    "started; logged once a minute at most)", self.limit, refused)
        return None

    def _giver(self, reserved: bool) -> Callable[[], None]:
        given: list[bool] = []

        def give_back() -> None:
            with self._lock:
                if given:
                    return
                given.append(True)
                if reserved:
                    self._open_reserved -= 1
                else:
                    self._open -= 1
        return give_back

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"limit": self.limit, "reserved": self.reserved, "open": self._open,
                    "open_reserved": self._open_reserved, "refused": self._refused}


STREAM_SLOTS = StreamSlots()
"""The streams of this process (``EventPublisher.flask_response`` takes its slots here)."""


def _too_many_streams(slots: StreamSlots):
    """503 ``TOO_MANY_STREAMS`` in the JSON error shape, with ``Retry-After``."""
    from flask import Response

    body = {"error": "TOO_MANY_STREAMS",
            "message": f"This service already serves {slots.limit} event streams, the most it serves at once; "
                       f"try again in {STREAM_RETRY_AFTER_S} s.",
            "limit": slots.limit}
    return Response(jsonio.dumps_bytes(body), status=503, mimetype="application/json",
                    headers={"Retry-After": str(STREAM_RETRY_AFTER_S)})


class _Client:
    """One connected stream: a bounded queue of pre-formatted messages, and how far it got."""

    def __init__(self, maxsize: int) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue(maxsize=maxsize)
        self.ended = threading.Event()  # set when dropped or the publisher closes
        # The seq through which this client has been written (its resume point until the
        # preamble is out), and where the preamble leaves it (see EventPublisher.delivered_seq).
        self.sent = 0
        self.after_preamble = 0


class EventPublisher:
    """Fans events out to any number of SSE clients without ever waiting for one.

    ``publish()`` is thread-safe and O(clients): it only puts a formatted message into each
    client's bounded queue. A client whose queue is full is dropped (its stream ends; a
    reconnect with ``Last-Event-ID`` replays from the ring), so a stalled reader costs the
    others nothing.

    The replay ring holds the ``history`` most recent events and, beyond them, every event
    younger than ``replay_s`` while the ring's text stays within ``replay_bytes``: a follower
    away for a minute resumes without loss at a few events a second as at thousands. It holds
    the SSE text only (what a replay sends), not the event objects.
    """

    def __init__(self, history: int = REPLAY_COUNT, client_queue: int = 256, heartbeat_s: float = 5.0,
                 epoch: str | None = None, shutdown: Shutdown | None = None, replay_s: float = REPLAY_S,
                 replay_bytes: int = REPLAY_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        if history < 1 or client_queue < 1 or heartbeat_s <= 0 or replay_s < 0 or replay_bytes < 0:
            raise ValueError("history and client_queue must be >= 1, heartbeat_s > 0, "
                             "replay_s and replay_bytes >= 0")
        # Epoch: start time plus randomness, so two publishers never share one (no "-" inside).
        self.epoch = epoch or f"{int(time.time()):x}{secrets.token_hex(3)}"
        if "-" in self.epoch:
            raise ValueError("epoch must not contain '-'")
        self.heartbeat_s = heartbeat_s
        self._client_queue = client_queue
        self._lock = threading.Lock()
        self._history, self._replay_s, self._replay_bytes, self._clock = history, replay_s, replay_bytes, clock
        self._ring: deque[tuple[int, float, str]] = deque()  # (seq, published at, SSE text), seqs consecutive
        self._ring_bytes = 0
        self._clients: set[_Client] = set()
        self._seq = 0
        self._delivered = 0
        self._published = 0
        self._dropped = 0
        self._connections = 0
        self._resets = 0
        self._replayed = 0
        self._closed = False
        (shutdown or PROCESS_SHUTDOWN).watch(self)  # last: it may close this publisher at once

    # -- producing

    def publish(self, kind: str, data: dict[str, Any] | None = None) -> Event:
        """Record and broadcast one event; adds ``type`` and ``timestamp`` when missing."""
        payload = dict(data or {})
        payload.setdefault("type", kind)
        payload.setdefault("timestamp", now_iso())
        with self._lock:
            self._seq += 1
            event = Event(f"{self.epoch}-{self._seq}", self.epoch, self._seq, kind, payload)
            self._published += 1
            message = event.to_sse()
            self._hold(message)
            for client in list(self._clients):
                try:
                    client.queue.put_nowait(message)
                except queue.Full:
                    self._clients.discard(client)
                    client.ended.set()
                    self._dropped += 1
                    log.warning("dropped a slow event-stream client (queue of %d full)",
                                self._client_queue)
        return event

    def _hold(self, message: str) -> None:
        """Keep the newest event for replay; let go of the oldest ones no bound needs any more.
        Called with the lock held; O(1) amortised."""
        now = self._clock()
        ring = self._ring
        ring.append((self._seq, now, message))
        self._ring_bytes += len(message)
        while len(ring) > self._history:
            _, published_at, text = ring[0]
            if now - published_at <= self._replay_s and self._ring_bytes <= self._replay_bytes:
                break
            ring.popleft()
            self._ring_bytes -= len(text)

    def close(self) -> None:
        """End every stream (shutdown). Later connections end at once."""
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, set()
        for client in clients:
            client.ended.set()
            try:
                client.queue.put_nowait(None)  # wake a stream waiting for its next message
            except queue.Full:
                pass  # it is busy draining and checks ``ended`` before every message

    # -- consuming

    @property
    def seq(self) -> int:
        """The seq of the last event published (0 before the first)."""
        return self._seq

    def delivered_seq(self) -> int:
        """The highest seq written to every connected client (its socket has it; whether the
        client then keeps it is the client's affair). While no client is connected it stays
        where the last one left it: what nobody has been sent yet is not delivered.

        What a consumer that republishes another stream (the aggregator) may count as passed
        on, and so save as its own resume point upstream.
        """
        with self._lock:
            if self._clients:
                self._delivered = min(client.sent for client in self._clients)
            return self._delivered

    def stats(self) -> dict[str, Any]:
        with self._lock:
            oldest = self._ring[0] if self._ring else None
            return {
                "epoch": self.epoch,
                "last_id": f"{self.epoch}-{self._seq}",
                "published": self._published,
                "clients": len(self._clients),
                "connections": self._connections,
                "clients_dropped": self._dropped,
                "history": len(self._ring),
                "history_bytes": self._ring_bytes,
                "history_oldest_seq": oldest[0] if oldest else None,
                "history_oldest_age_s": round(self._clock() - oldest[1], 3) if oldest else None,
                "replayed": self._replayed,
                "resets": self._resets,
            }

    def recent(self) -> list[Event]:
        """The events still held for replay, oldest first (parsed back from their SSE text:
        for inspection and tests, not for a hot path)."""
        with self._lock:
            texts = [text for _, _, text in self._ring]
        events = []
        for text in texts:
            (message,) = SSEParser().feed(text.encode())
            epoch, seq = parse_event_id(message.id) or (self.epoch, 0)
            events.append(Event(message.id or "", epoch, seq, message.event or "message",
                                jsonio.loads(message.data or "{}")))
        return events

    def subscribe(self, last_event_id: str | None = None) -> Iterator[str]:
        """A generator of SSE text for one client (what ``flask_response`` streams).

        The client is registered now, not when iteration starts, so nothing published in
        between is lost.
        """
        client = _Client(self._client_queue)
        with self._lock:
            parts = self._preamble(last_event_id, client)
            if self._closed:
                client.ended.set()
            else:
                self._clients.add(client)
                self._connections += 1
        # Joined outside the lock: a replay of a full ring is megabytes, and publish() waits
        # for nobody. The texts are immutable, so nothing can change under the join.
        return self._stream(client, "".join(parts))

    def flask_response(self, last_event_id: str | None = None):
        """A streaming ``flask.Response`` for ``GET /events``.

        Pass ``request.headers.get("Last-Event-ID")``. Without a free stream slot
        (``STREAM_SLOTS``) the answer is 503 ``TOO_MANY_STREAMS`` instead.
        """
        from flask import Response, request  # imported here: followers need no Flask

        give_back = STREAM_SLOTS.take(own_follower=bool(request.environ.get(OWN_FOLLOWER_ENVIRON)))
        if give_back is None:
            return _too_many_streams(STREAM_SLOTS)
        stream = self.subscribe(last_event_id)
        response = Response(stream, mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # tell proxies not to buffer the stream
        response.call_on_close(stream.close)  # unregister even if never iterated
        response.call_on_close(give_back)
        return response

    def _preamble(self, last_event_id: str | None, client: _Client) -> list[str]:
        """What a new client gets first, as parts to join: replay, a reset, or just the current
        position. Sets where the client stands before and after it (``sent``).

        Another epoch (the publisher restarted since the client's last event) is a reset, then
        every event of this epoch when the ring still holds them all: the client saw none of
        them, and whatever a restarted process published before its followers got back (the
        aggregator passing on what a handler replayed to it) reaches them.

        Called with the lock held.
        """
        current = f"{self.epoch}-{self._seq}"
        client.sent = client.after_preamble = self._seq
        # retry: the reconnect delay browsers should use; the id-only message gives the client
        # its position, so a reconnect before any event still resumes without loss.
        position = f"retry: 2000\nid: {current}\n\n"
        if not last_event_id:
            return [position]
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return self._reset(last_event_id, "invalid Last-Event-ID", current)
        epoch, seq = parsed
        if epoch != self.epoch:
            if self._holds_from(1):
                client.sent = 0
                return self._reset(last_event_id, "epoch changed", f"{self.epoch}-0", self._held_after(0))
            return self._reset(last_event_id, "epoch changed", current)
        if seq > self._seq:
            return self._reset(last_event_id, "Last-Event-ID is ahead of the stream", current)
        if seq == self._seq:
            return [position]
        if not self._holds_from(seq + 1):
            return self._reset(last_event_id, "Last-Event-ID is too old for replay", current)
        client.sent = seq
        missed = self._held_after(seq)
        self._replayed += len(missed)
        return ["retry: 2000\n\n", *missed]

    def _holds_from(self, seq: int) -> bool:
        """Whether the ring still holds event ``seq`` and everything after it."""
        return seq > self._seq or (bool(self._ring) and self._ring[0][0] <= seq)

    def _held_after(self, seq: int) -> list[str]:
        """The SSE text of every held event after ``seq`` (seqs in the ring are consecutive)."""
        if not self._ring:
            return []
        start = max(0, seq + 1 - self._ring[0][0])
        return [text for _, _, text in islice(self._ring, start, None)]

    def _reset(self, last_event_id: str, reason: str, event_id: str, then: list[str] | None = None) -> list[str]:
        self._resets += 1
        if then:
            self._replayed += len(then)
        oldest = self._ring[0][0] if self._ring else self._seq + 1
        log.info("event stream: a client resumed after %.80s: %s (held: %d..%d); it resynchronises%s",
                 last_event_id, reason, oldest, self._seq,
                 f", then gets the {len(then)} events of this epoch" if then else "")
        data = {"type": RESET, "reason": reason, "epoch": self.epoch, "timestamp": now_iso()}
        return ["retry: 2000\n\n", format_message(data, event=RESET, event_id=event_id), *(then or [])]

    @staticmethod
    def _backlog(client: _Client) -> tuple[str, int]:
        """What else is already queued for this client, joined into the same write, and how
        many events that is.

        Under load events queue up while the stream thread waits for the socket; sending them in
        one chunk costs one write here and one read at the follower instead of one per event,
        which is what lets a stream carry thousands of events a second. It never waits.
        """
        parts: list[str] = []
        size = 0
        while size < BATCH_BYTES:
            try:
                message = client.queue.get_nowait()
            except queue.Empty:
                break
            if message is None:  # close(): end after what is already joined
                client.ended.set()
                break
            parts.append(message)
            size += len(message)
        return "".join(parts), len(parts)

    def _stream(self, client: _Client, preamble: str) -> Iterator[str]:
        # A yield returns when the server has written what it yielded: only then does ``sent``
        # move on (every queued message is the next event of this client's stream).
        try:
            yield preamble
            client.sent = client.after_preamble
            while not client.ended.is_set():
                try:
                    message = client.queue.get(timeout=self.heartbeat_s)
                except queue.Empty:
                    yield ": heartbeat\n\n"
                    continue
                if message is None or client.ended.is_set():
                    return
                more, count = self._backlog(client)
                yield message + more
                client.sent += 1 + count
        finally:
            with self._lock:
                self._clients.discard(client)
                if not self._clients:
                    self._delivered = client.sent


# --------------------------------------------------------------------------- parsing


@dataclass
class SSEMessage:
    """One block of an SSE stream that had data or an id. ``data`` is None for an id-only block
    (per the spec it is not an event, but it moves the last event id)."""

    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Incremental SSE parser (WHATWG rules): feed bytes, get complete messages.

    Handles LF, CR and CRLF line ends even when split across chunks, multi-line data,
    comments, fields without a value and the optional space after the colon.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF belongs to it
        self._fields = SSEMessage()
        self._data: list[str] = []
        self._seen_field = False
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        if not chunk:
            return []
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        buffer = self._buffer + chunk
        messages: list[SSEMessage] = []
        if b"\r" not in buffer:
            # What every publisher of ours sends: LF line ends only. One split, no scanning.
            *lines, self._buffer = buffer.split(b"\n")
            for line in lines:
                message = self._line(line.decode("utf-8", errors="replace"))
                if message is not None:
                    messages.append(message)
            return messages
        start = 0
        while True:
            cr, lf = buffer.find(b"\r", start), buffer.find(b"\n", start)
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                break
            end = min(ends)
            line = buffer[start:end]
            if buffer[end:end + 1] == b"\r":
                if end + 1 == len(buffer):
                    self._skip_lf = True
                    start = end + 1
                elif buffer[end + 1:end + 2] == b"\n":
                    start = end + 2
                else:
                    start = end + 1
            else:
                start = end + 1
            message = self._line(line.decode("utf-8", errors="replace"))
            if message is not None:
                messages.append(message)
        self._buffer = buffer[start:]
        return messages

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._fields.event = value
        elif name == "id" and "\0" not in value:
            self._fields.id = value
        elif name == "retry" and value.isdigit():
            self._fields.retry = int(value)
            return None  # retry alone does not make a message worth reporting
        else:
            return None  # unknown fields are ignored, as the spec says
        self._seen_field = True
        return None

    def _dispatch(self) -> SSEMessage | None:
        if not self._seen_field:
            return None
        message = self._fields
        message.data = "\n".join(self._data) if self._data else None
        self._fields, self._data, self._seen_field = SSEMessage(), [], False
        return message


# --------------------------------------------------------------------------- follower


class EventFollower:
    """Follows a publisher's stream in a daemon thread and survives anything the network does.

    * ``on_event(Event)`` for every event (never twice for the same id, never a ``reset``), or,
      when ``on_events`` is given instead, ``on_events([Event, ...])`` once per read from the
      socket with every event it carried, in order (a consumer that hands events to another
      thread pays for one hand-over per read, not per event);
    * ``on_gap(reason)`` when events were missed (seq jump, new epoch, ``reset`` from the
      publisher): the consumer must resynchronise from a pull;
    * ``on_state(connected)`` when the stream comes up or goes down.

    Reconnects with exponential backoff and jitter, sending ``Last-Event-ID``; with
    ``last_event_id`` (a position saved by a previous run) the first connection resumes too.
    ``read_timeout`` should be a little longer than the publisher's heartbeat so a dead peer is
    noticed. Callback exceptions are logged, never fatal.

    With ``instance_id``, a stream that does not carry that ``X-Instance-Id`` (another
    instance's service on the configured port, or no sensor-hub service at all) is refused
    like a failed connection and retried with the same backoff; ``refused`` says why, and
    the log says it once per new reason (shared/identity.py). The request names the instance
    too, which gets it a stream slot kept for the instance's own followers (``StreamSlots``).
    """

    def __init__(self, url: str, on_event: Callable[[Event], None] | None = None,
                 on_gap: Callable[[str], None] | None = None,
                 on_state: Callable[[bool], None] | None = None,
                 backoff: tuple[float, float] = (0.1, 5.0), read_timeout: float = 15.0,
                 connect_timeout: float = 5.0, name: str | None = None,
                 on_events: Callable[[list[Event]], None] | None = None,
                 instance_id: str | None = None, last_event_id: str | None = None) -> None:
        import requests  # the follower is the only part that needs it

        if (on_event is None) == (on_events is None):
            raise ValueError("give exactly one of on_event and on_events")
        self.url = url
        self.name = name or url
        self._on_event, self._on_events, self._on_gap, self._on_state = on_event, on_events, on_gap, on_state
        self._batch: list[Event] = []
        self._backoff = backoff
        self._instance_id = instance_id
        self._timeouts = (connect_timeout, read_timeout)
        self._session = requests.Session()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self._thread: threading.Thread | None = None
        self._position: tuple[str, int] | None = parse_event_id(last_event_id)
        self.connected = False
        self.refused: str | None = None  # why the last stream was refused as not ours
        self.connects = 0
        self.failures = 0
        self.gaps = 0
        self.events = 0
        self.heartbeats = 0

    @property
    def last_event_id(self) -> str | None:
        return f"{self._position[0]}-{self._position[1]}" if self._position else None

    def start(self) -> EventFollower:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"follow {self.name}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and wait for the thread; returns promptly even while a read is blocked."""
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            _abort(response)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._session.close()

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            received = False
            try:
                received = self._follow_once()
            except ForeignInstance as exc:
                self.failures += 1
                if exc.reason != self.refused:  # once per reason: retries do not flood the log
                    log.warning("event stream %s refused: %s", self.name, exc.reason)
                self.refused = exc.reason
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect later
                self.failures += 1
                self.refused = None
                if not self._stop.is_set():
                    level = logging.WARNING if attempt == 0 else logging.DEBUG
                    log.log(level, "event stream %s: %s", self.name, _describe(exc))
            finally:
                with self._lock:
                    response, self._response = self._response, None
                if response is not None:
                    response.close()
                if self.connected:
                    self.connected = False
                    self._call(self._on_state, False)
            attempt = 0 if received else attempt + 1
            low, high = self._backoff
            delay = min(high, low * 2 ** max(attempt - 1, 0)) * random.uniform(0.5, 1.0)
            self._stop.wait(delay)

    def _follow_once(self) -> bool:
        """One connection: stream until it ends. True when it carried an event or a heartbeat
        (a peer that accepts and hangs up at once must not make us reconnect in a tight loop)."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self._instance_id is not None:  # one of the instance's own followers: a kept slot (StreamSlots)
            headers[INSTANCE_HEADER] = self._instance_id
        if self._position is not None:
            headers["Last-Event-ID"] = self.last_event_id
        response = self._session.get(self.url, headers=headers, stream=True,
                                     timeout=self._timeouts)
        with self._lock:
            self._response = response
        if self._stop.is_set():
            return False
        # Whose stream it is comes first: another instance's answer is refused whatever it says.
        check_instance(self.url, response.headers, self._instance_id)
        if response.status_code != 200:
            raise ConnectionError(f"HTTP {response.status_code} from {self.url}")
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("text/event-stream"):
            raise ConnectionError(f"{self.url} is not an event stream (Content-Type {content_type!r})")
        self.connected = True
        self.refused = None
        self.connects += 1
        log.info("event stream %s connected%s", self.name,
                 f" (resuming after {headers['Last-Event-ID']})" if "Last-Event-ID" in headers else "")
        self._call(self._on_state, True)
        parser = SSEParser()
        events_before, heartbeats_before = self.events, self.heartbeats
        for chunk in _chunks(response):
            for message in parser.feed(chunk):
                self._handle(message)
            self._deliver()
            self.heartbeats += parser.comments
            parser.comments = 0
            if self._stop.is_set():
                break
        if not self._stop.is_set():
            log.warning("event stream %s ended; reconnecting", self.name)
        return self.events > events_before or self.heartbeats > heartbeats_before

    def _handle(self, message: SSEMessage) -> None:
        position = parse_event_id(message.id)
        kind = message.event or "message"
        if message.data is None:  # id only: the publisher telling us where the stream is
            if position is not None:
                self._check_gap(position)
            return
        if kind == RESET:
            reason = "reset"
            try:
                reason = str(json.loads(message.data).get("reason", reason))
            except (ValueError, AttributeError):
                pass
            self._gap(f"reset: {reason}")
            if position is not None:
                self._position = position
            return
        if position is not None:
            if self._position == position or (
                    self._position and position[0] == self._position[0]
                    and position[1] <= self._position[1]):
                return  # already delivered (a replay overlapping what we had)
            self._check_gap(position)
        try:
            data = jsonio.loads(message.data)
        except ValueError:
            log.warning("event stream %s: data is not JSON: %.200r", self.name, message.data)
            return
        if not isinstance(data, dict):
            data = {"type": kind, "value": data}
        epoch, seq = position or ("", -1)
        self.events += 1
        event = Event(message.id or "", epoch, seq, kind, data)
        if self._on_events is not None:
            self._batch.append(event)
        else:
            self._call(self._on_event, event)

    def _deliver(self) -> None:
        """Hand the events of one read to ``on_events`` (before any gap that follows them)."""
        if self._batch:
            batch, self._batch = self._batch, []
            self._call(self._on_events, batch)

    def _check_gap(self, position: tuple[str, int]) -> None:
        previous, self._position = self._position, position
        if previous is None:
            return
        if position[0] != previous[0]:
            self._gap(f"epoch changed ({previous[0]} -> {position[0]})")
        elif position[1] > previous[1] + 1:
            self._gap(f"missed {position[1] - previous[1] - 1} events")

    def _gap(self, reason: str) -> None:
        self._deliver()
        self.gaps += 1
        log.warning("event stream %s: gap (%s); consumer resynchronises", self.name, reason)
        self._call(self._on_gap, reason)

    def _call(self, callback: Callable[..., Any] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("event stream %s: callback %s failed", self.name,
                          getattr(callback, "__name__", callback))


def _chunks(response: Any) -> Iterator[bytes]:
    """Bytes as they arrive (``read1``), not waiting for a full buffer or the end."""
    raw = response.raw
    while True:
        chunk = raw.read1(65536) if hasattr(raw, "read1") else raw.read(1)
        if not chunk:
            return
        yield chunk


def _abort(response: Any) -> None:
    """Wake a thread blocked reading ``response`` by shutting its socket down.

    Closing the response from another thread would wait for the reader's buffer lock, i.e.
    for the read timeout; a socket shutdown makes the blocked read return at once.
    """
    sock = _socket_of(response)
    if sock is None:
        response.close()  # last resort: returns when the reader's timeout fires
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _socket_of(response: Any) -> socket.socket | None:
    raw = response.raw
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if not isinstance(sock, socket.socket):
        # http.client hands the socket to the response: _fp (HTTPResponse).fp (buffered
        # SocketIO).raw._sock
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."
