"""What every bridge feature is given: settings, topics, the bus, the MQTT link, the
aggregator client and the shared device-state store. Features hold no other references."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bridge.aggregator import AggregatorClient
from bridge.bus import Bus
from bridge.client import MqttLink
from bridge.outbox import KEEP, STATE
from shared.clock import now_iso
from shared.config import Settings
from shared.topics import Topics


@dataclass
class DeviceRecord:
    """The bridge's copy of one device, kept by the state feature from the aggregator."""

    device_id: str
    type: str | None = None
    name: str | None = None
    enabled: bool = True
    online: bool | None = None
    reason: str | None = None
    last_seen: str | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class BridgeContext:
    settings: Settings
    topics: Topics
    bus: Bus
    link: MqttLink
    aggregator: AggregatorClient
    devices: dict[str, DeviceRecord] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    mqtt_connected: bool = False
    aggregator_ready: bool = False

    # One place decides QoS and retain for each kind of message (docs/mqtt.md, "Topics").
    def publish_state(self, topic: str, payload: Any, retain: bool | None = None) -> None:
        mqtt = self.settings.mqtt
        self.link.publish_durable(topic, payload, mqtt.qos, mqtt.retain if retain is None else retain, STATE)

    def publish_message(self, topic: str, payload: Any) -> None:
        """Events, errors, command responses: never retained, never dropped."""
        self.link.publish_durable(topic, payload, self.settings.mqtt.qos, False, KEEP)

    def publish_retained_live(self, topic: str, payload: Any) -> None:
        """Status, meta and discovery: retained, re-sent after every CONNACK."""
        self.link.publish_live(topic, payload, qos=1, retain=True)

    def publish_error(self, device_id: str | None, code: str, message: str, severity: str = "warning") -> None:
        known = device_id if device_id in self.known_device_ids() else None
        payload = {"timestamp": now_iso(), "error_code": code, "message": message, "severity": severity}
        if device_id and not known:
            payload["device_id"] = device_id
        self.publish_message(self.topics.error(known), payload)

    def known_device_ids(self) -> set[str]:
        return {d.device_id for d in self.settings.devices}


class Feature:
    """One capability of the bridge (zigbee2mqtt's extensions): listens on the bus."""

    def __init__(self, ctx: BridgeContext) -> None:
        self.ctx = ctx

    def start(self) -> None:  # noqa: B027 - optional hook
        pass

    def stop(self) -> None:  # noqa: B027 - optional hook
        pass
