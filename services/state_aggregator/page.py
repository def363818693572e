"""The status page (``GET /``): static files from ``static/``, served as they are (no build step).

Assets are small and change only with the connector, so they are revalidated on every load
(``Cache-Control: no-cache`` with an ETag: a reload costs a 304, an upgrade is seen at once).
The Content-Security-Policy lets the page talk to its own origin only: nothing on the page can
load from, or send to, anywhere but this aggregator, which is also what lets it work on a LAN
without internet.
"""
from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, abort, send_from_directory

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _asset(name: str) -> Response:
    suffix = Path(name).suffix
    if suffix not in CONTENT_TYPES:
        abort(404)
    response = send_from_directory(STATIC, name, max_age=0, conditional=True, etag=True)
    response.headers["Content-Type"] = CONTENT_TYPES[suffix]
    response.headers["Cache-Control"] = "no-cache"
    response.headers.update(SECURITY_HEADERS)
    return response


def install_page(app: Flask) -> None:
    """``GET /`` (the page) and ``GET /static/<file>`` (its modules, styles and icon)."""
    app.add_url_rule("/", "page", lambda: _asset("index.html"), methods=["GET"])
    app.add_url_rule("/static/<path:name>", "page_asset", _asset, methods=["GET"])
