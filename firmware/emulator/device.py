"""One emulated board: the firmware's Board/App on a SimHal, a pty, faults, reboots and unplugs."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from firmware.esp32.sensorhub.app import App
from firmware.esp32.sensorhub.board import DEFAULT_CAPS, Board
from firmware.esp32.sensorhub.protocol import MAX_LINE, encode

from .physics import Room
from .pty_port import PtyPort
from .simhal import SimHal

BOOT_NOISE = (
    b"\x00\xff\xfe ets Jun  8 2016 00:22:57\r\n\r\n"
    b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
    b"configsip: 0, SPIWP:0xee\r\n"
    b"clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00\r\n"
    b"mode:DIO, clock div:2\r\nload:0x3fff0030,len:4540\r\nho 0 tail 12 room 4\r\n"
    b"load:0x40078000,len:12344\r\nentry 0x4008059c\r\n"
    b'{"type":"sensor","seq":41,"temper'  # a line cut by the reset, finished by the next newline
    b"\r\n"
)
GARBAGE_LINES = (
    b"Guru Meditation Error: Core  1 panic'ed (LoadProhibited). Exception was unhandled.\r\n",
    b"\xff\xfe\x00\x80\x81 \xc3\x28 noise\n",
    b'{"type":"sensor","seq":\n',
    b"[1,2,3]\n",
    b"W (1234) wifi: esp_wifi_connect 1142 wifi not start\r\n",
)
PHYSICS_TICK_S = 0.1


@dataclass
class Options:
    board_id: str = "board-1"
    link: Path | None = None
    seed: int | None = None
    interval_ms: int | None = None
    boot_noise: bool = False
    motor_speed: float | None = None
    timestamps: bool = False
    caps: tuple[str, ...] = DEFAULT_CAPS
    motion_per_hour: float = 12.0
    state_dir: Path | None = None
    http: bool = False


class Device:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.room = Room(seed=options.seed, motion_per_hour=options.motion_per_hour)
        self.port = PtyPort(options.link, self._on_input)
        self.hal = SimHal(self.room, self._write, options.state_dir, http=options.http)
        self.board: Board | None = None
        self.app: App | None = None
        self.boots = 0
        self.drop_next = 0
        self.stalled_until = 0.0
        self.unplugged = False
        self.noack = False
        self.lost_lines = 0
        self.reboot_request: tuple[str, float] | None = None   # (reset cause, quiet seconds first)
        self.wakeup = asyncio.Event()
        self._seed_settings()

    def _seed_settings(self) -> None:
        """Command-line defaults become the board's stored settings (as if configured earlier)."""
        config: dict = {}
        calibration: dict = {}
        if self.options.interval_ms is not None:
            config["interval_ms"] = self.options.interval_ms
        if self.options.motor_speed is not None:
            calibration["speed_pct_s"] = self.options.motor_speed
        if config or calibration:
            existing = self.hal.read_file("config.json")
            doc = json.loads(existing) if existing else {}
            doc.setdefault("config", {}).update(config)
            doc.setdefault("calibration", {}).update(calibration)
            self.hal.write_file("config.json", json.dumps(doc))

    # --- serial plumbing ------------------------------------------------------------------

    def _on_input(self, data: bytes) -> None:
        if not self.unplugged:
            self.hal.input.put_nowait(data)

    def _write(self, data: bytes) -> bool:
        """Every board line passes here: faults decide whether it reaches the pty."""
        if self.unplugged or time.monotonic() < self.stalled_until:
            self.lost_lines += 1
            return False
        if self.drop_next:
            self.drop_next -= 1
            self.lost_lines += 1
            return False
        if not self.port.write(data):
            self.lost_lines += 1
            return False
        return True

    def write_raw(self, data: bytes) -> None:
        if not self.unplugged and time.monotonic() >= self.stalled_until:
            self.port.write(data)

    def _sensor_extra(self) -> dict:
        return {"ts": time.time()}

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Boot, run until reset/sleep/unplug, reboot; until `stop` is set."""
        physics = asyncio.create_task(self._physics_task())
        try:
            cause = "power_on"
            while not stop.is_set():
                await self._boot(cause)
                app_task = asyncio.create_task(self.app.run())
                stop_task = asyncio.create_task(stop.wait())
                wake_task = asyncio.create_task(self.wakeup.wait())
                done, _ = await asyncio.wait({app_task, stop_task, wake_task}, return_when=asyncio.FIRST_COMPLETED)
                for t in (stop_task, wake_task):
                    t.cancel()
                self.wakeup.clear()
                if app_task not in done:
                    self.app.finish("external")
                ended = await app_task
                if stop.is_set():
                    break
                cause, quiet = self._next_boot(ended)
                if quiet > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), quiet)
                if self.unplugged and not stop.is_set():
                    self.port.open()
                    self.unplugged = False
        finally:
            physics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await physics

    def _next_boot(self, ended: str | None) -> tuple[str, float]:
        if self.reboot_request is not None:
            cause, quiet = self.reboot_request
            self.reboot_request = None
            return cause, quiet
        if ended == "sleep" and self.board is not None:
            return "deep_sleep", self.board.config["interval_ms"] / 1000.0
        return "soft", 0.0

    async def _boot(self, cause: str) -> None:
        self.boots += 1
        self.hal.reboot(cause)
        if self.options.boot_noise:
            self.write_raw(BOOT_NOISE)
        self.board = Board(self.hal, self.options.board_id, self.options.caps)
        self.board.acks_enabled = not self.noack
        self.app = App(self.board, max_burst=None,
                       sensor_extra=self._sensor_extra if self.options.timestamps else None)

    async def _physics_task(self) -> None:
        while True:
            before = self.room.pir_level
            after = self.room.step()
            if before != after:
                self.hal.pir_changed()
            await asyncio.sleep(PHYSICS_TICK_S)

    # --- control actions ------------------------------------------------------------------

    def set_readings(self, values: dict) -> None:
        """Pin readings so the very next sensor line shows them (the mic level is re-sampled now)."""
        self.room.set(values)
        if "sound_dbfs" in values and self.board is not None and self.board.sound is not None:
            self.board.sound.sample()

    def set_motion(self, on: bool | None) -> None:
        before = self.room.pir_level
        self.room.forced_motion = on
        self.room.step()
        if before != self.room.pir_level:
            self.hal.pir_changed()

    async def press_button(self, kind: str) -> None:
        self.hal.button_down = True
        if self.hal.button_handler is not None:
            self.hal.button_handler(None)
        await asyncio.sleep(1.2 if kind == "long" else 0.08)
        self.hal.button_down = False

    def reboot(self, cause: str = "soft", quiet: float = 0.0) -> None:
        self.reboot_request = (cause, quiet)
        self.wakeup.set()

    def unplug(self, seconds: float) -> None:
        self.unplugged = True
        self.port.close()
        self.reboot("power_on", seconds)

    def garbage(self, count: int) -> None:
        for i in range(count):
            self.write_raw(GARBAGE_LINES[i % len(GARBAGE_LINES)])

    def oversize(self, size: int) -> None:
        body = b'{"type":"sensor","pad":"'
        filler = max(0, size - len(body) - 3)
        self.write_raw(body + b"x" * filler + b'"}\n')

    def set_noack(self, enabled: bool) -> None:
        self.noack = enabled
        if self.board is not None:
            self.board.acks_enabled = not enabled

    def emit(self, msg: dict) -> dict:
        if self.board is None:
            raise ValueError("board is not running")
        msg = dict(msg)
        kind = msg.pop("type", None)
        if not isinstance(kind, str):
            raise ValueError('emit needs an object with a string "type"')
        if "seq" in msg:
            line = encode({"type": kind, **msg})
            if len(line) > MAX_LINE:
                raise ValueError("line longer than 1024 bytes")
            self.write_raw(line)
            return {"type": kind, **msg}
        return self.board.emit(kind, msg)

    async def burst(self, count: int) -> int:
        board = self.board
        if board is None:
            return 0
        for i in range(count):
            now = self.hal.ticks_ms()
            board.sensor(now, extra=self._sensor_extra() if self.options.timestamps else None)
            if i % 64 == 63:
                await self.port.drain()
        await self.port.drain(0)
        return count

    def state(self) -> dict:
        board = self.board.snapshot() if self.board else {}
        return {
            "board": board, "room": self.room.snapshot(), "hal": self.hal.snapshot(),
            "pty": self.port.path, "link": str(self.options.link) if self.options.link else None,
            "boots": self.boots, "unplugged": self.unplugged,
            "faults": {"drop_next": self.drop_next, "noack": self.noack,
                       "stalled_for": max(0.0, round(self.stalled_until - time.monotonic(), 3))},
            "lost_lines": self.lost_lines,
        }
