"""``python -m services.http_poller``: the HTTP poller under gunicorn on :5002."""
from __future__ import annotations

import sys

from shared.server import main

from .app import create_app

if __name__ == "__main__":
    sys.exit(main("http_poller", create_app))
