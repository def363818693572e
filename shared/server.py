"""How services are served.

``main()`` is what every ``python -m services.<name>`` runs: its settings loaded (or the program
ends naming what is wrong), then ``serve()``: the Flask app served by gunicorn's gthread worker
in the program's own process, without gunicorn's master (one interpreter per service, not two:
docs/architecture.md, "Memory"; supervisord restarts a program that dies, as the master
restarted its worker), with a pool of threads big enough for the SSE clients, each of which
holds a thread for as long as it is connected.
No client can take every thread: a request reaches a thread only once it has arrived whole
(``WholeRequestWorker``), and event streams are bounded well below the thread count, with
slots kept for the connector's own followers (``stream_slots``, ``shared.sse.StreamSlots``).

``run_in_thread()`` is for tests and benchmarks only: a real HTTP server on loopback inside
the current process (werkzeug, threaded), started and stopped in milliseconds.
"""
from __future__ import annotations

import atexit
import errno
import io
import logging
import math
import os
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker
from werkzeug.serving import ThreadedWSGIServer

from shared import jsonio
from shared.exiting import exit_now
from shared.heap import settle_after_start
from shared.identity import INSTANCE_HEADER
from shared.logs import setup_logging
from shared.malloc import limit_arenas
from shared.ports import PORT_UNAVAILABLE_EXIT, port_problem
from shared.sse import PROCESS_SHUTDOWN, STREAM_SLOTS
from shared.web import BODY_BYTES_MAX

log = logging.getLogger(__name__)

DEFAULT_THREADS = 64
"""Request threads per service: SSE clients hold one each, so leave room for them."""

GRACEFUL_TIMEOUT_S = 2
"""How long a stopping service may finish its requests (gthread waits this long for them, then
leaves); the programs' ``stopwaitsecs`` (supervisord.conf, scripts/run_local.py) stay above it,
so that supervisord never kills a service that is still within its own deadline."""

REQUEST_READ_TIMEOUT_S = 5.0
"""How long a client has to send its whole request, header and body, once its connection opens
(or, kept alive, begins its next request): then it is answered 408 and cut. Meanwhile it holds
no thread (``WholeRequestWorker``)."""

HEADER_BYTES_MAX = 32 * 1024
"""The largest request header taken, request line and fields together (each field is also held
to gunicorn's own 8190 bytes, and the request line to 4094): larger is answered 431."""

ARRIVING_BYTES_MAX = 32 * 1024 * 1024
"""What the requests still arriving may hold in memory together (each at most its header and a
``BODY_BYTES_MAX`` body): beyond it, the connection that would add more is answered 503."""

REFUSAL_LOG_INTERVAL_S = 10.0
"""Requests the server refuses by itself are logged as one summary line per this long at most."""

_RECV_BYTES = 64 * 1024

_LINGER_S = 2.0
"""After a refusal, how long what the client still sends is read and dropped (``_refuse``)."""


