"""A checker for Home Assistant MQTT discovery payloads, written from Home Assistant's docs:

  https://www.home-assistant.io/integrations/mqtt/ (discovery topic, device, origin, availability)
  https://www.home-assistant.io/integrations/sensor.mqtt/ and /integrations/sensor/ (device classes, units)
  https://www.home-assistant.io/integrations/binary_sensor.mqtt/
  https://www.home-assistant.io/integrations/cover.mqtt/
  https://www.home-assistant.io/integrations/light.mqtt/#json-schema
  https://www.home-assistant.io/integrations/switch.mqtt/
  https://www.home-assistant.io/integrations/select.mqtt/
  https://developers.home-assistant.io/docs/core/entity/#entity-naming (names)

The rules are data (the tables below): required and allowed keys per component, allowed values,
and keys Home Assistant deprecated or removed (``DEPRECATED``: publishing them is a mistake).
``problems(topic, payload)`` returns every violation as a sentence; empty means valid.
"""
from __future__ import annotations

import re
from typing import Any

TOPIC = re.compile(r"^(?P<prefix>[^/#+]+)/(?P<component>[a-z_]+)/(?:(?P<node>[a-zA-Z0-9_-]+)/)?"
                   r"(?P<object>[a-zA-Z0-9_-]+)/config$")
COMMON = {"availability", "availability_mode", "availability_template", "availability_topic", "payload_available",
          "payload_not_available", "device", "origin", "unique_id", "default_entity_id", "name", "icon",
          "qos", "enabled_by_default", "entity_category", "encoding", "json_attributes_topic",
          "json_attributes_template", "entity_picture"}
COMPONENTS: dict[str, tuple[set[str], set[str]]] = {
    # component: (required, optional)
    "sensor": ({"state_topic"}, {"device_class", "unit_of_measurement", "state_class", "value_template",
                                 "expire_after", "force_update", "last_reset_value_template",
                                 "suggested_display_precision", "options"}),
    "binary_sensor": ({"state_topic"}, {"device_class", "payload_on", "payload_off", "value_template",
                                        "expire_after", "force_update", "off_delay"}),
    "cover": (set(), {"command_topic", "device_class", "payload_open", "payload_close", "payload_stop",
                      "position_topic", "position_template", "position_open", "position_closed",
                      "set_position_topic", "set_position_template", "state_topic", "state_open", "state_opening",
                      "state_closed", "state_closing", "state_stopped", "value_template", "optimistic", "retain",
                      "tilt_command_topic", "tilt_status_topic"}),
    "light": ({"command_topic", "schema"}, {"state_topic", "brightness", "brightness_scale",
                                            "supported_color_modes", "effect", "effect_list", "flash_time_long",
                                            "flash_time_short", "optimistic", "retain", "transition",
                                            "min_kelvin", "max_kelvin", "color_temp_kelvin", "white_scale"}),
    "switch": ({"command_topic"}, {"state_topic", "payload_on", "payload_off", "state_on", "state_off",
                                   "value_template", "optimistic", "retain", "device_class"}),
    "select": ({"command_topic", "options"}, {"state_topic", "value_template", "command_template", "optimistic",
                                              "retain"}),
}
DEPRECATED: dict[str, dict[str, str]] = {
    # component ("*": every one): {key: why it must not be published}
    "*": {"object_id": "deprecated in HA 2025.10 for default_entity_id (\"<component>.<object id>\"), "
                       "ignored from 2026.4"},
    "light": {key: "removed from the JSON light in HA 2025.3 (use supported_color_modes)"
              for key in ("color_mode", "color_temp", "hs", "rgb", "xy", "white_value")},
    "sensor": {"last_reset_topic": "removed in HA 2021.11 (use last_reset_value_template)"},
}
ALLOWED_VALUES: dict[str, dict[str, set]] = {
    # component: {key: the values HA accepts}
    "*": {"availability_mode": {"all", "any", "latest"}, "qos": {0, 1, 2},
          "entity_category": {"config", "diagnostic"}},
    "sensor": {"state_class": {"measurement", "total", "total_increasing", "measurement_angle"}},
    "cover": {"device_class": {"awning", "blind", "curtain", "damper", "door", "garage", "gate", "shade", "shutter",
                               "window"}},
    "binary_sensor": {"device_class": {"motion", "occupancy", "door", "window", "opening", "presence", "problem",
                                       "connectivity"}},
    "light": {"schema": {"json"}},
    "switch": {"device_class": {"outlet", "switch"}},
}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "model_id", "sw_version",
               "hw_version", "serial_number", "suggested_area", "via_device", "configuration_url"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
SENSOR_UNITS = {"temperature": {"°C", "°F", "K"}, "humidity": {"%"}, "battery": {"%"},
                "voltage": {"V", "mV", "µV", "kV", "MV"}, "pressure": {"Pa", "kPa", "hPa", "bar", "cbar", "mbar",
                                                                      "mmHg", "inHg", "psi"},
                "atmospheric_pressure": {"cbar", "bar", "hPa", "mmHg", "inHg", "kPa", "mbar", "Pa", "psi"},
                "illuminance": {"lx"}, "sound_pressure": {"dB", "dBA"}, "carbon_dioxide": {"ppm"}}
