"""Retained ``meta/devices_list`` and ``meta/info``: published once the device list is
loaded, after every CONNACK, on ``meta/request/<type>``, and whenever their content changes."""
from __future__ import annotations

import time
from typing import Any

from bridge.context import BridgeContext, Feature, now_iso
from shared.topics import global_id


class MetaFeature(Feature):
    def __init__(self, ctx: BridgeContext) -> None:
        super().__init__(ctx)
        self._last_list: list[dict[str, Any]] | None = None
        ctx.bus.on("mqtt_connected", self._republish)
        ctx.bus.on("aggregator_ready", self._ready)
        ctx.bus.on("devices_changed", self._maybe_changed)
        ctx.bus.on("meta_request", self._request)

    def devices_list(self) -> list[dict[str, Any]]:
        out = []
        for spec in self.ctx.settings.devices:
            record = self.ctx.devices.get(spec.device_id)
            out.append({"device_id": spec.device_id, "global_id": global_id(self.ctx.settings.instance_id,
                                                                                 spec.device_id),
                        "name": spec.name, "type": spec.type, "model": spec.model or spec.type,
                        "enabled": record.enabled if record else spec.enabled,
                        "online": bool(record and record.online), "groups": list(spec.groups)})
        return out

    def info(self) -> dict[str, Any]:
        s = self.ctx.settings
        return {"instance_id": s.instance_id, "connector_type": s.connector_type, "friendly_name": s.friendly_name,
                "version": s.version, "devices": len(s.devices), "groups": len(s.groups),
                "devices_online": sum(1 for d in self.ctx.devices.values() if d.online),
                "uptime_s": round(time.time() - self.ctx.started), "timestamp": now_iso(),
                "ha_discovery": s.mqtt.ha_discovery, "update_interval": s.update_interval}

    def _ready(self, ready: bool) -> None:
        if ready:
            self._maybe_changed()

    def _republish(self) -> None:
        self._last_list = None
        if self.ctx.aggregator_ready:
            self._maybe_changed()

    def _maybe_changed(self) -> None:
        if not self.ctx.aggregator_ready:
            return
        current = self.devices_list()
        if current != self._last_list:
            self._last_list = current
            self.ctx.publish_retained_live(self.ctx.topics.devices_list, current)
            self.ctx.publish_retained_live(self.ctx.topics.info, self.info())

    def _request(self, request: str) -> None:
        if request == "devices_list":
            self._last_list = self.devices_list()
            self.ctx.publish_retained_live(self.ctx.topics.devices_list, self._last_list)
        elif request == "info":
            self.ctx.publish_retained_live(self.ctx.topics.info, self.info())