def stream_slots(threads: int) -> tuple[int, int]:
    """(event streams open to anyone, more kept for this instance's own followers) in a pool of
    ``threads``: a quarter and a sixteenth, 16 and 4 of the 64, so that at least 11/16 of the
    threads are always there for requests (docs/architecture.md, "Capacity")."""
    return max(1, threads // 4), max(1, threads // 16)


@dataclass(frozen=True)
class _Refusal:
    """An answer the worker gives by itself, before any app code, in the JSON error shape."""

    status: int
    reason: str
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    def to_bytes(self, instance_id: str | None) -> bytes:
        body = jsonio.dumps_bytes({"error": self.code, "message": self.message})
        head = [f"HTTP/1.1 {self.status} {self.reason}", "Content-Type: application/json",
                f"Content-Length: {len(body)}", "Connection: close",
                *(f"{name}: {value}" for name, value in self.headers)]
        if instance_id:
            head.append(f"{INSTANCE_HEADER}: {instance_id}")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace") + body


_TOO_SLOW = _Refusal(408, "Request Timeout", "REQUEST_TIMEOUT",
                     f"The request did not arrive whole within {REQUEST_READ_TIMEOUT_S:g} s.")
_HEADER_TOO_LARGE = _Refusal(431, "Request Header Fields Too Large", "HEADERS_TOO_LARGE",
                             f"The request header is over {HEADER_BYTES_MAX} bytes.")
_LENGTH_REQUIRED = _Refusal(411, "Length Required", "LENGTH_REQUIRED",
                            "A request body needs a Content-Length header; chunked transfer is not taken.")
_BUSY = _Refusal(503, "Service Unavailable", "BUSY",
                 "Too many requests are arriving at once; try again in a second.", (("Retry-After", "1"),))
_INTERNAL_ERROR = _Refusal(500, "Internal Server Error", "INTERNAL_ERROR",
                           "Internal error; the service log has the details.")


def _body_too_large(length: int) -> _Refusal:
    return _Refusal(413, "Payload Too Large", "PAYLOAD_TOO_LARGE",
                    f"The request body is {length} bytes; this service takes at most {BODY_BYTES_MAX}.")


_PARSE_ERRORS: tuple[tuple[type[Exception], int, str, str], ...] = (
    (http_errors.LimitRequestLine, 414, "URI Too Long", "REQUEST_LINE_TOO_LONG"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "HEADERS_TOO_LARGE"),
    (http_errors.InvalidRequestLine, 400, "Bad Request", "INVALID_REQUEST_LINE"),
    (http_errors.InvalidRequestMethod, 400, "Bad Request", "INVALID_METHOD"),
    (http_errors.InvalidHTTPVersion, 400, "Bad Request", "INVALID_HTTP_VERSION"),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented", "UNSUPPORTED_TRANSFER_CODING"),
    (http_errors.ParseException, 400, "Bad Request", "INVALID_REQUEST"),  # headers, folding, the rest
)


def _parse_refusal(exc: BaseException) -> _Refusal | None:
    """The JSON answer to a request gunicorn's parser refused; None for anything else (not the
    client's doing)."""
    for kind, status, reason, code in _PARSE_ERRORS:
        if isinstance(exc, kind):
            text = str(exc)
            return _Refusal(status, reason, code, text if len(text) <= 200 else text[:200] + "...")
    return None


def _header_fields(head: bytes) -> dict[bytes, list[bytes]]:
    """The fields of a request header by lower-case name. Only to know how much of the request is
    still to come: gunicorn's parser reads the request itself, and refuses what is malformed."""
    fields: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            fields.setdefault(name.strip().lower(), []).append(value.strip().lower())
    return fields


def _content_length(fields: dict[bytes, list[bytes]]) -> int:
    """The body's length; 0 without one, and for a malformed field (gunicorn's parser refuses
    that request as soon as it has the header)."""
    values = set(fields.get(b"content-length", ()))
    if len(values) != 1:
        return 0
    (value,) = values
    return int(value) if value.isdigit() else 0


class _Arrival:
    """A request still arriving on one connection: its bytes so far and its deadline."""

    def __init__(self, deadline: float, data: bytes = b"") -> None:
        self.deadline = deadline
        self.data = bytearray(data)
        self.size: int | None = None  # header and body, once the header says
        self.expects_continue = False  # a client waiting for "100 Continue" before its body

    def examine(self, line_limit: int) -> bool | _Refusal:
        """True once the request is whole (or its request line is already too long, which
        gunicorn's parser refuses at once), a refusal when it can never be taken, else False."""
        if self.size is None:
            end = self.data.find(b"\r\n\r\n")
            if end < 0:
                if 0 < line_limit < len(self.data) - 2 and self.data.find(b"\r\n", 0, line_limit + 2) < 0:
                    return True
                return _HEADER_TOO_LARGE if len(self.data) > HEADER_BYTES_MAX else False
            if end + 4 > HEADER_BYTES_MAX:
                return _HEADER_TOO_LARGE
            fields = _header_fields(bytes(self.data[:end]))
            if b"transfer-encoding" in fields:
                return _LENGTH_REQUIRED
            length = _content_length(fields)
            if length > BODY_BYTES_MAX:
                return _body_too_large(length)
            self.size = end + 4 + length
            self.expects_continue = fields.get(b"expect") == [b"100-continue"] and len(self.data) < self.size
        return len(self.data) >= self.size


class _RefusalTally:
    """Requests the worker refused by itself, logged as one line per interval however many (a
    flood of them must not flood the log)."""

    def __init__(self, interval: float = REFUSAL_LOG_INTERVAL_S) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._logged_at = -math.inf

    def add(self, code: str) -> None:
        with self._lock:
            self._counts[code] += 1

    def summary(self, now: float) -> str | None:
        """The line to log now, if any: the first refusal at once, the next ones an interval later."""
        with self._lock:
            if not self._counts or now - self._logged_at < self._interval:
                return None
            counts, self._counts = self._counts, Counter()
            self._logged_at = now
        listed = ", ".join(f"{count} {code}" for code, count in counts.most_common())
        return f"refused {sum(counts.values())} request(s) before they reached the app: {listed}"


def _unparsed(conn: TConn) -> bytes:
    """What a kept-alive connection's parser read beyond its last request (the start of a
    pipelined next one): it belongs to the request now arriving."""
    if conn.parser is None:
        return b""
    unreader = conn.parser.unreader
    data = unreader.buf.getvalue()
    unreader.buf = io.BytesIO()
    return data


class WholeRequestWorker(ThreadWorker):
    """gunicorn's gthread worker that gives a connection to a thread only once its whole request
    has arrived, and answers in JSON what it refuses.

    gthread hands a connection to its pool when the first byte arrives, and the thread then
    reads the rest with a blocking socket and no deadline: neither ``timeout`` (the worker's
    heartbeat) nor ``keepalive`` (idle time between two requests) bounds it. So 200 clients that
    sent half a header held every one of the 64 threads, and /devices and the bridge's commands
    waited until they left; a client that connected and said nothing was never closed either.
    Here the main loop reads each request itself, without blocking, as its bytes come: the
    header, then the body its Content-Length announces. A thread gets the request whole, so the
    app never waits for a client, and half-sent requests cost a buffer, not a thread. A request
    not whole ``REQUEST_READ_TIMEOUT_S`` after its connection opened (or came back from
    keep-alive) is answered 408 and cut; one that can never be taken (header over
    ``HEADER_BYTES_MAX``, body over ``BODY_BYTES_MAX``, chunked) as soon as its header says so,
    its body unread. These answers, and gunicorn's own to a malformed request (``handle_error``:
    HTML pages before), are the JSON error shape of docs/rest-api.md.
    """

    instance_id: str | None = None
    """Named (X-Instance-Id) on the answers the worker gives by itself; ``gunicorn_options`` sets it."""

    def init_process(self) -> None:
        self._arriving: dict[TConn, _Arrival] = {}  # main loop only; earliest deadline first
        self._arriving_bytes = 0
        self._lingering: dict[TConn, float] = {}  # refused, reading what the client still sends
        self._refusals = _RefusalTally()
        super().init_process()

    def accept(self, server: Any, listener: socket.socket) -> None:
        if self.cfg.is_ssl:  # the bytes are TLS until a thread wraps the socket: gthread's way
            super().accept(server, listener)
            return
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = TConn(self.cfg, sock, client, server)  # non-blocking
        self.nr_conns += 1
        self._arriving[conn] = _Arrival(time.monotonic() + REQUEST_READ_TIMEOUT_S)
        with self._lock:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        if self.cfg.is_ssl:
            super().on_client_socket_readable(conn, client)
            return
        arrival = self._arriving.get(conn)
        if arrival is None:  # kept alive, and its next request begins
            with self._lock:
                try:
                    self._keep.remove(conn)
                except ValueError:
                    return  # closed as idle a moment ago
            arrival = self._arriving[conn] = _Arrival(time.monotonic() + REQUEST_READ_TIMEOUT_S, _unparsed(conn))
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client left before its request was whole
            self._close(conn)
            return
        arrival.data += data
        self._arriving_bytes += len(data)
        verdict = arrival.examine(self.cfg.limit_request_line)
        if verdict is False and self._arriving_bytes > ARRIVING_BYTES_MAX:
            verdict = _BUSY
        if verdict is True:
            self._hand_over(conn)
        elif verdict is not False:
            self._refuse(conn, verdict)
        elif arrival.expects_continue:
            arrival.expects_continue = False
            self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")

    def run(self) -> None:
        super().run()
        self._log_refusals(math.inf)  # what the last interval still held

    def murder_keepalived(self) -> None:
        """gthread calls this on every turn of its main loop (at least once a second)."""
        super().murder_keepalived()
        self._cut_late_arrivals()
        self._log_refusals(time.monotonic())

    def _log_refusals(self, now: float) -> None:
        summary = self._refusals.summary(now)
        if summary is not None:
            self.log.warning("%s", summary)

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """A request gunicorn's parser refused (a bad request line, a malformed or oversized
        header), or an error outside the app: the JSON error shape instead of an HTML page."""
        refusal = _parse_refusal(exc)
        if refusal is None:  # not the client's doing: logged with its traceback, as gunicorn does
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
            refusal = _INTERNAL_ERROR
        else:
            self._refusals.add(refusal.code)
        try:
            gunicorn_util.write_nonblock(client, refusal.to_bytes(self.instance_id))
        except Exception:  # noqa: BLE001 - the client is gone; nothing to tell it
            self.log.debug("could not send the error answer")

    def _cut_late_arrivals(self) -> None:
        now = time.monotonic()
        late = []
        for conn, arrival in self._arriving.items():  # deadlines are in insertion order
            if arrival.deadline > now:
                break
            late.append((conn, arrival))
        for conn, arrival in late:
            if arrival.data:
                self._refuse(conn, _TOO_SLOW)
            else:  # connected and never said a word: nothing to answer
                self._refusals.add("NO_REQUEST")
                self._close(conn)
        done = []
        for conn, deadline in self._lingering.items():  # insertion order too
            if deadline > now:
                break
            done.append(conn)
        for conn in done:
            self._close(conn)

    def _hand_over(self, conn: TConn) -> None:
        arrival = self._arriving.pop(conn)
        self._arriving_bytes -= len(arrival.data)
        with self._lock:
            self.poller.unregister(conn.sock)
        conn.init()  # blocking from here on; gunicorn's parser reads what arrived
        conn.parser.unreader.unread(bytes(arrival.data))
        self.enqueue_req(conn)

    def _refuse(self, conn: TConn, refusal: _Refusal) -> None:
        """Answer, then read and drop what the client still sends for up to ``_LINGER_S``:
        closing with its bytes unread would reset the connection, and the client could lose
        the answer (a 413 while it is still sending its 10 MB)."""
        self._refusals.add(refusal.code)
        self._send(conn, refusal.to_bytes(self.instance_id))
        arrival = self._arriving.pop(conn)
        self._arriving_bytes -= len(arrival.data)
        try:
            conn.sock.shutdown(socket.SHUT_WR)  # the answer is all there is
        except OSError:
            self._close(conn)
            return
        self._lingering[conn] = time.monotonic() + _LINGER_S
        with self._lock:
            self.poller.modify(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))

    def _drain(self, conn: TConn, client: socket.socket) -> None:
        try:
            if conn.sock.recv(_RECV_BYTES):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close(conn)  # the client is done too

    @staticmethod
    def _send(conn: TConn, data: bytes) -> None:
        try:
            conn.sock.send(data)  # non-blocking; a few hundred bytes fit any socket's buffer
        except OSError:
            pass  # the client is gone

    def _close(self, conn: TConn) -> None:
        arrival = self._arriving.pop(conn, None)
        if arrival is not None:
            self._arriving_bytes -= len(arrival.data)
        self._lingering.pop(conn, None)
        with self._lock:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass  # not registered
        self.nr_conns -= 1
        conn.close()


