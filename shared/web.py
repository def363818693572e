"""What every service's Flask app shares: JSON errors (never HTML), JSON responses that are
pretty for curl, the ``X-Instance-Id`` header, ``/health``, ``/errors`` and ``/metrics`` building
blocks.

    app = Flask(__name__)
    install_error_handlers(app, error_log)
    install_instance_header(app, settings.instance_id)
    install_api_token(app, settings.api_token)
    raise ApiError("UNKNOWN_DEVICE", "No device 'x'.", 404, known=["t1"])   # in a route
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask, Response, has_request_context, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from werkzeug.exceptions import HTTPException

from shared import jsonio
from shared.api_token import HEADER as AUTH_HEADER
from shared.api_token import OPEN_METHODS, ApiToken
from shared.clock import now_iso
from shared.identity import INSTANCE_HEADER
from shared.sse import OWN_FOLLOWER_ENVIRON

log = logging.getLogger(__name__)

BODY_BYTES_MAX = 1024 * 1024
"""The largest request body any service takes (the model's batch of 1,024 inputs is about 100 KB;
a command at most 64 KiB): a longer one is refused 413 ``PAYLOAD_TOO_LARGE``, unread, by the
server before any app code (shared/server.py), and by Flask where an app is served otherwise."""


class ApiError(Exception):
    """Raise in a route to answer ``{"error": code, "message": message, **extra}`` with ``status``."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.extra = code, message, status, extra


def wants_pretty() -> bool:
    """Humans get indented JSON: curl's User-Agent or ``?pretty=1``."""
    if not has_request_context():
        return False
    if request.args.get("pretty", "").lower() in ("1", "true", "yes"):
        return True
    return request.headers.get("User-Agent", "").startswith("curl/")


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``obj`` as JSON; indented (with a final newline) when a human is asking."""
    if wants_pretty():
        try:
            obj = jsonio.plain(obj)  # parts encoded in advance (jsonio.Encoded) as values
        except (TypeError, ValueError):
            pass  # what orjson cannot encode holds no encoded part: the standard library's way
        body = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    else:
        body = jsonio.dumps_bytes(obj)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def json_error(code: str, message: str, status: int, **extra: Any) -> Response:
    """The one error shape: ``{"error": "<CODE>", "message": "<sentence>", ...extra}``."""
    return json_response({"error": code, "message": message, **extra}, status)


def _code_name(exc: HTTPException) -> str:
    """``Method Not Allowed`` -> ``METHOD_NOT_ALLOWED``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", exc.name or "error").strip("_").upper() or "ERROR"


def install_error_handlers(app: Flask, error_log: ErrorLog | None = None) -> None:
    """Every error leaves ``app`` as JSON; uncaught exceptions are logged (with traceback)
    and recorded in ``error_log``, and the client gets a sentence, never a traceback. A body
    over ``BODY_BYTES_MAX`` is one of those errors (413), before a route reads any of it."""
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = BODY_BYTES_MAX

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return json_error(exc.code, exc.message, exc.status, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:  # the server's own answer to a longer body says the same (shared/server.py)
            return json_error("PAYLOAD_TOO_LARGE", f"The request body is over {app.config['MAX_CONTENT_LENGTH']} "
                              "bytes, the most this service takes.", 413)
        extra: dict[str, Any] = {}
        headers: dict[str, str] = {}
        valid = getattr(exc, "valid_methods", None)
        if status == 405 and valid:
            extra["allowed"] = sorted(valid)
            headers["Allow"] = ", ".join(sorted(valid))
        response = json_error(_code_name(exc), exc.description or exc.name, status, **extra)
        response.headers.update(headers)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.path)
        if error_log is not None:
            error_log.add("INTERNAL_ERROR", f"{request.method} {request.path}: {type(exc).__name__}: {exc}",
                          severity="error")
        return json_error("INTERNAL_ERROR", "Internal error; the service log has the details.", 500)


def install_instance_header(app: Flask, instance_id: str) -> None:
    """Every response of ``app`` — errors and ``/events`` streams included — names its instance
    in ``X-Instance-Id``, so a follower can refuse another instance's service on its port
    (shared/identity.py)."""

    @app.before_request
    def _note_own_follower() -> None:
        # A request naming this instance comes from one of the connector's own programs: an event
        # stream it opens gets a slot kept for them (shared/sse.py StreamSlots).
        request.environ[OWN_FOLLOWER_ENVIRON] = request.headers.get(INSTANCE_HEADER) == instance_id

    @app.after_request
    def _name_instance(response: Response) -> Response:
        response.headers[INSTANCE_HEADER] = instance_id
        return response


