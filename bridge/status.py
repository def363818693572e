"""The instance ``status`` topic: ``online`` only when MQTT is connected *and* the aggregator
answered with the device list; again after every reconnect (the reference connector never
republished ``online`` after a broker restart). ``offline`` is the Last Will (client.py)."""
from __future__ import annotations

import logging

from bridge.context import BridgeContext, Feature

log = logging.getLogger(__name__)


class StatusFeature(Feature):
    def __init__(self, ctx: BridgeContext) -> None:
        super().__init__(ctx)
        self._announced: str | None = None
        ctx.bus.on("mqtt_connected", self._connected)
        ctx.bus.on("mqtt_disconnected", self._disconnected)
        ctx.bus.on("aggregator_ready", self._ready)

    def _connected(self) -> None:
        self._announced = None  # a new session: say it again whatever we said before
        self._update()

    def _disconnected(self) -> None:
        self._announced = None

    def _ready(self, ready: bool) -> None:
        if ready != self.ctx.aggregator_ready:
            log.info("aggregator %s", "ready (device list loaded)" if ready else "not reachable")
        self.ctx.aggregator_ready = ready
        self._update()

    def _update(self) -> None:
        if not self.ctx.mqtt_connected:
            return
        wanted = "online" if self.ctx.aggregator_ready else "offline"
        if wanted != self._announced:
            self.ctx.publish_retained_live(self.ctx.topics.status, wanted)
            self._announced = wanted
            log.info("instance status %s", wanted)
