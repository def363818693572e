"""Home Assistant's payloads and ours: HA's command payloads into contract command values,
and our LED state into the JSON-schema light state HA reads.

A pure module shared by two bridge features (discovery publishes the light state, the command
feature translates HA's commands), so that neither feature imports the other.
Payload rules: https://www.home-assistant.io/integrations/cover.mqtt/,
https://www.home-assistant.io/integrations/light.mqtt/#json-schema,
https://www.home-assistant.io/integrations/switch.mqtt/,
https://www.home-assistant.io/integrations/select.mqtt/ (the option's text is the command payload)
"""
from __future__ import annotations

from typing import Any

from shared import jsonio
from shared.devices import COLOR, REGISTRY


class HaCommandError(ValueError):
    """A Home Assistant command payload we cannot carry out; the message says why."""


def ha_component(device_type: str) -> str | None:
    """The Home Assistant component a device type is announced as (the registry says), or None."""
    entry = REGISTRY.get(device_type)
    return entry.ha_component if entry is not None else None


def translate_ha_command(device_type: str, which: str, payload: bytes) -> dict[str, Any]:
    """Home Assistant's command payload -> contract command ``values``. The payload's shape is
    the component's (cover, switch, light) the type is announced as."""
    text = payload.decode("utf-8", errors="replace").strip()
    component = ha_component(device_type)
    if component == "cover" and which == "set":
        mapping = {"OPEN": {"position": 100}, "CLOSE": {"position": 0}, "STOP": {"stop": True}}
        if text not in mapping:
            raise HaCommandError(f"cover command {text[:40]!r} is not OPEN, CLOSE or STOP")
        return mapping[text]
    if component == "cover" and which == "position":
        try:
            position = int(float(text))
        except (ValueError, OverflowError):  # "nan"; "inf" and "1e400" overflow an int
            raise HaCommandError(f"cover position {text[:40]!r} is not a number") from None
        if not 0 <= position <= 100:
            raise HaCommandError(f"cover position {position} is outside 0..100")
        return {"position": position}
    if which == "model":  # an automation's model select (bridge/discovery.py): the option picked, as it is
        if not text:
            raise HaCommandError("model select command is empty")
        return {"model": text}
    if component == "switch" and which == "set":
        if text not in ("ON", "OFF"):
            raise HaCommandError(f"switch command {text[:40]!r} is not ON or OFF")
        return {"state": text.lower()}
    if component == "light" and which == "set":
        try:
            doc = jsonio.loads_input(text)
        except ValueError:  # malformed, or nested deeper than any light command
            raise HaCommandError("light command is not JSON (json schema expected)") from None
        if not isinstance(doc, dict):
            raise HaCommandError("light command must be a JSON object")
        values: dict[str, Any] = {}
        if "state" in doc:
            if doc["state"] not in ("ON", "OFF"):
                raise HaCommandError("light 'state' must be ON or OFF")
            values["state"] = doc["state"].lower()
        if "brightness" in doc:
            b = doc["brightness"]
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b <= 255:
                raise HaCommandError("light 'brightness' must be 0..255")
            values["brightness"] = int(b)
        if "color" in doc:
            c = doc["color"]
            try:
                values["color"] = "#{:02x}{:02x}{:02x}".format(*(int(c[k]) for k in "rgb"))
            except (TypeError, KeyError, ValueError, OverflowError):
                raise HaCommandError("light 'color' must be {\"r\",\"g\",\"b\"}") from None
        if not values:
            raise HaCommandError("light command sets nothing")
        return values
    raise HaCommandError(f"no Home Assistant command {which!r} for a {device_type} device")


def ha_light_state(state: dict[str, Any]) -> dict[str, Any]:
    """Our LED state -> the JSON-schema light state Home Assistant reads. An LED whose on/off is
    not known yet is ``"state": null``, which HA's JSON light shows as unknown (never OFF)."""
    on_off = str(state.get("state", "")).lower()
    out: dict[str, Any] = {"state": {"on": "ON", "off": "OFF"}.get(on_off)}
    if isinstance(state.get("brightness"), (int, float)):
        out["brightness"] = int(state["brightness"])
    color = state.get("color")
    if isinstance(color, str) and COLOR.match(color):
        out["color_mode"] = "rgb"
        out["color"] = {"r": int(color[1:3], 16), "g": int(color[3:5], 16), "b": int(color[5:7], 16)}
    return out


def ha_cover_state(state: dict[str, Any]) -> str | None:
    """Our window state (``position``, ``target``, ``moving``) -> the cover state HA reads on its
    ``state_topic``: ``opening``/``closing`` while it moves, ``stopped`` when it halted short of
    its target, otherwise ``closed`` at 0 and ``open`` above. None while the position is unknown."""
    position, target = state.get("position"), state.get("target")
    if not isinstance(position, (int, float)) or isinstance(position, bool):
        return None
    has_target = isinstance(target, (int, float)) and not isinstance(target, bool)
    if state.get("moving"):
        if has_target and target != position:
            return "opening" if target > position else "closing"
        return None  # moving, but where to is not known: HA keeps what it had
    if has_target and target != position:
        return "stopped"
    return "closed" if position <= 0 else "open"
