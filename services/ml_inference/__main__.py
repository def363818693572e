"""``python -m services.ml_inference``: the ML inference service under gunicorn on :5004."""
from __future__ import annotations

import sys
from typing import Any

from shared.config import Settings
from shared.server import main


def create_app(settings: Settings) -> Any:
    """The app, imported only once the port is known to be free and the stop signal is handled:
    torch comes with it (seconds to import), and a taken port or a SIGTERM during start-up must
    not wait for it (shared/server.py)."""
    from .app import create_app as create

    return create(settings)


if __name__ == "__main__":
    sys.exit(main("ml_inference", create_app))
