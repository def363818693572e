"""Home Assistant MQTT discovery: one HA device per board / HTTP endpoint, its entities
built from our device types. The payloads HA sends and reads are translated in
bridge/ha_payloads.py, which the command feature uses too (features share no code but that).

Key names and rules follow Home Assistant's MQTT documentation:
  discovery, device, origin, availability: https://www.home-assistant.io/integrations/mqtt/
  sensor:        https://www.home-assistant.io/integrations/sensor.mqtt/
  binary_sensor: https://www.home-assistant.io/integrations/binary_sensor.mqtt/
  cover:         https://www.home-assistant.io/integrations/cover.mqtt/
  light (json):  https://www.home-assistant.io/integrations/light.mqtt/#json-schema
  switch:        https://www.home-assistant.io/integrations/switch.mqtt/

Entities read the retained per-property topics (``state/<prop>``, bare values) so no
value template is needed, and a filtered ``get`` answer on the full ``state`` topic can
never confuse them. Availability combines the instance ``status`` and the device's own
``state/online`` with ``availability_mode: all`` (both must say available).
"""
from __future__ import annotations

import json
import logging
import random
import re
import threading
from pathlib import Path
from typing import Any

from bridge.context import BridgeContext, Feature
from bridge.ha_payloads import ha_light_state
from shared.config import DeviceSpec, Settings
from shared.devices import DEVICE_TABLE, HaSensor
from shared.topics import Topics

log = logging.getLogger(__name__)

# sensor: device_class -> unit; they must fit each other (sensor.mqtt / sensor device classes).
# The registry (shared/devices.py) says it for every property of a type whose component is a sensor.
SENSORS: dict[str, list[tuple[str, str, HaSensor]]] = {
    # device type: [(property, object id suffix, how HA shows it)]; the main property has no suffix
    entry.name: [(prop.name, "" if prop is entry.main else f"_{prop.name}", prop.ha)
                 for prop in entry.properties if prop.ha is not None]
    for entry in DEVICE_TABLE if entry.ha_component == "sensor"
}
_ID_OK = re.compile(r"[^a-zA-Z0-9_-]")


def object_id(text: str) -> str:
    """Discovery topic ids may only hold ``[a-zA-Z0-9_-]`` (discovery topic format)."""
    return _ID_OK.sub("_", text)


