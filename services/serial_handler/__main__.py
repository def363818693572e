"""``python -m services.serial_handler``: the serial handler under gunicorn on :5001."""
from __future__ import annotations

import sys

from shared.server import main

from .app import create_app

if __name__ == "__main__":
    # A reading should not wait the default 5 ms for the GIL while another thread computes.
    sys.setswitchinterval(0.0005)
    sys.exit(main("serial_handler", create_app))
