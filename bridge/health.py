"""The bridge's health for the container's HEALTHCHECK: a small JSON file in the run directory.

The bridge has no HTTP port (one more port per instance would be one more thing to clash on a
host network), so it says how it is in ``<run_dir>/bridge-health.json``: whether the broker link
is up (and if not, why: the last failure, e.g. a TLS handshake), whether the aggregator answered,
and where the outbox keeps messages (its file, or memory while the disk refuses), rewritten on
every change and every few seconds. A file older than ``STALE_AFTER_S`` means the bridge is hung
or gone. Reading it is shared/bridge_report.py's job (the health check, the aggregator's /health).

Problems of the bridge's own parts are also said on the instance's error topic
(:class:`ProblemReportFeature`): a controller reads MQTT, not the container's health.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from bridge.context import BridgeContext, Feature
from shared.bridge_report import FILE_NAME, STALE_AFTER_S, bridge_notes, bridge_problems, health_file

log = logging.getLogger(__name__)

__all__ = ["FILE_NAME", "STALE_AFTER_S", "bridge_notes", "bridge_problems", "health_file", "HealthFileFeature"]

REFRESH_S = 3.0


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
