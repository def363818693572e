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
  entity naming: https://developers.home-assistant.io/docs/core/entity/#entity-naming
  default_entity_id (object_id deprecated in 2025.10, removed in 2026.4):
                 https://www.home-assistant.io/integrations/sensor.mqtt/#default_entity_id

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
from bridge.ha_payloads import ha_cover_state, ha_light_state
from shared.config import DeviceSpec, Settings
from shared.devices import DEVICE_TABLE, HaSensor
from shared.topics import Topics

log = logging.getLogger(__name__)

# sensor: device_class -> unit; they must fit each other (sensor.mqtt / sensor device classes).
# The registry (shared/devices.py) says it for every property of a type whose component is a
# sensor. Our sound level is dBFS: no device class (it is no sound pressure), its own unit.
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


def entity_name(name: str, *prefixes: str | None) -> str | None:
    """HA names an entity "<device name> <entity name>", so the entity's own name must not repeat
    the device's (HA's entity naming rules): "Living room temperature" on the device "Living
    room ESP32" (area "Living room") is "Temperature". None when nothing is left: the entity is
    the device's main feature, and HA shows the device's name."""
    for prefix in prefixes:
        if not prefix:
            continue
        if name.lower() == prefix.lower():
            return None
        if name.lower().startswith(prefix.lower()) and not name[len(prefix)].isalnum():
            rest = name[len(prefix):].strip(" -:,")
            return (rest[:1].upper() + rest[1:]) if rest else None
    return name


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
        elif spec.automation:
            # The automation's switch belongs to the window it moves: its own HA device would be
            # named by the automation's id and have no area.
            window = self._automation_window(spec.automation)
            if window is not None:
                return self.ha_device(window)
            device.update(name=spec.name, model="sensor-hub automation")
            area = None
        else:
            device.update(name=spec.name, model="sensor-hub device")
            area = None
        area = area or spec.area
        if area:
            device["suggested_area"] = area
        return device

    def _automation_window(self, automation_id: str) -> DeviceSpec | None:
        for automation in self.settings.automations:
            if automation.automation_id == automation_id:
                try:
                    window = self.settings.device(automation.window)
                except KeyError:
                    return None
                return window if not window.automation else None
        return None

    def availability(self, spec: DeviceSpec) -> dict[str, Any]:
        return {
            "availability": [
                {"topic": self.topics.status, "payload_available": "online", "payload_not_available": "offline"},
                {"topic": self.topics.state_property(spec.device_id, "online"),
                 "payload_available": "true", "payload_not_available": "false"},
            ],
            "availability_mode": "all",
        }

    def _base(self, spec: DeviceSpec, component: str, unique_id: str, suffix: str = "") -> dict[str, Any]:
        device = self.ha_device(spec)
        name = entity_name(spec.name, device.get("name"), device.get("suggested_area"))
        if suffix:  # a second entity of the same device (the battery's voltage)
            name = f"{name} {suffix}" if name else suffix.capitalize()
        # default_entity_id (the full entity id) replaces object_id, deprecated in HA 2025.10 and
        # ignored from 2026.4; HA before 2025.10 ignores it and names the entity from its name.
        entity_id = f"{component}.{re.sub(r'[^a-z0-9_]', '_', unique_id.lower())}"  # HA's entity id rules
        payload = {"unique_id": unique_id, "default_entity_id": entity_id, "name": name,
                   "device": device, "origin": self.origin(), "qos": 1}
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
                payload = self._base(spec, "sensor", uid + suffix, prop if suffix else "")
                payload.update(state_topic=t.state_property(d, prop), unit_of_measurement=ha.unit)
                payload.update({k: v for k, v in (("device_class", ha.device_class), ("state_class", ha.state_class))
                                if v is not None})  # no class at all rather than a wrong one (dBFS)
                out.append(("sensor", uid + suffix, payload))
            return out
        if spec.type == "motion":
            payload = self._base(spec, "binary_sensor", uid)
            payload.update(state_topic=t.state_property(d, "motion"), device_class="motion",
                           payload_on="true", payload_off="false")
            return [("binary_sensor", uid, payload)]
        if spec.type == "window":
            payload = self._base(spec, "cover", uid)
            # state_topic: opening/closing/open/closed/stopped from moving and target (ha_cover_state);
            # without it HA calls a window that is still moving "open" at every step.
            payload.update(device_class="window", command_topic=t.ha_command(d, "set"),
                           payload_open="OPEN", payload_close="CLOSE", payload_stop="STOP",
                           set_position_topic=t.ha_command(d, "position"),
                           position_topic=t.state_property(d, "position"),
                           position_open=100, position_closed=0, state_topic=t.ha_state(d),
                           state_open="open", state_opening="opening", state_closed="closed",
                           state_closing="closing", state_stopped="stopped")
            return [("cover", uid, payload)]
        if spec.type == "led":
            payload = self._base(spec, "light", uid)
            payload.update(schema="json", command_topic=t.ha_command(d, "set"), state_topic=t.ha_state(d),
                           brightness=True, supported_color_modes=["rgb"])
            return [("light", uid, payload)]
        if spec.type == "switch":
            payload = self._base(spec, "switch", uid)
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
        # The only entity of its HA device is that device's main feature: name null, so HA shows
        # the device's name alone (an HTTP sensor that measures one thing).
        per_device: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for payload in out.values():
            per_device.setdefault(tuple(payload["device"]["identifiers"]), []).append(payload)
        for payloads in per_device.values():
            if len(payloads) == 1:
                payloads[0]["name"] = None
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
        if record is None:
            return
        if record.type == "led":
            self.ctx.publish_state(self.ctx.topics.ha_state(device_id), ha_light_state(record.state))
        elif record.type == "window":
            state = ha_cover_state(record.state)
            if state is not None:
                self.ctx.publish_state(self.ctx.topics.ha_state(device_id), state)
