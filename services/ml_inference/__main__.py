"""``python -m services.ml_inference``: the ML inference service under gunicorn on :5004."""
from __future__ import annotations

import sys

from shared.config import load_settings_or_exit
from shared.server import serve

from .app import create_app


def main() -> int:
    settings = load_settings_or_exit("ml_inference")
    serve(create_app, settings, "ml_inference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
