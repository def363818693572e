"""Docker HEALTHCHECK: the instance works when the aggregator answers /health with 200.

The aggregator's /health already aggregates every service's status, so one request tells.
"""
from __future__ import annotations

import sys
import urllib.request

from shared.config import load_settings_or_exit


def main() -> int:
    settings = load_settings_or_exit("unhealthy", exit_code=1)
    url = settings.service("state_aggregator").url + "/health"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:  # HTTPError (503) is an OSError too
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
