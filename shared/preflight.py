"""``python -m shared.preflight``: can this instance start? Asked once, before anything starts.

The container's entrypoint runs it before supervisord, so that a broken instance file or a port
held by another program stops the start with every problem named at once, instead of five
programs failing one by one and being restarted in a loop.

Contract:

- Reads what every program reads: ``INSTANCE_NAME`` and the environment contract
  (``INSTANCES_DIR``, ``DATA_DIR``, ``MQTT_*``, ...; shared/config/env.py). No arguments.
- Checks, in order: the instance file and environment load and validate (every field-level
  problem, each with its path); then every service's ``config.services.<name>`` address can be
  listened on right now, bound exactly as gunicorn will bind it (every clash, not just the
  first). Ports are checked only with a config that loads: without one they are not known.
- Exit status 0 when the instance can start: one line on stdout naming the instance and its
  four addresses. Otherwise every problem on stderr, one self-contained line each, prefixed
  ``preflight:`` (``docker logs`` shows them as they are), then a summary line; exit status 2
  for a config that does not load (as every program's own start would), 3 for a port that
  cannot be listened on (as ``shared.server.serve`` would).
- Starts nothing, holds no port after it returns, writes nothing but ``DATA_DIR`` (created
  when missing, as every program does).

``main(argv)`` returns the status instead of exiting, for an entrypoint written in Python.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from shared.config import ConfigError, load_settings
from shared.ports import PORT_UNAVAILABLE_EXIT, bind_address, port_problems

CONFIG_INVALID_EXIT = 2
PREFIX = "preflight:"


def _report(problems: list[str], one: str, many: str, out: TextIO) -> None:
    for problem in problems:
        print(f"{PREFIX} {problem}", file=out)
    count = one if len(problems) == 1 else f"{len(problems)} {many}"
    print(f"{PREFIX} {count}; the instance does not start", file=out, flush=True)


def run(environ: Mapping[str, str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The checks of the module docstring; the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        source = f"{exc.source}: " if exc.source else ""
        _report([source + problem for problem in exc.problems], "1 config problem", "config problems", err)
        return CONFIG_INVALID_EXIT
    clashes = port_problems(settings)
    if clashes:
        _report(clashes, "1 service cannot listen", "services cannot listen", err)
        return PORT_UNAVAILABLE_EXIT
    addresses = ", ".join(f"{name} {bind_address(address)}" for name, address in settings.services.items())
    print(f"{PREFIX} instance {settings.instance_id} ({settings.config_file}) can start: {addresses}",
          file=out, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        print("usage: python -m shared.preflight   (no arguments; INSTANCE_NAME names the instance)",
              file=sys.stderr)
        return CONFIG_INVALID_EXIT
    return run()


if __name__ == "__main__":
    sys.exit(main())