class StreamEndingWorker(WholeRequestWorker):
    """gunicorn's gthread worker, asked to stop, ends the open event streams too.

    On SIGTERM gthread stops accepting and waits for its requests to finish. An open
    ``/events`` stream never finishes, so the worker used to hang until the master killed it
    at ``graceful_timeout`` ("Worker ... was sent SIGKILL! Perhaps out of memory?"), without
    its domain's atexit stop ever running. This worker begins ``PROCESS_SHUTDOWN`` as well:
    every stream ends at once, other requests finish as before, and the worker exits in a
    fraction of a second.

    It also bounds the streams this process serves (``stream_slots`` of its thread count), the
    threads a stream holds being threads that requests need.
    """

    def init_process(self) -> None:
        STREAM_SLOTS.configure(*stream_slots(self.cfg.threads))
        self._stop_asked = threading.Event()
        self._served = False
        threading.Thread(target=self._end_streams_when_asked, name="end event streams", daemon=True).start()
        # Registered before the app is loaded, so it runs after the app's own atexit stops.
        atexit.register(self._exit_without_teardown)
        super().init_process()

    def run(self) -> None:
        settle_after_start()  # the app is loaded: what it built is kept for good (shared/heap.py)
        # gunicorn writes every signal to PIPE (signal.set_wakeup_fd) but gthread's loop does not
        # poll it, so a SIGTERM was noticed only when the loop's 1 s select timed out.
        self.poller.register(self.PIPE[0], selectors.EVENT_READ, _drain)
        super().run()
        # The loop also ends without a signal: when the process that started this one died
        # (gunicorn's parent check; kill -9 of supervisord). Streams must end then too, or the
        # orphan lives on, holding its port and the serial port open and stealing the lines of
        # the program the next supervisord starts in its place.
        self._ask_to_stop()
        self._served = True

    def handle_exit(self, sig: int, frame: Any) -> None:  # SIGTERM: graceful
        if not self.booted:
            # Still loading the app (ml_inference imports torch for seconds): no request to
            # finish, and finishing the load first would outlast graceful_timeout and end in a
            # kill. os._exit, not exit_now: only it is safe inside a signal handler (no locks).
            os._exit(0)
        super().handle_exit(sig, frame)
        self._ask_to_stop()

    def handle_quit(self, sig: int, frame: Any) -> None:  # SIGINT, SIGQUIT: at once, yet exit joins the pool
        self._ask_to_stop()
        super().handle_quit(sig, frame)

    def _ask_to_stop(self) -> None:
        # Nothing more in a signal handler: ending the streams takes locks that the interrupted
        # thread may hold. The check keeps a second signal from re-entering Event.set.
        if not self._stop_asked.is_set():
            self._stop_asked.set()

    def _end_streams_when_asked(self) -> None:
        self._stop_asked.wait()
        ended = PROCESS_SHUTDOWN.begin()
        self.log.info("stopping: the event streams of %d publisher(s) ended", ended)

    def _exit_without_teardown(self) -> None:
        """After a normal stop, once the requests are done and the app's atexit stops have run,
        leave without the interpreter's teardown (with torch loaded, about 1 s of a stop that
        must fit in 5 s). A worker that failed keeps the normal exit and gunicorn's exit status."""
        if self._served:
            exit_now(0)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass  # empty: gunicorn made the pipe non-blocking


