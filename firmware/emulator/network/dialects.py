"""The REST dialects a simulated device speaks, each over the same ``SimulatedDevice``.

``handle(device, method, path, query) -> (status, body)``; ``body`` is made JSON by the server
(``None`` is an empty body, as ESPHome answers its actions). The shapes follow the devices'
own documentation (docs/http-devices.md); ``sensor_hub`` is served by the firmware's own
``HttpApi`` over an adapter, so it is exactly what a board in HTTP mode answers.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from firmware.esp32.sensorhub.http import HttpApi

from .model import READINGS, SimulatedDevice

Answer = tuple[int, Any]
UNITS = {"temperature": "°C", "humidity": "%", "pressure": "hPa", "illuminance": "lx", "sound_level": "dBFS",
         "battery": "%", "battery_voltage": "V", "co2": "ppm"}


def _not_found(what: str) -> Answer:
    return 404, {"error": "NOT_FOUND", "message": f"no {what}"}


def _reading_named(name: str) -> str | None:
    """A sensor's object id -> the reading it shows: ``outdoor_temperature`` shows temperature."""
    if name in READINGS:
        return name
    for reading in sorted(READINGS, key=len, reverse=True):
        if reading in name:
            return reading
    return None


# --------------------------------------------------------------------------- ESPHome


def esphome(device: SimulatedDevice, method: str, path: str, query: dict[str, str]) -> Answer:
    parts = [unquote(p) for p in path.split("/") if p]
    if len(parts) < 2:
        return 200, {"title": device.name, "comment": "simulated ESPHome node"}
    domain, object_id, action = parts[0], parts[1], (parts[2] if len(parts) > 2 else "")
    if method == "GET" and action:
        return 405, None
    if method == "POST" and not action:
        return 405, None
    if domain == "sensor" and not action:
        reading = _reading_named(object_id)
        if reading is None:
            return 404, None
        value = device.reading(reading)
        return 200, {"id": f"sensor-{object_id}", "value": value, "state": f"{value} {UNITS[reading]}"}
    if domain == "binary_sensor" and not action:
        if "motion" not in object_id and "presence" not in object_id:
            return 404, None
        on = device.motion_now()
        return 200, {"id": f"binary_sensor-{object_id}", "value": on, "state": "ON" if on else "OFF"}
    if domain == "switch":
        if action in ("turn_on", "turn_off", "toggle"):
            device.set_relay(not device.relay(object_id) if action == "toggle" else action == "turn_on", object_id)
            return 200, None
        if action:
            return 404, None
        on = device.relay(object_id)
        return 200, {"id": f"switch-{object_id}", "value": on, "state": "ON" if on else "OFF"}
    if domain == "light":
        return _esphome_light(device, object_id, action, query)
    if domain == "cover":
        return _esphome_cover(device, object_id, action, query)
    return 404, None


def _esphome_light(device: SimulatedDevice, object_id: str, action: str, query: dict[str, str]) -> Answer:
    if action == "turn_off":
        device.set_light(on=False)
        return 200, None
    if action == "turn_on":
        try:
            brightness = int(query["brightness"]) if "brightness" in query else None
            rgb = [int(query[c]) for c in "rgb"] if all(c in query for c in "rgb") else None
        except ValueError:
            return 400, None
        color = None if rgb is None else "#" + "".join(f"{max(0, min(255, c)):02x}" for c in rgb)
        device.set_light(on=True, brightness=brightness, color=color)
        return 200, None
    if action:
        return 404, None
    light = device.light
    rgb = light["color"].lstrip("#")
    return 200, {"id": f"light-{object_id}", "state": "ON" if light["on"] else "OFF",
                 "brightness": light["brightness"], "color_mode": "rgb",
                 "color": {"r": int(rgb[0:2], 16), "g": int(rgb[2:4], 16), "b": int(rgb[4:6], 16)}}


def _esphome_cover(device: SimulatedDevice, object_id: str, action: str, query: dict[str, str]) -> Answer:
    if action == "set":
        try:
            fraction = float(query["position"])
        except (KeyError, ValueError):
            return 400, None
        if not 0 <= fraction <= 1:
            return 400, None
        device.move_cover(round(fraction * 100))
        return 200, None
    if action in ("open", "close"):
        device.move_cover(100 if action == "open" else 0)
        return 200, None
    if action == "stop":
        device.stop_cover()
        return 200, None
    if action:
        return 404, None
    cover = device.cover()
    operation = "IDLE"
    if cover["moving"]:
        operation = "OPENING" if cover["target"] > cover["position"] else "CLOSING"
    return 200, {"id": f"cover-{object_id}", "value": cover["position"] / 100, "position": cover["position"] / 100,
                 "state": "OPEN" if cover["position"] > 0 else "CLOSED", "current_operation": operation}


