"""The image's CMD: check the instance before anything starts, then become supervisord.

A bad instance file or a port another program holds stops the container here, with every
problem named (``docker logs`` shows them), instead of five programs failing one by one.
On success this process is replaced by supervisord, which stays PID 1.
"""
from __future__ import annotations

import os
import sys
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
    os.execvp("supervisord", ["supervisord", "-n", "-c", str(HERE / "supervisord.conf")])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