def gunicorn_options(host: str, port: int, threads: int = DEFAULT_THREADS,
                     access_log: bool = False, log_level: str = "info",
                     instance_id: str | None = None) -> dict[str, Any]:
    """The gunicorn settings every service runs with; ``instance_id`` is named on the answers the
    worker gives by itself (a refused request), as the app names it on its own."""
    from gunicorn import glogging

    class _PropagatingLogger(glogging.Logger):
        """gunicorn's own lines go through the root handler of shared.logs (one format,
        service name, redaction) instead of gunicorn's handlers."""

        def setup(self, cfg: Any) -> None:
            self.error_log.propagate = True
            self.error_log.setLevel(self.LOG_LEVELS.get(cfg.loglevel.lower(), logging.INFO))
            self.access_log.propagate = True
            self.access_log.setLevel(logging.INFO)

    return {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": 1,  # one process: a serial port can be opened only once; caches live in memory
        # gthread that reads requests whole before a thread takes them, answers in JSON, bounds
        # the event streams and ends them when asked to stop
        "worker_class": type("StreamEndingWorker", (StreamEndingWorker,), {"instance_id": instance_id}),
        "threads": threads,
        # Event streams end at once on SIGTERM (StreamEndingWorker); a request still running this
        # long after it is cut, so that the connector stops within its 5 s (docs/architecture.md).
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        # gthread workers heartbeat from their main loop, so long streams do not trip this. Neither
        # it nor keepalive (idle time between two requests) bounds a request still arriving:
        # REQUEST_READ_TIMEOUT_S does (WholeRequestWorker).
        "timeout": 30,
        "keepalive": 5,
        "loglevel": log_level.lower(),
        "accesslog": "-" if access_log else None,
        "logger_class": _PropagatingLogger,
    }