# --------------------------------------------------------------------------- Shelly Gen2


def shelly_status(device: SimulatedDevice) -> dict[str, Any]:
    t = device.reading("temperature")
    cover = device.cover()
    if cover["moving"]:
        cover_state = "opening" if cover["target"] > cover["position"] else "closing"
    else:
        cover_state = "open" if cover["position"] >= 100 else ("closed" if cover["position"] <= 0 else "stopped")
    light = device.light
    return {
        "sys": {"mac": "AABBCCDDEEFF", "uptime": int(time.monotonic()), "restart_required": False},
        "wifi": {"sta_ip": "127.0.0.1", "status": "got ip", "rssi": -58},
        "temperature:0": {"id": 0, "tC": t, "tF": round(t * 9 / 5 + 32, 1)},
        "humidity:0": {"id": 0, "rh": device.reading("humidity")},
        "illuminance:0": {"id": 0, "lux": device.reading("illuminance")},
        "devicepower:0": {"id": 0, "battery": {"V": device.reading("battery_voltage"),
                                               "percent": device.reading("battery")},
                          "external": {"present": False}},
        "input:0": {"id": 0, "state": device.motion_now()},
        "switch:0": {"id": 0, "source": "http", "output": device.relay("0"), "apower": 0.0, "voltage": 231.2,
                     "temperature": {"tC": 38.5, "tF": 101.3}},
        "cover:0": {"id": 0, "source": "http", "state": cover_state, "current_pos": cover["position"],
                    "target_pos": cover["target"]},
        "light:0": {"id": 0, "source": "http", "output": light["on"],
                    "brightness": round(light["brightness"] * 100 / 255)},
    }


NULL = b"null"
"""What a Shelly RPC without a result answers (JSON null, not an empty body)."""


def _shelly_error(code: int, message: str, status: int = 400) -> Answer:
    return status, {"code": code, "message": message}


def shelly(device: SimulatedDevice, method: str, path: str, query: dict[str, str]) -> Answer:
    if not path.startswith("/rpc/"):
        return 404, None
    rpc = path[len("/rpc/"):]
    status = shelly_status(device)
    ident = query.get("id", "0")
    if rpc == "Shelly.GetStatus":
        return 200, status
    if rpc == "Shelly.GetDeviceInfo":
        return 200, {"id": device.name, "model": "SNSW-001X16EU", "gen": 2, "ver": "1.4.4", "app": "Plus1"}
    namespace, _, verb = rpc.partition(".")
    component = f"{namespace.lower()}:{ident}"
    if component not in status:
        return _shelly_error(-105, f"Argument 'id', value {ident} not found!")
    if verb == "GetStatus":
        return 200, status[component]
    if rpc == "Switch.Set":
        if query.get("on") not in ("true", "false"):
            return _shelly_error(-103, "Missing required argument 'on'!")
        return 200, {"was_on": device.set_relay(query["on"] == "true", ident)}
    if rpc == "Switch.Toggle":
        return 200, {"was_on": device.set_relay(not device.relay(ident), ident)}
    if rpc == "Cover.GoToPosition":
        try:
            position = int(query["pos"])
        except (KeyError, ValueError):
            return _shelly_error(-103, "Missing required argument 'pos'!")
        if not 0 <= position <= 100:
            return _shelly_error(-103, f"Argument 'pos', value {position} out of range!")
        device.move_cover(position)
        return 200, NULL
    if rpc == "Cover.Stop":
        device.stop_cover()
        return 200, NULL
    if rpc == "Light.Set":
        brightness = query.get("brightness")
        device.set_light(on=query.get("on", "true") == "true",
                         brightness=None if brightness is None else round(int(brightness) * 255 / 100))
        return 200, NULL
    return 404, {"code": 404, "message": f"No handler for {rpc}"}


# --------------------------------------------------------------------------- Tasmota


