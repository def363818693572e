"""The simulated HAL: the same interface as firmware/esp32/hal.py, backed by a simulated room.

The firmware modules only ever talk to this object, so they run unchanged under CPython.
Serial output goes through `SerialOut` (the emulator's pseudo-terminal and its faults).
"""
from __future__ import annotations

import asyncio
import math
import struct
import time
from collections.abc import Callable
from pathlib import Path

from firmware.esp32.sensorhub import scd40
from firmware.esp32.sensorhub.climate import encode_dht22
from firmware.esp32.sensorhub.schedule import TICKS_PERIOD
from firmware.esp32.sensorhub.sound import FULL_SCALE

from .physics import Room


class SimFlag:
    """asyncio.ThreadSafeFlag as MicroPython has it: set() wakes one waiter, wait() clears."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()
        self._event.clear()


class SimScd40:
    """A Sensirion SCD40 on the simulated I2C bus, answering the commands the way the datasheet
    says: idle until start_periodic_measurement, then a new measurement every ``period_s``;
    while measuring it does not acknowledge a second start (OSError, as a NACK is on a board)."""

    def __init__(self, room: Room, period_s: float = 0.0) -> None:
        self.room = room
        self.period_s = period_s
        self.measuring = False
        self.measured_at: float | None = None   # when the waiting measurement was taken
        self.read_at: float | None = None

    def transfer(self, data: bytes, read: int) -> bytes:
        code = (data[0] << 8) | data[1] if len(data) == 2 else None
        now = time.monotonic()
        if code == scd40.START_PERIODIC_MEASUREMENT and not self.measuring:
            self.measuring, self.measured_at, self.read_at = True, now, None
            return b""
        if code == scd40.STOP_PERIODIC_MEASUREMENT:
            self.measuring = False
            return b""
        if code == scd40.GET_DATA_READY_STATUS and self.measuring:
            return scd40.encode_words((0x8006 if self._ready(now) else 0x8000,))[:read]
        if code == scd40.READ_MEASUREMENT and self.measuring:
            self.read_at = now
            return scd40.encode_measurement(self.room.co2_ppm(), self.room.temperature(),
                                            self.room.humidity())[:read]
        raise OSError(19, "I2C NACK")   # a command the sensor does not take in its state

    def _ready(self, now: float) -> bool:
        # The first measurement comes one period after the start, then one per period.
        due = self.measured_at if self.read_at is None else self.read_at
        return due is not None and now - due >= self.period_s


class SimHal:
    DHT_MIN_INTERVAL_MS = 0   # the simulated sensor has no 2 s limit: a pinned value shows at once
    DIVIDER_TOP = 100000
    DIVIDER_BOTTOM = 100000
    SCD40_PERIOD_S = 0.0   # the simulated sensor measures whenever asked: a pinned value shows at once

    def __init__(self, room: Room, write: Callable[[bytes], bool] | None = None,
                 state_dir: Path | None = None, http: bool = False) -> None:
        self.room = room
        self.write = write or (lambda data: True)
        self.state_dir = state_dir
        self.files: dict[str, str] = {}
        self.http = http
        self.cause = "power_on"
        self.input: asyncio.Queue[bytes] = asyncio.Queue()
        self.sensor_faults: dict[str, int] = {}
        self.pir_handler: Callable | None = None
        self.button_handler: Callable | None = None
        self.button_down = False
        self.servo_us: int | None = None
        self.servo_pulses = 0
        self.led = (0, 0, 0)
        self.wdt_timeout: int | None = None
        self.wdt_fed_at: float | None = None
        self.t0 = time.monotonic()
        self.phase = 0.0
        self.i2c = {scd40.ADDRESS: SimScd40(room, self.SCD40_PERIOD_S)}

    def reboot(self, cause: str) -> None:
        """A new boot: uptime restarts, interrupt handlers and unread input are gone; flash stays."""
        self.cause = cause
        self.input = asyncio.Queue()
        self.pir_handler = None
        self.button_handler = None
        self.servo_us = None
        self.t0 = time.monotonic()

    # --- time, flags, system --------------------------------------------------------------

    def ticks_ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000) % TICKS_PERIOD

    def make_flag(self) -> SimFlag:
        return SimFlag()

    def reset_cause(self) -> str:
        return self.cause

    def free_mem(self) -> int:
        return 112640 - 64 * (self.ticks_ms() // 1000 % 32)

    def wifi_rssi(self) -> int | None:
        return -58 if self.http else None

    def wdt_start(self, timeout_ms: int) -> None:
        self.wdt_timeout = timeout_ms
        self.wdt_fed_at = time.monotonic()

    def wdt_feed(self) -> None:
        self.wdt_fed_at = time.monotonic()

    # --- flash files ----------------------------------------------------------------------

    def read_file(self, name: str) -> str | None:
        if self.state_dir is not None:
            path = self.state_dir / name
            return path.read_text() if path.exists() else None
        return self.files.get(name)

    def write_file(self, name: str, text: str) -> None:
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.state_dir / (name + ".tmp")
            tmp.write_text(text)
            tmp.replace(self.state_dir / name)
        else:
            self.files[name] = text

    def remove_file(self, name: str) -> None:
        if self.state_dir is not None:
            (self.state_dir / name).unlink(missing_ok=True)
        else:
            self.files.pop(name, None)

    # --- serial ---------------------------------------------------------------------------

    def serial_write(self, data: bytes) -> bool:
        return self.write(data)

    async def serial_read(self) -> bytes:
        return await self.input.get()

    # --- sensors --------------------------------------------------------------------------

    def _fail(self, sensor: str) -> bool:
        left = self.sensor_faults.get(sensor, 0)
        if left > 0:
            self.sensor_faults[sensor] = left - 1
            return True
        return False

    def dht_read(self) -> bytes:
        if self._fail("temperature") or self._fail("humidity"):
            raise OSError(110, "timeout")  # what dht.DHT22.measure() raises when the sensor is silent
        return encode_dht22(self.room.temperature(), self.room.humidity())

    def pir_value(self) -> int:
        return 1 if self.room.pir_level else 0

    def pir_irq(self, handler: Callable) -> None:
        self.pir_handler = handler

    def pir_changed(self) -> None:
        """The simulated PIR pin changed level: fire the interrupt like Pin.irq would."""
        if self.pir_handler is not None:
            self.pir_handler(None)

    def button_irq(self, handler: Callable) -> None:
        self.button_handler = handler

    def button_value(self) -> int:
        return 1 if self.button_down else 0

    def adc_read_uv(self) -> int:
        if self._fail("battery"):
            raise OSError(5, "ADC read failed")
        volts = self.room.battery_v() * self.DIVIDER_BOTTOM / (self.DIVIDER_TOP + self.DIVIDER_BOTTOM)
        return int(volts * 1_000_000 + self.room.rng.gauss(0, 2000))

    def i2s_read(self, buf: bytearray) -> int:
        """Fill buf with 32-bit I2S slots: a 440 Hz tone whose RMS is the room's sound level."""
        if self._fail("sound_level"):
            raise OSError(5, "I2S read failed")
        level = self.room.sound_dbfs()
        amplitude = FULL_SCALE * (10 ** (level / 20.0)) * math.sqrt(2)
        step = 2 * math.pi * 440 / 16000
        for i in range(len(buf) // 4):
            value = int(amplitude * math.sin(self.phase))
            value = max(-FULL_SCALE, min(FULL_SCALE - 1, value))
            struct.pack_into("<i", buf, i * 4, value << 8)
            self.phase += step
        self.phase %= 2 * math.pi
        return len(buf) - len(buf) % 4

    def i2c_transfer(self, address: int, data: bytes, read: int = 0, delay_ms: int = 0) -> bytes:
        device = self.i2c.get(address)
        if device is None:
            raise OSError(19, "I2C NACK")   # nothing at that address
        if address == scd40.ADDRESS and self._fail("co2"):
            raise OSError(116, "I2C timeout")
        return device.transfer(bytes(data), read)

    # --- actuators ------------------------------------------------------------------------

    def servo_pulse_us(self, us: int) -> None:
        self.servo_us = us
        self.servo_pulses += 1

    def servo_off(self) -> None:
        self.servo_us = None

    def led_rgb(self, r: int, g: int, b: int) -> None:
        self.led = (r, g, b)

    def snapshot(self) -> dict:
        return {"servo_us": self.servo_us, "led_rgb": list(self.led), "reset_cause": self.cause,
                "sensor_faults": dict(self.sensor_faults)}
