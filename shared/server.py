"""How services are served.

``serve()`` is what every ``python -m services.<name>`` calls: the Flask app under gunicorn
with one worker (a serial port opens once; caches live in memory) and a gthread pool big
enough for the SSE clients, each of which holds a thread for as long as it is connected.

``run_in_thread()`` is for tests and benchmarks only: a real HTTP server on loopback inside
the current process (werkzeug, threaded), started and stopped in milliseconds.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import ThreadedWSGIServer

from shared.logs import setup_logging
from shared.ports import PORT_UNAVAILABLE_EXIT, port_problem

log = logging.getLogger(__name__)

DEFAULT_THREADS = 64
"""Request threads per service: SSE clients hold one each, so leave room for them."""


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
        "worker_class": "gthread",
        "threads": threads,
        # SSE streams never finish on their own: do not wait long for them on shutdown.
        "graceful_timeout": 3,
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
