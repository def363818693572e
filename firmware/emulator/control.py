"""The control channel: a UNIX socket taking one JSON object per line, answering one JSON line.

Tests and benchmarks use it to pin readings, trigger motion, inject faults and read state
(requests are listed in docs/serial-protocol.md, "The emulator").
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

from .device import Device

MAX_REQUEST = 64 * 1024
FAILING_SENSORS = ("temperature", "humidity", "battery", "sound_level", "co2")
"""What ``{"fault": "sensor"}`` can make fail (co2: the SCD40 stops answering on I2C)."""


class RequestError(Exception):
    pass


def _number(req: dict, key: str, default: float | None = None, low: float = 0, high: float = 3600) -> float:
    value = req.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(f"{key} must be a number {low}..{high}")
    return float(value)


def _count(req: dict, key: str, default: int | None = None, high: int = 10_000_000) -> int:
    value = req.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise RequestError(f"{key} must be an integer 0..{high}")
    return value


class ControlServer:
    def __init__(self, device: Device, path: Path) -> None:
        self.device = device
        self.path = path
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()   # a socket left behind by an emulator that was killed
        self.server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_REQUEST)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    reply = {"ok": False, "error": "request too long"}
                    writer.write((json.dumps(reply) + "\n").encode())
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                reply = await self.handle_line(line)
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def handle_line(self, line: bytes) -> dict:
        try:
            req = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "request is not valid JSON"}
        if not isinstance(req, dict):
            return {"ok": False, "error": "request must be a JSON object"}
        try:
            return await self.handle(req)
        except (RequestError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}

    async def handle(self, req: dict) -> dict:
        dev = self.device
        if "set" in req:
            if not isinstance(req["set"], dict):
                raise RequestError("set must be an object of readings")
            dev.set_readings(req["set"])
            return {"ok": True, "pinned": dev.room.pinned}
        if "motion" in req:
            value = req["motion"]
            if value is not None and not isinstance(value, bool):
                raise RequestError("motion must be true, false or null (back to simulation)")
            dev.set_motion(value)
            return {"ok": True, "motion": dev.room.pir_level}
        if "button" in req:
            kind = req["button"]
            if kind not in ("short", "long"):
                raise RequestError('button must be "short" or "long"')
            asyncio.ensure_future(dev.press_button(kind))
            return {"ok": True}
        if "fault" in req:
            return self._fault(req)
        if "get" in req:
            if req["get"] != "state":
                raise RequestError('get supports "state"')
            return {"ok": True, "state": dev.state()}
        if "emit" in req:
            if not isinstance(req["emit"], dict):
                raise RequestError("emit must be a message object")
            return {"ok": True, "line": dev.emit(req["emit"])}
        if "burst" in req:
            count = _count(req, "burst")
            start = time.monotonic()
            sent = await dev.burst(count)
            return {"ok": True, "sent": sent, "seconds": round(time.monotonic() - start, 6)}
        if "reset" in req:
            dev.reboot("soft")
            return {"ok": True}
        raise RequestError("unknown request; use set, motion, button, fault, get, emit, burst or reset")

    def _fault(self, req: dict) -> dict:
        dev = self.device
        kind = req["fault"]
        if kind == "garbage":
            dev.garbage(_count(req, "count", 1, 10000))
        elif kind == "drop":
            dev.drop_next += _count(req, "count", 1, 1_000_000)
        elif kind == "stall":
            dev.stalled_until = time.monotonic() + _number(req, "seconds")
        elif kind == "unplug":
            dev.unplug(_number(req, "seconds", 1.0))
        elif kind == "oversize":
            dev.oversize(_count(req, "bytes", 4096, 10_000_000))
        elif kind == "noack":
            enabled = req.get("enabled", True)
            if not isinstance(enabled, bool):
                raise RequestError("enabled must be true or false")
            dev.set_noack(enabled)
        elif kind == "sensor":
            sensor = req.get("sensor")
            if sensor not in FAILING_SENSORS:
                raise RequestError(f"sensor must be {', '.join(FAILING_SENSORS[:-1])} or {FAILING_SENSORS[-1]}")
            dev.hal.sensor_faults[sensor] = _count(req, "count", 1, 1_000_000)
        elif kind == "clear":
            dev.drop_next = 0
            dev.stalled_until = 0.0
            dev.set_noack(False)
            dev.hal.sensor_faults.clear()
        else:
            raise RequestError("fault must be garbage, drop, stall, unplug, oversize, noack, sensor or clear")
        return {"ok": True, "fault": kind}
