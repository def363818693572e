"""What every service's Flask app shares: JSON errors (never HTML), JSON responses that are
pretty for curl, the ``X-Instance-Id`` header, ``/health`` and ``/metrics`` building blocks.
The only Flask in shared/ besides handler_api.py and server.py: the domain cores below the apps
keep their ``ErrorLog`` (shared/error_log.py) and ``Metrics`` (shared/metrics.py) without it.

    app = service_app(__name__, settings, error_log, metrics)   # errors, instance, token, /metrics
    raise NotFound("UNKNOWN_DEVICE", "No device 'x'.", known=["t1"])   # in a core or a route: a JSON 404
"""
from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, has_request_context, request
from werkzeug.exceptions import HTTPException

from shared import jsonio
from shared.api_token import HEADER as AUTH_HEADER
from shared.api_token import OPEN_METHODS, ApiToken
from shared.commands import CommandError
from shared.error_log import ErrorLog
from shared.errors import Conflict, DomainError, InvalidRequest, NotFound, Unavailable
from shared.identity import INSTANCE_HEADER
from shared.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from shared.metrics import Metrics
from shared.sse import OWN_FOLLOWER_ENVIRON

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

BODY_BYTES_MAX = 1024 * 1024
"""The largest request body any service takes (the model's batch of 1,024 inputs is about 100 KB;
a command at most 64 KiB): a longer one is refused 413 ``PAYLOAD_TOO_LARGE``, unread, by the
server before any app code (shared/server.py), and by Flask where an app is served otherwise."""


HTTP_STATUS: dict[type[DomainError], int] = {InvalidRequest: 400, NotFound: 404, Conflict: 409, Unavailable: 503}
"""The HTTP status of each kind of refusal a domain core raises (shared/errors.py): the one
place where the domain's words become HTTP's."""


def http_status(exc: DomainError) -> int:
    """The status of ``exc``'s kind (a subclass inherits its parent's); 500 for a kind not listed."""
    for kind in type(exc).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 500


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
    """Every error leaves ``app`` as JSON: a core's refusal (shared/errors.py) with its kind's
    status from ``HTTP_STATUS``, a command's (``CommandError``) with its code's; uncaught
    exceptions are logged (with traceback) and recorded in ``error_log``, and the client gets a
    sentence, never a traceback. A body over ``BODY_BYTES_MAX`` is one of those errors (413),
    before a route reads any of it."""
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = BODY_BYTES_MAX

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError) -> Response:
        return json_response(exc.to_dict(), http_status(exc))

    @app.errorhandler(CommandError)
    def _command_error(exc: CommandError) -> Response:
        # A command's codes carry their statuses in shared/commands.py: the MQTT side reports them too.
        return json_response(exc.to_dict(), exc.status)

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


def install_metrics(app: Flask, metrics: Metrics) -> None:
    """``GET /metrics`` of ``app`` from ``metrics``, plus request counts and latencies by route
    (not by raw path, so unknown URLs cannot blow up the number of series)."""
    requests_total = metrics.counter("http_requests_total", "HTTP requests", ("method", "route", "status"))
    latency = metrics.histogram("http_request_duration_seconds", "HTTP request time until the "
                                "response starts", ("route",))

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

    def _metrics() -> Response:
        return Response(metrics.exposition(), mimetype=METRICS_CONTENT_TYPE)

    app.add_url_rule("/metrics", "metrics", _metrics, methods=["GET"])


def service_app(import_name: str, settings: Settings, error_log: ErrorLog | None, metrics: Metrics) -> Flask:
    """A service's Flask app with what every service's answers share: JSON errors (recorded in
    ``error_log``), the instance header, the API token on state-changing calls, ``/metrics``.
    The service adds its own routes."""
    app = Flask(import_name)
    install_error_handlers(app, error_log)
    install_instance_header(app, settings.instance_id)
    install_api_token(app, settings.api_token)
    install_metrics(app, metrics)
    return app
