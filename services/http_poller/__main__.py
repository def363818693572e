"""``python -m services.http_poller``: the HTTP poller under gunicorn on :5002."""
from __future__ import annotations

import sys

from shared.config import load_settings_or_exit
from shared.server import serve

from .app import create_app


def main() -> int:
    settings = load_settings_or_exit("http_poller")
    serve(create_app, settings, "http_poller")
    return 0


if __name__ == "__main__":
    sys.exit(main())
