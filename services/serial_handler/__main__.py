"""``python -m services.serial_handler``: the serial handler under gunicorn on :5001."""
from __future__ import annotations

import sys

from shared.config import load_settings_or_exit
from shared.server import serve

from .app import create_app


def main() -> int:
    settings = load_settings_or_exit("serial_handler")
    # A reading should not wait the default 5 ms for the GIL while another thread computes.
    sys.setswitchinterval(0.0005)
    serve(create_app, settings, "serial_handler")
    return 0


if __name__ == "__main__":
    sys.exit(main())