class DiscoveryBuilder:
    """Pure: settings in, ``{config topic: payload}`` out (tests check it against the docs)."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics

    def origin(self) -> dict[str, Any]:
        # "origin": name is required; sw_version and support_url optional.
        return {"name": "sensor-hub", "sw_version": self.settings.version}

    def ha_device(self, spec: DeviceSpec) -> dict[str, Any]:
        s = self.settings
        source = spec.source_id
        device: dict[str, Any] = {"identifiers": [object_id(f"sensor_hub_{s.instance_id}_{source}")],
                                  "manufacturer": "sensor-hub", "sw_version": s.version}
        if spec.board:
            try:
                board = s.board(spec.board)
                device.update(name=board.name, model="ESP32 board", serial_number=board.board_id)
                area = board.area
            except KeyError:
                device.update(name=spec.board, model="ESP32 board")
                area = None
        elif spec.endpoint:
            try:
                endpoint = s.endpoint(spec.endpoint)
                device.update(name=endpoint.name, model=f"HTTP sensor ({endpoint.profile})")
                area = endpoint.area
            except KeyError:
                device.update(name=spec.endpoint, model="HTTP sensor")
                area = None
        else:
            device.update(name=source or spec.name, model="sensor-hub automation")
            area = None
        area = area or spec.area
        if area:
            device["suggested_area"] = area
        return device

    def availability(self, spec: DeviceSpec) -> dict[str, Any]:
        return {
            "availability": [
                {"topic": self.topics.status, "payload_available": "online", "payload_not_available": "offline"},
                {"topic": self.topics.state_property(spec.device_id, "online"),
                 "payload_available": "true", "payload_not_available": "false"},
            ],
            "availability_mode": "all",
        }

    def _base(self, spec: DeviceSpec, unique_id: str, name: str | None) -> dict[str, Any]:
        payload = {"unique_id": unique_id, "object_id": unique_id, "name": name, "device": self.ha_device(spec),
                   "origin": self.origin(), "qos": 1}
        payload.update(self.availability(spec))
        return payload

    def entities(self, spec: DeviceSpec) -> list[tuple[str, str, dict[str, Any]]]:
        """[(component, object id, payload)] for one of our devices."""
        uid = object_id(f"{self.settings.instance_id}_{spec.device_id}")
        t = self.topics
        d = spec.device_id
        if spec.type in SENSORS:
            out = []
            for prop, suffix, ha in SENSORS[spec.type]:
                name = spec.name if not suffix else f"{spec.name} {prop}"
                payload = self._base(spec, uid + suffix, name)
                payload.update(state_topic=t.state_property(d, prop), unit_of_measurement=ha.unit)
                payload.update({k: v for k, v in (("device_class", ha.device_class), ("state_class", ha.state_class))
                                if v is not None})  # no class at all rather than a wrong one (dBFS)
                out.append(("sensor", uid + suffix, payload))
            return out
        if spec.type == "motion":
            payload = self._base(spec, uid, spec.name)
            payload.update(state_topic=t.state_property(d, "motion"), device_class="motion",
                           payload_on="true", payload_off="false")
            return [("binary_sensor", uid, payload)]
        if spec.type == "window":
            payload = self._base(spec, uid, spec.name)
            payload.update(device_class="window", command_topic=t.ha_command(d, "set"),
                           payload_open="OPEN", payload_close="CLOSE", payload_stop="STOP",
                           set_position_topic=t.ha_command(d, "position"),
                           position_topic=t.state_property(d, "position"),
                           position_open=100, position_closed=0)
            return [("cover", uid, payload)]
        if spec.type == "led":
            payload = self._base(spec, uid, spec.name)
            payload.update(schema="json", command_topic=t.ha_command(d, "set"), state_topic=t.ha_state(d),
                           brightness=True, supported_color_modes=["rgb"])
            return [("light", uid, payload)]
        if spec.type == "switch":
            payload = self._base(spec, uid, spec.name)
            payload.update(command_topic=t.ha_command(d, "set"), state_topic=t.state_property(d, "state"),
                           payload_on="ON", payload_off="OFF", state_on="on", state_off="off")
            return [("switch", uid, payload)]
        return []

    def configs(self) -> dict[str, dict[str, Any]]:
        out = {}
        for spec in self.settings.devices:
            if not spec.enabled:
                continue
            for component, oid, payload in self.entities(spec):
                out[self.topics.ha_config(component, oid)] = payload
        return out


class DiscoveryFeature(Feature):
    """Announces on every CONNACK and every ``homeassistant/status: online`` (after a short
    random delay, so a restarting Home Assistant is not flooded by every integration at once),
    then re-publishes availability and states. Entities of devices that left the config are
    deleted (empty retained config) on the first announce."""

    def __init__(self, ctx: BridgeContext, jitter_s: tuple[float, float] = (0.1, 1.5)) -> None:
        super().__init__(ctx)
        self.builder = DiscoveryBuilder(ctx.settings, ctx.topics)
        self._jitter = jitter_s
        self._memory = Path(ctx.settings.data_dir) / "ha_discovery.json"
        self._cleaned = False
        self._timer: threading.Timer | None = None
        self.announcements = 0
        ctx.bus.on("mqtt_connected", self._schedule)
        ctx.bus.on("ha_online", self._schedule)
        ctx.bus.on("announce", self.announce)
        ctx.bus.on("device_state", self._device_state)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(random.uniform(*self._jitter), self.ctx.bus.emit, args=("announce",))
        self._timer.daemon = True
        self._timer.start()

    def announce(self) -> None:
        if not self.ctx.mqtt_connected:
            return
        configs = self.builder.configs()
        if not self._cleaned:
            self._remove_stale(set(configs))
        for topic, payload in configs.items():
            self.ctx.publish_retained_live(topic, payload)
        self.announcements += 1
        log.info("Home Assistant discovery: %d entities announced", len(configs))
        # After discovery, HA needs availability and states again (HA restart case).
        if self.ctx.aggregator_ready:
            self.ctx.publish_retained_live(self.ctx.topics.status, "online")
        self.ctx.bus.emit("heartbeat")

    def _remove_stale(self, current: set[str]) -> None:
        try:
            previous = set(json.loads(self._memory.read_text()))
        except (OSError, ValueError, TypeError):
            previous = set()
        for topic in sorted(previous - current):
            self.ctx.publish_retained_live(topic, b"")  # an empty retained config deletes the entity
            log.info("Home Assistant discovery: removed %s (no longer configured)", topic)
        try:
            self._memory.parent.mkdir(parents=True, exist_ok=True)
            self._memory.write_text(json.dumps(sorted(current)))
            self._cleaned = True
        except OSError as exc:
            log.warning("cannot remember discovery topics in %s: %s", self._memory, exc)

    def _device_state(self, device_id: str) -> None:
        record = self.ctx.devices.get(device_id)
        if record is not None and record.type == "led":
            self.ctx.publish_state(self.ctx.topics.ha_state(device_id), ha_light_state(record.state))
