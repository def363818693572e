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
  select:        https://www.home-assistant.io/integrations/select.mqtt/ (options: required, static)
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bridge.context import BridgeContext, Feature
from bridge.ha_payloads import ha_component, ha_cover_state, ha_light_state
from shared.config import DeviceSpec, Settings
from shared.devices import DeviceType, device_type
from shared.topics import Topics

log = logging.getLogger(__name__)

_ID_OK = re.compile(r"[^a-zA-Z0-9_-]")
MODEL_COMMAND = "model"
"""The automation's model select sends the version picked to ``<root>/ha/<switch>/model``."""
MAX_MODEL_OPTIONS = 50
"""Options the model select carries at most, whatever the state says (ml_inference offers 20):
the select's discovery message is re-sent whenever they change, so it stays small."""


def model_options(state: Mapping[str, Any] | None) -> list[str]:
    """The model versions an automation's switch state offers (``models``), as select options."""
    offered = (state or {}).get("models")
    if not isinstance(offered, list):
        return []
    return [v for v in offered if isinstance(v, str) and 0 < len(v) <= 64][-MAX_MODEL_OPTIONS:]


def _classes(device_class: str | None, unit: str | None = None, state_class: str | None = None) -> dict[str, Any]:
    """The class keys the registry gives an entity; a key it leaves out is not published at all
    (no class rather than a wrong one: our dBFS sound level is no sound pressure)."""
    keys = {"device_class": device_class, "unit_of_measurement": unit, "state_class": state_class}
    return {key: value for key, value in keys.items() if value is not None}


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

    def entities(self, spec: DeviceSpec,
                 state: Mapping[str, Any] | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """[(component, object id, payload)] for one of our devices (``state``: its latest, which
        an automation's model select takes its options from).

        The registry (shared/devices.py) says which component a type is and with which
        device_class, unit and state_class; the payload's shape per component is written here."""
        try:
            entry = device_type(spec.type)
        except KeyError:
            return []
        uid = object_id(f"{self.settings.instance_id}_{spec.device_id}")
        shape = self._SHAPES.get(entry.ha_component)
        if shape is None:
            return []
        if entry.ha_component == "sensor":
            return shape(self, spec, entry, uid)
        payload = self._base(spec, entry.ha_component, uid)
        payload.update(_classes(entry.ha_device_class))
        payload.update(shape(self, spec, entry))
        out = [(entry.ha_component, uid, payload)]
        if spec.automation:
            out += [self.model_select(spec, state), self._model_error(spec, uid)]
        return out

    def model_select(self, spec: DeviceSpec, state: Mapping[str, Any] | None) -> tuple[str, str, dict[str, Any]]:
        """The model version an automation uses, to pick from (a rollback): options are the
        versions its state offers (empty until ml_inference has said), the state is ``model``."""
        uid = object_id(f"{self.settings.instance_id}_{spec.device_id}_model")
        payload = self._base(spec, "select", uid, "model")
        t, d = self.topics, spec.device_id
        payload.update(command_topic=t.ha_command(d, MODEL_COMMAND), state_topic=t.state_property(d, "model"),
                       options=model_options(state), entity_category="config")
        return "select", uid, payload

    def _model_error(self, spec: DeviceSpec, uid: str) -> tuple[str, str, dict[str, Any]]:
        """The active model's validation error (mean absolute error in position points)."""
        payload = self._base(spec, "sensor", f"{uid}_model_error", "model error")
        payload.update(state_topic=self.topics.state_property(spec.device_id, "model_error"),
                       unit_of_measurement="%", state_class="measurement", suggested_display_precision=1,
                       entity_category="diagnostic")
        return "sensor", f"{uid}_model_error", payload

    def _sensors(self, spec: DeviceSpec, entry: DeviceType, uid: str) -> list[tuple[str, str, dict[str, Any]]]:
        """One sensor entity per property the registry shows in HA; the main one has no suffix."""
        out = []
        for prop in entry.properties:
            if prop.ha is None:
                continue
            suffix = "" if prop is entry.main else f"_{prop.name}"
            payload = self._base(spec, "sensor", uid + suffix, prop.name if suffix else "")
            payload.update(state_topic=self.topics.state_property(spec.device_id, prop.name))
            payload.update(_classes(prop.ha.device_class, prop.ha.unit, prop.ha.state_class))
            out.append(("sensor", uid + suffix, payload))
        return out

    def _binary_sensor(self, spec: DeviceSpec, entry: DeviceType) -> dict[str, Any]:
        # Booleans are published as bare "true"/"false" on the per-property topic.
        return {"state_topic": self.topics.state_property(spec.device_id, entry.main.name),
                "payload_on": "true", "payload_off": "false"}

    def _cover(self, spec: DeviceSpec, entry: DeviceType) -> dict[str, Any]:
        t, d = self.topics, spec.device_id
        # state_topic: opening/closing/open/closed/stopped from moving and target (ha_cover_state);
        # without it HA calls a window that is still moving "open" at every step.
        return {"command_topic": t.ha_command(d, "set"),
                "payload_open": "OPEN", "payload_close": "CLOSE", "payload_stop": "STOP",
                "set_position_topic": t.ha_command(d, "position"),
                "position_topic": t.state_property(d, "position"),
                "position_open": 100, "position_closed": 0, "state_topic": t.ha_state(d),
                "state_open": "open", "state_opening": "opening", "state_closed": "closed",
                "state_closing": "closing", "state_stopped": "stopped"}

    def _light(self, spec: DeviceSpec, entry: DeviceType) -> dict[str, Any]:
        t, d = self.topics, spec.device_id
        return {"schema": "json", "command_topic": t.ha_command(d, "set"), "state_topic": t.ha_state(d),
                "brightness": True, "supported_color_modes": ["rgb"]}

    def _switch(self, spec: DeviceSpec, entry: DeviceType) -> dict[str, Any]:
        t, d = self.topics, spec.device_id
        return {"command_topic": t.ha_command(d, "set"), "state_topic": t.state_property(d, entry.main.name),
                "payload_on": "ON", "payload_off": "OFF", "state_on": "on", "state_off": "off"}

    _SHAPES: dict[str, Callable[..., Any]] = {"sensor": _sensors, "binary_sensor": _binary_sensor,
                                              "cover": _cover, "light": _light, "switch": _switch}
    """The payload shape of each Home Assistant component a registry type may name."""

    def configs(self, states: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
        """``states``: device id -> its latest state, where known (the model select's options)."""
        out = {}
        for spec in self.settings.devices:
            if not spec.enabled:
                continue
            for component, oid, payload in self.entities(spec, (states or {}).get(spec.device_id)):
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
        self._options: dict[str, list[str]] = {}  # automation switch -> the model options HA was given
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
        states = {d: r.state for d, r in self.ctx.devices.items()}
        configs = self.builder.configs(states)
        self._options = {d: model_options(states.get(d)) for d in states}
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
        self._model_options(device_id, record.state)
        component = ha_component(record.type)
        if component == "light":
            self.ctx.publish_state(self.ctx.topics.ha_state(device_id), ha_light_state(record.state))
        elif component == "cover":
            state = ha_cover_state(record.state)
            if state is not None:
                self.ctx.publish_state(self.ctx.topics.ha_state(device_id), state)

    def _model_options(self, device_id: str, state: Mapping[str, Any]) -> None:
        """Home Assistant reads a select's options from its discovery message only: when an
        automation's versions change (a model was trained), its select is announced again —
        one message, only then. The model is sent again after it, since a state HA got before
        the new options would have been refused as an unknown option."""
        options = model_options(state)
        if self._options.get(device_id, []) == options or not self.ctx.mqtt_connected:
            return
        try:
            spec = self.ctx.settings.device(device_id)
        except KeyError:
            return
        if not spec.automation or not spec.enabled:
            return
        self._options[device_id] = options
        component, oid, payload = self.builder.model_select(spec, state)
        self.ctx.publish_retained_live(self.ctx.topics.ha_config(component, oid), payload)
        log.info("Home Assistant discovery: %s offers %d model versions", device_id, len(options))
        if isinstance(state.get("model"), str):
            self.ctx.publish_state(self.ctx.topics.state_property(device_id, "model"), state["model"])