def serve(app_factory: Callable[[Any], Any], settings: Any, service_name: str,
          threads: int = DEFAULT_THREADS, access_log: bool = False) -> None:
    """Serve ``app_factory(settings)`` on ``settings.service(service_name)`` with gunicorn's
    gthread worker (``StreamEndingWorker``) in this very process: no gunicorn master.

    Returns when the worker stops (SIGTERM/SIGINT stop it gracefully), or when the process that
    started this one is gone (supervisord killed: the program must not live on holding its port
    or its serial line). A port that is already taken ends the program at once (exit status 3)
    with one log line naming the setting to change. Why one process: docs/architecture.md,
    "Memory: one process per program".
    """
    from gunicorn import sock
    from gunicorn.app.base import BaseApplication

    level = str(getattr(settings, "log_level", "INFO"))
    fmt = str(getattr(settings, "log_format", "human"))
    password = getattr(getattr(settings, "mqtt", None), "password", None)
    token = getattr(settings, "api_token", None)  # never written anyway; redacted should it ever be
    secrets = [s for s in (password, token.value if token is not None else None) if s]
    setup_logging(service_name, level=level, fmt=fmt, secrets=secrets)
    address = settings.service(service_name)
    problem = port_problem(settings, service_name)
    if problem is not None:  # before gunicorn, which would retry for seconds and not say what to change
        log.critical("%s", problem)
        raise SystemExit(PORT_UNAVAILABLE_EXIT)
    limit_arenas()  # before any thread
    options = gunicorn_options(address.host, address.port, threads, access_log, level,
                               getattr(settings, "instance_id", None))
    options["proc_name"] = service_name

    class _Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app_factory(settings)

    application = _Application()
    cfg = application.cfg
    logger = cfg.logger_class(cfg)
    listeners = sock.create_sockets(cfg, logger)
    log.info("%s starting on %s:%s (gunicorn gthread, %d threads, one process)", service_name, address.host,
             address.port, threads)
    # What gunicorn's master would do for its one worker, without the second interpreter: the
    # worker watches the process that started it (gunicorn: "Parent changed, shutting down"),
    # here supervisord, make run's or the container's, or a test.
    worker = cfg.worker_class(0, os.getppid(), listeners, application, cfg.timeout / 2.0, cfg, logger)
    worker.pid = os.getpid()
    try:
        worker.init_process()  # loads the app, serves until asked to stop or orphaned
    finally:
        worker.tmp.close()
        for listener in listeners:
            listener.close()