def install_api_token(app: Flask, token: ApiToken | None) -> None:
    """A state-changing request (any method but GET, HEAD, OPTIONS) to ``app`` must carry
    ``Authorization: Bearer <token>``, else it is answered 401 ``UNAUTHORIZED`` before any route
    runs; the answer says where the token is, never the token. Without a token (settings built
    from a dict with none given) every state-changing request is refused: never open by default."""
    if token is None:
        refusal = ("This instance has no API token configured, so state-changing calls are refused "
                   "(give one as SENSOR_HUB_API_TOKEN).")
    else:
        where = token.where if token.where.startswith("given as") else f"in the file {token.where}"
        refusal = (f"State-changing calls need the header 'Authorization: Bearer <token>'; "
                   f"this instance's token is {where}.")

    @app.before_request
    def _require_token() -> Response | None:
        if request.method in OPEN_METHODS:
            return None
        if token is not None and token.admits(request.headers.get(AUTH_HEADER)):
            return None
        response = json_error("UNAUTHORIZED", refusal, 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="sensor-hub"'
        return response


def health_response(checks: dict[str, tuple[bool, str]], **extra: Any) -> Response:
    """``200 {"status": "ok"}`` when every check passes, else ``503 {"status": "degraded",
    "reasons": ["<check>: <why>", ...]}``; both list every check."""
    reasons = [f"{name}: {detail}" for name, (ok, detail) in checks.items() if not ok]
    body = {
        "status": "degraded" if reasons else "ok",
        **({"reasons": reasons} if reasons else {}),
        "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()},
        **extra,
    }
    return json_response(body, 503 if reasons else 200)


class ErrorLog:
    """The recent errors of a service (``GET /errors``), newest last, bounded, thread-safe."""

    def __init__(self, source: str, maxlen: int = 200) -> None:
        self.source = source
        self._records: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.total = 0

    def add(self, error_code: str, message: str, severity: str = "error",
            device_id: str | None = None, **extra: Any) -> dict[str, Any]:
        record = {
            "timestamp": now_iso(),
            "source": self.source,
            "error_code": error_code,
            "message": message,
            "severity": severity,
            **({"device_id": device_id} if device_id is not None else {}),
            **extra,
        }
        with self._lock:
            self._records.append(record)
            self.total += 1
        return record

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)

    def response(self) -> Response:
        return json_response({"errors": self.list(), "total": self.total})


class Metrics:
    """Prometheus metrics of one app, in its own registry (never the process-global one:
    tests build many apps in one process and names would collide)."""

    def __init__(self, service: str, namespace: str = "sensor_hub") -> None:
        self.service = service
        self.namespace = namespace
        self.registry = CollectorRegistry()
        self._requests: Counter | None = None
        self._latency: Histogram | None = None

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, namespace=self.namespace, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labels, namespace=self.namespace, registry=self.registry)

    def gauge_function(self, name: str, doc: str, fn: Callable[[], float]) -> Gauge:
        """A gauge read from ``fn()`` at scrape time (queue lengths, client counts...)."""
        gauge = self.gauge(name, doc)
        gauge.set_function(fn)
        return gauge

    def histogram(self, name: str, doc: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS) -> Histogram:
        return Histogram(name, doc, labels, namespace=self.namespace, registry=self.registry,
                         buckets=buckets)

    def response(self) -> Response:
        return Response(generate_latest(self.registry), mimetype=CONTENT_TYPE_LATEST)

    def install(self, app: Flask) -> None:
        """``GET /metrics`` plus request counts and latencies by route (not by raw path, so
        unknown URLs cannot blow up the number of series)."""
        self._requests = self.counter("http_requests_total", "HTTP requests", ("method", "route", "status"))
        self._latency = self.histogram("http_request_duration_seconds", "HTTP request time until the "
                                       "response starts", ("route",))
        requests_total, latency = self._requests, self._latency

        @app.before_request
        def _start_timer() -> None:
            request.environ["shared.web.start"] = time.perf_counter()

        @app.after_request
        def _count(response: Response) -> Response:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            requests_total.labels(request.method, route, str(response.status_code)).inc()
            started = request.environ.get("shared.web.start")
            if started is not None:
                latency.labels(route).observe(time.perf_counter() - started)
            return response

        app.add_url_rule("/metrics", "metrics", self.response, methods=["GET"])