def tasmota(device: SimulatedDevice, method: str, path: str, query: dict[str, str]) -> Answer:
    if path != "/cm":
        return 404, None
    command = " ".join(query.get("cmnd", "").split())
    word, _, argument = command.partition(" ")
    word = word.lower()
    if word == "status" and argument == "10":
        return 200, {"StatusSNS": {
            "Time": datetime.now().strftime("%Y-%m-%dT%H:%M:%S"),
            "AM2301": {"Temperature": device.reading("temperature"), "Humidity": device.reading("humidity"),
                       "DewPoint": round(device.reading("temperature") - 8.3, 1)},
            "BMP280": {"Temperature": round(device.reading("temperature") + 0.4, 1),
                       "Pressure": device.reading("pressure")},
            "BH1750": {"Illuminance": device.reading("illuminance")},
            "TempUnit": "C", "PressureUnit": "hPa"}}
    if word in ("power", "power1"):
        arg = argument.lower()
        if arg in ("on", "1"):
            device.set_relay(True)
        elif arg in ("off", "0"):
            device.set_relay(False)
        elif arg in ("toggle", "2"):
            device.set_relay(not device.relay())
        elif arg:
            return 200, {"Command": "Error"}
        return 200, {"POWER": "ON" if device.relay() else "OFF"}
    return 200, {"Command": "Unknown"}


# --------------------------------------------------------------------------- plain JSON


def plain_json(device: SimulatedDevice, method: str, path: str, query: dict[str, str]) -> Answer:
    if path not in ("", "/"):
        return 404, {"error": "not found"}
    readings = {name: device.reading(name) for name in READINGS}
    cover = device.cover()
    light = device.light
    return 200, {**readings, "motion": device.motion_now(), "switch": "ON" if device.relay() else "OFF",
                 "window": cover, "led": {"state": "on" if light["on"] else "off", "color": light["color"],
                                          "brightness": light["brightness"]},
                 "outdoor": {"temperature": readings["temperature"], "humidity": readings["humidity"]},
                 "sensors": [{"name": "temperature", "value": readings["temperature"]},
                             {"name": "humidity", "value": readings["humidity"]}]}


# --------------------------------------------------------------------------- sensor-hub firmware


class _Window:
    def __init__(self, device: SimulatedDevice) -> None:
        self.device = device

    def state(self) -> dict[str, Any]:
        return self.device.cover()

    def move_to(self, target: int, now: int) -> int:
        self.device.move_cover(target)
        return target

    def stop(self, now: int) -> None:
        self.device.stop_cover()


class _Flag:
    def set(self) -> None:
        pass


class _Motion:
    def __init__(self, device: SimulatedDevice) -> None:
        self.device = device

    @property
    def active(self) -> bool:
        return self.device.motion_now()


class _Led:
    def __init__(self, device: SimulatedDevice) -> None:
        self.device = device

    def state(self) -> dict[str, Any]:
        light = self.device.light
        return {"state": "on" if light["on"] else "off", "color": light["color"],
                "brightness": light["brightness"], "blink": 0}


class _Hal:
    @staticmethod
    def ticks_ms() -> int:
        return int(time.monotonic() * 1000)


class _Board:
    """What the firmware's ``HttpApi`` asks of a board, answered from the simulated device."""

    caps = ("temperature", "humidity", "motion", "battery", "sound_level", "window", "led", "pressure", "co2")

    def __init__(self, device: SimulatedDevice) -> None:
        self.device = device
        self.board_id = device.name
        self.hal = _Hal()
        self.motion = _Motion(device)
        self.window = _Window(device)
        self.window_flag = _Flag()
        self.led = _Led(device)

    def has(self, cap: str) -> bool:
        return cap in self.caps

    def read_sensors(self, now: int) -> dict[str, Any]:
        d = self.device
        return {"temperature": d.reading("temperature"), "humidity": d.reading("humidity"),
                "pressure": d.reading("pressure"), "battery_pct": d.reading("battery"),
                "battery_v": d.reading("battery_voltage"), "sound_dbfs": d.reading("sound_level"),
                "co2": d.reading("co2"), "motion": d.motion_now(), "uptime_s": int(time.monotonic())}

    def window_line(self) -> None:
        pass


def sensor_hub(device: SimulatedDevice, method: str, path: str, query: dict[str, str]) -> Answer:
    api = HttpApi(_Board(device))
    raw_query = "&".join(f"{k}={v}" for k, v in query.items())
    return api.handle(method, path, raw_query)


DIALECTS: dict[str, Callable[[SimulatedDevice, str, str, dict[str, str]], Answer]] = {
    "esphome": esphome, "shelly": shelly, "tasmota": tasmota, "json": plain_json, "sensor_hub": sensor_hub}


def encode(body: Any) -> bytes:
    return b"" if body is None else json.dumps(body).encode()
