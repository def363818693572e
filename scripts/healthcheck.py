"""Docker HEALTHCHECK: healthy when every program runs, every service's /health says 200 and
the bridge is connected to the broker and the aggregator.

Each problem is printed on its own line (``docker inspect`` shows them under State.Health), so
"unhealthy" always comes with the reason. Exit 0 healthy, 1 not.
"""
from __future__ import annotations

import sys
import urllib.request
import xmlrpc.client
from pathlib import Path

from shared.bridge_report import bridge_notes, bridge_problems
from shared.config import Settings, load_settings_or_exit

TIMEOUT_S = 1.5


def supervisor_problems(run_dir: Path) -> list[str]:
    """Programs that supervisord does not report RUNNING (STARTING, BACKOFF, FATAL, ...)."""
    from supervisor.xmlrpc import SupervisorTransport

    socket = run_dir / "supervisor.sock"
    transport = SupervisorTransport(None, None, f"unix://{socket}")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    try:
        processes = proxy.supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as exc:
        return [f"supervisord: not reachable on {socket} ({exc})"]
    return [f"{p['name']}: {p['statename']}" + (f" ({p['spawnerr']})" if p.get("spawnerr") else "")
            for p in processes if p["statename"] != "RUNNING"]


def service_problems(settings: Settings) -> list[str]:
    problems = []
    for name, address in settings.services.items():
        url = address.url + "/health"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                if response.status != 200:
                    problems.append(f"{name}: {url} answered {response.status}")
        except OSError as exc:  # HTTPError (503) is an OSError too
            problems.append(f"{name}: {url}: {exc}")
    return problems


def main() -> int:
    settings = load_settings_or_exit("unhealthy", exit_code=1)
    problems = supervisor_problems(settings.run_dir) + service_problems(settings) + bridge_problems(settings.run_dir)
    for problem in problems:
        print(f"unhealthy: {problem}")
    for note in bridge_notes(settings.run_dir):  # shown by `docker inspect` beside the verdict
        print(f"note: {note}")
    if not problems:
        print("healthy: every program running, every service ready, bridge connected")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
