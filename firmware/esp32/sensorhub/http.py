# Optional HTTP mode: the board's state as an ESPHome-style REST API (docs/serial-protocol.md).
# Routing is pure (`HttpApi.handle`); `serve` is a minimal HTTP/1.0 server on asyncio streams.
import json

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from .protocol import CommandRefused
from .settings import fraction_or_percent
from .window import parse_target

UNITS = {"temperature": "°C", "humidity": "%", "battery": "%", "battery_voltage": "V",
         "sound_level": "dBFS", "uptime": "s", "pressure": "hPa", "co2": "ppm"}
READING_KEYS = {"temperature": "temperature", "humidity": "humidity", "battery": "battery_pct",
                "battery_voltage": "battery_v", "sound_level": "sound_dbfs", "uptime": "uptime_s",
                "pressure": "pressure", "co2": "co2"}
CAP_OF = {"battery": "battery", "battery_voltage": "battery", "uptime": None}
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def not_found(what):
    return 404, {"error": "NOT_FOUND", "message": "no %s on this board" % what}


def parse_query(query):
    out = {}
    for part in query.split("&"):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key] = value
    return out


class HttpApi:
    def __init__(self, board):
        self.board = board

    def handle(self, method, path, query=""):
        """(status, body dict) for one request."""
        parts = [p for p in path.split("/") if p]
        board = self.board
        if not parts:
            return 200, {"board_id": board.board_id, "fw": _fw(), "caps": list(board.caps)}
        if len(parts) == 2 and parts[0] == "sensor" and method == "GET":
            return self.sensor(parts[1])
        if len(parts) == 2 and parts[0] == "binary_sensor" and method == "GET":
            if parts[1] != "motion" or board.motion is None:
                return not_found("binary_sensor " + parts[1])
            on = board.motion.active
            return 200, {"id": "binary_sensor-motion", "value": on, "state": "ON" if on else "OFF"}
        if len(parts) >= 2 and parts[0] == "cover":
            if parts[1] != "window" or board.window is None:
                return not_found("cover " + parts[1])
            return self.cover(method, parts[2:], query)
        if len(parts) == 2 and parts[0] == "light" and method == "GET":
            if parts[1] != "led" or board.led is None:
                return not_found("light " + parts[1])
            st = board.led.state()
            return 200, {"id": "light-led", "state": "ON" if st["state"] == "on" else "OFF",
                         "color": st["color"], "brightness": st["brightness"], "blink": st["blink"]}
        return not_found("resource " + path)

    def sensor(self, name):
        board = self.board
        key = READING_KEYS.get(name)
        cap = CAP_OF.get(name, name)
        if key is None or (cap is not None and not board.has(cap)):
            return not_found("sensor " + name)
        reading = board.read_sensors(board.hal.ticks_ms())
        value = reading.get(key)
        state = "unknown" if value is None else "%s %s" % (value, UNITS[name])
        return 200, {"id": "sensor-" + name, "value": value, "state": state}

    def cover(self, method, rest, query):
        board = self.board
        now = board.hal.ticks_ms()
        if not rest:
            if method != "GET":
                return 405, {"error": "METHOD_NOT_ALLOWED", "message": "use GET /cover/window"}
        elif rest == ["set"] and method == "POST":
            raw = parse_query(query).get("position")
            try:
                target = parse_target({"position": fraction_or_percent(raw)})
            except (ValueError, TypeError, CommandRefused):
                return 400, {"error": "INVALID_VALUE", "message": "position must be 0..100, got %s" % raw}
            board.window.move_to(target, now)
            board.window_flag.set()
            board.window_line()
        elif rest == ["stop"] and method == "POST":
            board.window.stop(now)
            board.window_line()
        else:
            return not_found("cover action " + "/".join(rest))
        st = board.window.state()
        if st["moving"]:
            op = "OPENING" if st["target"] > st["position"] else "CLOSING"
        else:
            op = "IDLE"
        return 200, {"id": "cover-window", "value": st["position"] / 100.0, "position": st["position"],
                     "target": st["target"], "moving": st["moving"],
                     "state": "OPEN" if st["position"] > 0 else "CLOSED", "current_operation": op}


def _fw():
    from . import FIRMWARE_VERSION
    return FIRMWARE_VERSION


async def _client(api, reader, writer):
    try:
        request = await reader.readline()
        while True:   # skip headers; our routes need none
            header = await reader.readline()
            if not header or header in (b"\r\n", b"\n"):
                break
        parts = request.decode().split(" ")
        if len(parts) < 2:
            status, body = 400, {"error": "BAD_REQUEST", "message": "malformed request line"}
        else:
            target = parts[1]
            pieces = target.split("?", 1)
            path = pieces[0]
            query = pieces[1] if len(pieces) > 1 else ""
            status, body = api.handle(parts[0], path, query)
        data = json.dumps(body).encode()
        head = "HTTP/1.0 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" \
               "Connection: close\r\n\r\n" % (status, REASONS.get(status, "Error"), len(data))
        writer.write(head.encode() + data)
        await writer.drain()
    except Exception:  # noqa: BLE001 - one bad client must not stop the server
        pass
    finally:
        try:
            writer.close()
            await writer.wait_closed()
        except Exception:  # noqa: BLE001
            pass


async def serve(api, host, port):
    """Start the server; returns the asyncio server object."""
    return await asyncio.start_server(lambda r, w: _client(api, r, w), host, port)
