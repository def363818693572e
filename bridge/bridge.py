"""The MQTT bridge: wires the link, the bus and the features together.

Features (each a small class listening on the bus, like zigbee2mqtt's extensions):
status (status.py), state push + heartbeat (state.py), commands and bad input
(commands.py), meta (meta.py), Home Assistant discovery (discovery.py), the health file
and the bridge's own problems on the error topic (health.py).
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from bridge.aggregator import AggregatorClient
from bridge.bus import Bus
from bridge.client import IncomingMessage, MqttLink
from bridge.commands import CommandFeature
from bridge.context import BridgeContext, Feature
from bridge.discovery import DiscoveryFeature
from bridge.health import HealthFileFeature, ProblemReportFeature
from bridge.meta import MetaFeature
from bridge.outbox import Outbox
from bridge.state import StateFeature
from bridge.status import StatusFeature
from shared.config import Settings
from shared.topics import Topics

log = logging.getLogger(__name__)

PROGRAM = "bridge"
"""Suffix of the client id: ``<prefix>_<instance>_bridge`` (unique per program)."""

SHUTDOWN_DEADLINE_S = 1.5
"""The whole graceful stop, commands and flush included: the connector must stop within 5 s of
SIGTERM (Docker waits 10 s), and the services stop after the bridge (docs/architecture.md,
"Stopping"). Only a broker that is away makes the bridge use all of it, waiting for it to return."""
FLUSH_SHARE_S = 0.5
"""What running commands may never take of the deadline: publishing ``offline`` and flushing."""


OUTBOX_MIN = 10_000
OUTBOX_PER_DEVICE = 10
"""Outbox rows a device may need at once: its state, a topic per property (a LED has four), its
availability, and room for events. The first publication of every device alone is several rows
each: with a fixed 10,000, an instance of 5,000 devices dropped the oldest 1,500 devices' retained
state at start (bench e2e_scale_5000_devices), and they stayed missing on MQTT until they changed."""


def outbox_bound(devices: int) -> int:
    return max(OUTBOX_MIN, OUTBOX_PER_DEVICE * devices)


class MqttBridge:
    def __init__(self, settings: Settings, aggregator_url: str | None = None, outbox_max: int | None = None,
                 reconnect: tuple[int, int] = (1, 5), shutdown_deadline_s: float = SHUTDOWN_DEADLINE_S,
                 outbox_retry_s: float = 2.0) -> None:
        self.settings = settings
        self.shutdown_deadline_s = shutdown_deadline_s
        mqtt = settings.mqtt
        topics = Topics(mqtt.base_topic, settings.instance_id, mqtt.ha_prefix)
        bus = Bus()
        # A problem of the outbox's file (set aside, disk full) is found in the sender's thread, or
        # here: both only enqueue, and the bus reports it (health.py) once the features run.
        if outbox_max is None:
            outbox_max = outbox_bound(len(settings.devices))
        outbox = Outbox(settings.data_dir / "mqtt_outbox.sqlite3", max_messages=outbox_max,
                        retry_s=outbox_retry_s,
                        on_problem=lambda code, message: bus.emit("outbox_problem", code=code, message=message),
                        on_recovered=lambda: bus.emit("outbox_recovered"))
        link = MqttLink(mqtt, mqtt.client_id(settings.instance_id, PROGRAM), topics.status, outbox,
                        on_message=self._on_message, on_connection=self._on_connection,
                        subscriptions=lambda: topics.subscriptions(ha=mqtt.ha_discovery), reconnect=reconnect,
                        on_link_change=lambda: bus.emit("broker_link_changed"))
        url = aggregator_url or settings.service("state_aggregator").url
        self.ctx = BridgeContext(settings, topics, bus, link,
                                 AggregatorClient(url, settings.instance_id, api_token=settings.api_token))
        bus.on("mqtt_connected", self._mark_connected)  # first: features read ctx.mqtt_connected
        bus.on("mqtt_disconnected", self._mark_disconnected)
        self.status = StatusFeature(self.ctx)
        self.state = StateFeature(self.ctx)
        self.commands = CommandFeature(self.ctx)
        self.meta = MetaFeature(self.ctx)
        self.health = HealthFileFeature(self.ctx)
        self.features: list[Feature] = [self.status, self.state, self.commands, self.meta, self.health,
                                        ProblemReportFeature(self.ctx)]
        self.discovery: DiscoveryFeature | None = None
        if mqtt.ha_discovery:
            self.discovery = DiscoveryFeature(self.ctx)
            self.features.append(self.discovery)
        self._stopped = threading.Event()
        self.abandoned_commands = 0  # still running when stop() gave up on them

    # paho thread: enqueue only
    def _on_message(self, message: IncomingMessage) -> None:
        self.ctx.bus.emit("mqtt_message", message=message)

    def _on_connection(self, connected: bool) -> None:
        self.ctx.bus.emit("mqtt_connected" if connected else "mqtt_disconnected")

    def _mark_connected(self) -> None:
        self.ctx.mqtt_connected = True

    def _mark_disconnected(self) -> None:
        self.ctx.mqtt_connected = False

    def start(self) -> MqttBridge:
        self.ctx.bus.start()
        self.ctx.link.start()
        for feature in self.features:
            feature.start()
        return self

    def stop(self) -> bool:
        """Graceful, within ``shutdown_deadline_s`` in all: stop taking input, let running commands
        publish their responses while the deadline allows, publish ``offline``, flush."""
        if self._stopped.is_set():
            return True
        self._stopped.set()
        end = time.monotonic() + self.shutdown_deadline_s
        self.health.stop()
        log.info("stopping: publishing offline and flushing (deadline %.1f s)", self.shutdown_deadline_s)
        self.state.stop()
        self.abandoned_commands = self.commands.stop(timeout=max(0.0, end - time.monotonic() - FLUSH_SHARE_S))
        if self.discovery:
            self.discovery.stop()
        self.ctx.bus.stop(timeout=max(0.1, end - time.monotonic() - FLUSH_SHARE_S))  # what it holds goes before offline
        self.state.save_position()  # what the bus handled is in the outbox: the next start resumes after it
        return self.ctx.link.shutdown(max(end - time.monotonic(), FLUSH_SHARE_S))

    def stats(self) -> dict[str, Any]:
        return {"link": self.ctx.link.stats(), "rejected": self.commands.rejected,
                "duplicate_commands": self.commands.recent.duplicates,
                "aggregator_ready": self.ctx.aggregator_ready}

    def run_forever(self) -> None:
        """Start and block until SIGTERM/SIGINT, then stop gracefully."""
        done = threading.Event()

        def _signal(signum: int, frame: Any) -> None:
            log.info("received %s", signal.Signals(signum).name)
            done.set()

        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
        self.start()
        done.wait()
        self.stop()
