"""``python -m services.state_aggregator``: the aggregator under gunicorn on its configured port."""
from __future__ import annotations

import sys

from shared.server import main

from .app import create_app

if __name__ == "__main__":
    sys.exit(main("state_aggregator", create_app))
