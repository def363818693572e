"""The bridge's health for the container's HEALTHCHECK: a small JSON file in the run directory.

The bridge has no HTTP port (one more port per instance would be one more thing to clash on a
host network), so it says how it is in ``<run_dir>/bridge-health.json``: whether the broker link
is up (and if not, why: the last failure, e.g. a TLS handshake), whether the aggregator answered,
and where the outbox keeps messages (its file, or memory while the disk refuses), rewritten on
every change and every few seconds. A file older than ``STALE_AFTER_S`` means the bridge is hung
or gone; scripts/healthcheck.py reads it with ``bridge_problems`` and ``bridge_notes``.

Problems of the bridge's own parts are also said on the instance's error topic
(:class:`ProblemReportFeature`): a controller reads MQTT, not the container's health.
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
        line = f"mqtt_bridge: not connected to the broker {report.get('broker', '')}".rstrip()
        reason = (report.get("broker_link") or {}).get("reason")
        problems.append(f"{line}: {reason}" if reason else line)
    if not report.get("aggregator_ready"):
        problems.append("mqtt_bridge: the state aggregator has not answered")
    outbox = report.get("outbox") or {}
    if outbox.get("problem"):  # still delivering, but a restart now would lose what memory holds
        problems.append(f"mqtt_bridge: outbox: {outbox['problem']}; {outbox.get('pending', 0)} message(s) "
                        "held in memory only")
    return problems


def bridge_notes(run_dir: Path) -> list[str]:
    """What the bridge got over by itself but an operator should know (not a reason to be unhealthy)."""
    try:
        report = json.loads(health_file(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # bridge_problems says so
    return [f"mqtt_bridge: an unreadable outbox file was set aside as {path} (kept for inspection)"
            for path in (report.get("outbox") or {}).get("set_aside", [])]


class HealthFileFeature(Feature):
    def __init__(self, ctx: BridgeContext) -> None:
        super().__init__(ctx)
        self.path = health_file(ctx.settings.run_dir)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_failed = False
        for event in ("mqtt_connected", "mqtt_disconnected", "aggregator_ready", "broker_link_changed",
                      "outbox_problem", "outbox_recovered"):
            ctx.bus.on(event, self._changed)

    def _changed(self, **_: Any) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bridge health file", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:  # a write under way would put the file back after the unlink
            self._thread.join(1.0)
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
                  "aggregator_ready": self.ctx.aggregator_ready, "broker": f"{mqtt.host}:{mqtt.port}",
                  "broker_link": self.ctx.link.state.report(), "outbox": self.ctx.link.outbox.health()}
        temporary = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(report), encoding="utf-8")
            os.replace(temporary, self.path)  # readers never see half a file
        except OSError as exc:
            if not self._write_failed:  # once, not every REFRESH_S: a full disk would flood the log
                log.warning("cannot write the health file %s: %s", self.path, exc)
            self._write_failed = True
            return
        if self._write_failed:
            log.info("health file %s written again", self.path)
            self._write_failed = False


class ProblemReportFeature(Feature):
    """The outbox's problems (a file set aside, a disk that refuses writes) on the instance's
    error topic, once each. They go through the outbox like every error, so one found before the
    first CONNACK is delivered after it."""

    def __init__(self, ctx: BridgeContext) -> None:
        super().__init__(ctx)
        ctx.bus.on("outbox_problem", self._report)

    def _report(self, code: str, message: str) -> None:
        self.ctx.publish_error(None, code, message, severity="error")
