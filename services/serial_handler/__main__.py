"""``python -m services.serial_handler``: the serial handler under gunicorn on :5001."""
from __future__ import annotations

import sys

from shared.config import ConfigError, load_settings
from shared.server import serve

from .app import create_app


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"serial_handler: {exc}", file=sys.stderr)
        return 2
    # A reading should not wait the default 5 ms for the GIL while another thread computes.
    sys.setswitchinterval(0.0005)
    serve(create_app, settings, "serial_handler")
    return 0


if __name__ == "__main__":
    sys.exit(main())
