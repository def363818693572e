"""``python -m services.state_aggregator``: the aggregator under gunicorn on its configured port."""
from __future__ import annotations

import sys

from shared.config import ConfigError, load_settings
from shared.server import serve

from .app import create_app


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"state_aggregator: {exc}", file=sys.stderr)
        return 2
    serve(create_app, settings, "state_aggregator")
    return 0


if __name__ == "__main__":
    sys.exit(main())
