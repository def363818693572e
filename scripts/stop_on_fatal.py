"""supervisord event listener: a program that cannot start stops the whole container.

supervisord gives a program ``startretries`` tries and then leaves it FATAL while it, PID 1,
stays up; the container would look alive with a piece missing and Docker's restart policy would
never act. On PROCESS_STATE_FATAL this listener says which program failed and asks supervisord
to shut down (SIGTERM to its parent), so the container exits and the platform restarts it with
Docker's backoff. stdout is the listener protocol's channel; messages go to stderr.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import TextIO

from supervisor import childutils


def fatal_program(headers: dict[str, str], payload: str) -> str | None:
    """The program named by a PROCESS_STATE_FATAL event, or None for any other event."""
    if headers.get("eventname") != "PROCESS_STATE_FATAL":
        return None
    fields = childutils.get_headers(payload.split("\n", 1)[0])
    return fields.get("processname") or "?"


def run(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, supervisord_pid: int | None = None) -> None:
    parent = supervisord_pid or os.getppid()
    while True:
        headers, payload = childutils.listener.wait(stdin, stdout)
        program = fatal_program(headers, payload)
        if program is not None:
            print(f"sensor-hub: {program} could not start (FATAL after its retries); stopping the "
                  "container so that its restart policy starts it again", file=sys.stderr, flush=True)
            os.kill(parent, signal.SIGTERM)
        childutils.listener.ok(stdout)


if __name__ == "__main__":
    run()