def main(service_name: str, app_factory: Callable[[Any], Any]) -> int:
    """``python -m services.<service_name>``: load the instance's settings (a config error ends
    the program with its message) and serve ``app_factory(settings)`` until stopped."""
    from shared.config import load_settings_or_exit

    serve(app_factory, load_settings_or_exit(service_name), service_name)
    return 0


class _ConnectionTrackingServer(ThreadedWSGIServer):
    """Remembers open connections so ``stop()`` can cut them like a dying process would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone


class ThreadedServer:
    """A running in-process HTTP server (tests and benchmarks only): ``.url``, ``.stop()``."""

    def __init__(self, server: _ConnectionTrackingServer) -> None:
        self._server = server
        self.host, self.port = server.server_address[:2]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"http {self.url}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop like a process that exits: stop accepting, close the listening socket and cut
        every open connection (so SSE streams end and their followers notice)."""
        self._server.shutdown()
        self._server.server_close()
        self._server.cut_connections()
        self._thread.join(5)

    def __enter__(self) -> ThreadedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> ThreadedServer:
    """Serve ``app`` from a background thread (tests/bench only, never production).

    ``port=0`` picks a free port; read it from ``.port``/``.url``. Threaded; streaming
    responses work; ``stop()`` cuts open connections.
    """
    return ThreadedServer(_ConnectionTrackingServer(host, port, app))
