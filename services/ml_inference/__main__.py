"""``python -m services.ml_inference``: the ML inference service under gunicorn on :5004."""
from __future__ import annotations

import sys
from typing import Any

from shared.config import Settings
from shared.server import main


def create_app(settings: Settings) -> Any:
    """The app, imported in gunicorn's worker only: torch comes with it, and a master that had
    imported torch took about a second to exit (its teardown), a fifth of the stop budget."""
    from .app import create_app as create

    return create(settings)


if __name__ == "__main__":
    sys.exit(main("ml_inference", create_app))
