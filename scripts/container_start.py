"""The image's CMD: check the instance before anything starts, then become supervisord.

A bad instance file or a port another program holds stops the container here, with every
problem named (``docker logs`` shows them), instead of five programs failing one by one.
On success this process is replaced by supervisord, which stays PID 1.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def main() -> int:
    from shared.preflight import main as preflight

    status = preflight([])
    if status != 0:
        return status
    run_dir = Path(os.environ.setdefault("SENSOR_HUB_RUN_DIR", "/tmp/sensor-hub"))
    run_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    supervisor_socket = run_dir / "supervisor.sock"
    supervisor_socket.unlink(missing_ok=True)  # left by this container's previous run (a restart keeps /tmp)
    _wake_supervisord_when_listening(supervisor_socket)
    os.execvp("supervisord", ["supervisord", "-n", "-c", str(HERE / "supervisord.conf")])
    return 0  # not reached


def _wake_supervisord_when_listening(path: Path, deadline_s: float = 10.0) -> None:
    """Save a second of every start.

    supervisord starts its programs only after its main loop's first wait, a 1 s poll, has
    passed (a signal does not end that wait: Python resumes the poll). A connection to its
    socket does: this child, forked before the exec, waits for the socket (made just before the
    loop), connects, and exits. supervisord reaps it and logs one "reaped unknown pid" line.
    """
    if os.fork() != 0:
        return
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                    connection.connect(str(path))
                break
            except OSError:  # not there yet, or not listening yet
                time.sleep(0.01)
    finally:
        os._exit(0)  # nothing of the parent's (buffers, atexit) runs twice


if __name__ == "__main__":
    sys.exit(main())
