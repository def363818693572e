"""How services are served.

``serve()`` is what every ``python -m services.<name>`` calls: the Flask app under gunicorn
with one worker (a serial port opens once; caches live in memory) and a gthread pool big
enough for the SSE clients, each of which holds a thread for as long as it is connected.

``run_in_thread()`` is for tests and benchmarks only: a real HTTP server on loopback inside
the current process (werkzeug, threaded), started and stopped in milliseconds.
"""
from __future__ import annotations

import atexit
import logging
import os
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from gunicorn.workers.gthread import ThreadWorker
from werkzeug.serving import ThreadedWSGIServer

from shared.exiting import exit_now
from shared.logs import setup_logging
from shared.ports import PORT_UNAVAILABLE_EXIT, port_problem
from shared.sse import PROCESS_SHUTDOWN

log = logging.getLogger(__name__)

DEFAULT_THREADS = 64
"""Request threads per service: SSE clients hold one each, so leave room for them."""

GRACEFUL_TIMEOUT_S = 2
"""How long a stopping worker may finish its requests before gunicorn's master kills it; the
programs' ``stopwaitsecs`` (supervisord.conf, scripts/run_local.py) stay above it, so that
supervisord never kills a master that is still within its own deadline."""


class StreamEndingWorker(ThreadWorker):
    """gunicorn's gthread worker, asked to stop, ends the open event streams too.

    On SIGTERM gthread stops accepting and waits for its requests to finish. An open
    ``/events`` stream never finishes, so the worker used to hang until the master killed it
    at ``graceful_timeout`` ("Worker ... was sent SIGKILL! Perhaps out of memory?"), without
    its domain's atexit stop ever running. This worker begins ``PROCESS_SHUTDOWN`` as well:
    every stream ends at once, other requests finish as before, and the worker exits in a
    fraction of a second.
    """

    def init_process(self) -> None:
        self._stop_asked = threading.Event()
        self._served = False
        threading.Thread(target=self._end_streams_when_asked, name="end event streams", daemon=True).start()
        # Registered before the app is loaded, so it runs after the app's own atexit stops.
        atexit.register(self._exit_without_teardown)
        super().init_process()

    def run(self) -> None:
        # gunicorn writes every signal to PIPE (signal.set_wakeup_fd) but gthread's loop does not
        # poll it, so a SIGTERM was noticed only when the loop's 1 s select timed out.
        self.poller.register(self.PIPE[0], selectors.EVENT_READ, _drain)
        super().run()
        # The loop also ends without a signal: when the master died (kill -9 of the program).
        # Streams must end then too, or the orphan lives on, holding the serial port open and
        # stealing the lines of the program supervisord starts in its place.
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
                     access_log: bool = False, log_level: str = "info") -> dict[str, Any]:
    """The gunicorn settings every service runs with."""
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
        "worker_class": StreamEndingWorker,  # gthread that ends the event streams when asked to stop
        "threads": threads,
        # Event streams end at once on SIGTERM (StreamEndingWorker); a request still running this
        # long after it is cut, so that the connector stops within its 5 s (docs/architecture.md).
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        # gthread workers heartbeat from their main loop, so long streams do not trip this.
        "timeout": 30,
        "keepalive": 5,
        "loglevel": log_level.lower(),
        "accesslog": "-" if access_log else None,
        "logger_class": _PropagatingLogger,
    }


def serve(app_factory: Callable[[Any], Any], settings: Any, service_name: str,
          threads: int = DEFAULT_THREADS, access_log: bool = False) -> None:
    """Run ``app_factory(settings)`` under gunicorn on ``settings.service(service_name)``.

    Blocks until gunicorn exits (SIGTERM/SIGINT stop it gracefully). The app is built in the
    worker process, so threads it starts live there. A port that is already taken ends the
    program at once (exit status 3) with one log line naming the setting to change.
    """
    from gunicorn.app.base import BaseApplication

    level = str(getattr(settings, "log_level", "INFO"))
    fmt = str(getattr(settings, "log_format", "human"))
    password = getattr(getattr(settings, "mqtt", None), "password", None)
    secrets = [password] if password else []
    setup_logging(service_name, level=level, fmt=fmt, secrets=secrets)
    address = settings.service(service_name)
    problem = port_problem(settings, service_name)
    if problem is not None:  # before gunicorn, which would retry for seconds and not say what to change
        log.critical("%s", problem)
        raise SystemExit(PORT_UNAVAILABLE_EXIT)
    options = gunicorn_options(address.host, address.port, threads, access_log, level)
    options["proc_name"] = service_name

    class _Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app_factory(settings)

    log.info("%s starting on %s:%s (gunicorn gthread, %d threads)", service_name, address.host,
             address.port, threads)
    _Application().run()


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
