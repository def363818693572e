"""The bridge's health for the container's HEALTHCHECK: a small JSON file in the run directory.

The bridge has no HTTP port (one more port per instance would be one more thing to clash on a
host network), so it says how it is in ``<run_dir>/bridge-health.json``: whether the broker link
is up and whether the aggregator answered, rewritten on every change and every few seconds. A
file older than ``STALE_AFTER_S`` means the bridge is hung or gone; scripts/healthcheck.py reads
it with ``read_bridge_health``.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from bridge.context import BridgeContext, Feature

log = logging.getLogger(__name__)

FILE_NAME = "bridge-health.json"
REFRESH_S = 3.0
STALE_AFTER_S = 30.0


def health_file(run_dir: Path) -> Path:
    return run_dir / FILE_NAME


def bridge_problems(run_dir: Path, now: float | None = None) -> list[str]:
    """Why the bridge is not healthy, from its file; an empty list when it is."""
    path = health_file(run_dir)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"mqtt_bridge: no health report yet ({path})"]
    except (OSError, ValueError) as exc:
        return [f"mqtt_bridge: unreadable health report {path}: {exc}"]
    age = (time.time() if now is None else now) - float(report.get("written", 0))
    problems = []
    if age > STALE_AFTER_S:
        problems.append(f"mqtt_bridge: health report is {age:.0f} s old (the bridge is hung or stopped)")
    if not report.get("mqtt_connected"):
        problems.append(f"mqtt_bridge: not connected to the broker {report.get('broker', '')}".rstrip())
    if not report.get("aggregator_ready"):
        problems.append("mqtt_bridge: the state aggregator has not answered")
    return problems


class HealthFileFeature(Feature):
    def __init__(self, ctx: BridgeContext) -> None:
        super().__init__(ctx)
        self.path = health_file(ctx.settings.run_dir)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        for event in ("mqtt_connected", "mqtt_disconnected", "aggregator_ready"):
            ctx.bus.on(event, self._changed)

    def _changed(self, **_: Any) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bridge health file", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        try:
            self.path.unlink(missing_ok=True)  # a stopped bridge is not healthy
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.write()
            self._wake.wait(REFRESH_S)
            self._wake.clear()

    def write(self) -> None:
        mqtt = self.ctx.settings.mqtt
        report = {"written": time.time(), "pid": os.getpid(), "mqtt_connected": self.ctx.mqtt_connected,
                  "aggregator_ready": self.ctx.aggregator_ready, "broker": f"{mqtt.host}:{mqtt.port}"}
        temporary = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(report), encoding="utf-8")
            os.replace(temporary, self.path)  # readers never see half a file
        except OSError as exc:
            log.warning("cannot write the health file %s: %s", self.path, exc)
