"""``python -m services.state_aggregator``: the aggregator under gunicorn on its configured port."""
from __future__ import annotations

import sys

from shared.config import load_settings_or_exit
from shared.server import serve

from .app import create_app


def main() -> int:
    settings = load_settings_or_exit("state_aggregator")
    serve(create_app, settings, "state_aggregator")
    return 0


if __name__ == "__main__":
    sys.exit(main())