COLOR_MODES = {"onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"}


def _topic_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and "+" not in value and "#" not in value


def problems(topic: str, payload: dict[str, Any]) -> list[str]:
    out: list[str] = []
    match = TOPIC.match(topic)
    if not match:
        return [f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config with ids [a-zA-Z0-9_-]"]
    component = match["component"]
    if component not in COMPONENTS:
        return [f"{topic}: component {component!r} is not checked here"]
    required, optional = COMPONENTS[component]
    for key in sorted(required - payload.keys()):
        out.append(f"{component}: {key} is required")
    deprecated = {**DEPRECATED["*"], **DEPRECATED.get(component, {})}
    for key in sorted(payload.keys() & deprecated.keys()):
        out.append(f"{component}: deprecated key {key!r}: {deprecated[key]}")
    for key in sorted(payload.keys() - required - optional - COMMON - deprecated.keys()):
        out.append(f"{component}: unknown key {key!r}")
    for key, allowed in {**ALLOWED_VALUES["*"], **ALLOWED_VALUES.get(component, {})}.items():
        if key in payload and payload[key] not in allowed:
            out.append(f"{component}: {key} {payload[key]!r} is not one of {sorted(allowed, key=str)}")
    entity_id = payload.get("default_entity_id")
    if entity_id is not None and not (isinstance(entity_id, str)
                                      and re.fullmatch(rf"{component}\.[a-z0-9_]+", entity_id)):
        out.append(f"default_entity_id {entity_id!r} is not \"{component}.<lowercase object id>\"")
    name = payload.get("name")
    if name is not None and not (isinstance(name, str) and name):
        out.append("name must be a non-empty string, or null for the device's main feature")
    for key, value in payload.items():
        if key.endswith("_topic") and not _topic_ok(value):
            out.append(f"{key}: {value!r} is not a valid topic")
    if not isinstance(payload.get("unique_id"), str) or not payload.get("unique_id"):
        out.append("unique_id is required for a device-attached entity")
    device = payload.get("device")
    if not isinstance(device, dict):
        out.append("device is required")
    else:
        if not (device.get("identifiers") or device.get("connections")):
            out.append("device needs identifiers or connections")
        if "identifiers" in device and not isinstance(device["identifiers"], (list, str)):
            out.append("device.identifiers must be a list or a string")
        out += [f"device: unknown key {k!r}" for k in sorted(device.keys() - DEVICE_KEYS)]
        device_name = device.get("name")
        if isinstance(name, str) and isinstance(device_name, str) and device_name \
                and name.lower().startswith(device_name.lower()):
            out.append(f"name {name!r} repeats the device name {device_name!r} (HA shows both)")
    origin = payload.get("origin")
    if origin is not None:
        if not isinstance(origin, dict) or not origin.get("name"):
            out.append("origin.name is required when origin is given")
        else:
            out += [f"origin: unknown key {k!r}" for k in sorted(origin.keys() - ORIGIN_KEYS)]
    if "availability" in payload:
        if "availability_topic" in payload:
            out.append("availability must not be used together with availability_topic")
        if not isinstance(payload["availability"], list) or not payload["availability"]:
            out.append("availability must be a non-empty list")
        else:
            for entry in payload["availability"]:
                if not isinstance(entry, dict) or not _topic_ok(entry.get("topic")):
                    out.append(f"availability entry {entry!r} needs a topic")
                else:
                    out += [f"availability: unknown key {k!r}" for k in sorted(entry.keys() - AVAILABILITY_KEYS)]
    if component == "sensor":
        device_class, unit = payload.get("device_class"), payload.get("unit_of_measurement")
        if device_class is not None:
            allowed = SENSOR_UNITS.get(device_class)
            if allowed is None:
                out.append(f"sensor device_class {device_class!r} unknown to this checker")
            elif unit not in allowed:
                out.append(f"sensor unit {unit!r} does not fit device_class {device_class!r} ({sorted(allowed)})")
    if component == "cover":
        for key in ("position_open", "position_closed"):
            if key in payload and not isinstance(payload[key], int):
                out.append(f"{key} must be an integer")
        if "set_position_topic" in payload and "position_topic" not in payload:
            out.append("set_position_topic without position_topic leaves the position unknown")
    if component == "light":
        modes = payload.get("supported_color_modes", [])
        if not isinstance(modes, list) or not set(modes) <= COLOR_MODES:
            out.append(f"supported_color_modes {modes!r} not a list of {sorted(COLOR_MODES)}")
        if "onoff" in modes and len(modes) > 1 or "brightness" in modes and len(modes) > 1:
            out.append("onoff and brightness must be the only supported color mode when used")
    if component == "select":
        # "options (list, required): List of options that can be selected. An empty list or a list
        # with a single item is allowed." (select.mqtt); they are the texts HA sends and shows.
        options = payload.get("options")
        if "options" in payload and not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
            out.append(f"select options {options!r} must be a list of strings")
        elif isinstance(options, list) and len(set(options)) != len(options):
            out.append("select options must not repeat")
    return out
