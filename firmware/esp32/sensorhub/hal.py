# The hardware abstraction layer: the ONLY module that touches machine, network, dht, esp32.
# The emulator provides the same interface in firmware/emulator/simhal.py; keep them in step.
# Pins follow the wiring table in firmware/README.md; change them in PINS (or config.json "pins").
import gc
import os
import select
import sys
import time

import machine

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

PINS = {
    "dht": 4,         # DHT22 data (10k pull-up to 3V3)
    "pir": 27,        # PIR output (HC-SR501 / AM312)
    "button": 0,      # BOOT button, active low
    "battery_adc": 34,  # divider midpoint (100k/100k)
    "i2s_sck": 14, "i2s_ws": 15, "i2s_sd": 32,   # INMP441
    "servo": 13,      # window servo signal (50 Hz PWM)
    "led_r": 25, "led_g": 26, "led_b": 33,       # RGB LED (common cathode) via 220R
    "i2c_scl": 22, "i2c_sda": 21,                # SCD40 CO2 sensor (caps "co2"), 100 kHz
}

RESET_CAUSES = {
    getattr(machine, "PWRON_RESET", -1): "power_on",
    getattr(machine, "HARD_RESET", -2): "hard",
    getattr(machine, "WDT_RESET", -3): "watchdog",
    getattr(machine, "DEEPSLEEP_RESET", -4): "deep_sleep",
    getattr(machine, "SOFT_RESET", -5): "soft",
}


class Esp32Hal:
    DHT_MIN_INTERVAL_MS = 2000   # the DHT22 cannot be read more often
    DIVIDER_TOP = 100000
    DIVIDER_BOTTOM = 100000

    def __init__(self, pins=None, wlan=None):
        pins = dict(PINS, **(pins or {}))
        self.pins = pins
        self.wlan = wlan
        self._wdt = None
        self._dht = None
        self._adc = None
        self._i2s = None
        self._servo = None
        self._leds = None
        self._i2c = None
        self._pir = machine.Pin(pins["pir"], machine.Pin.IN)
        self._button = machine.Pin(pins["button"], machine.Pin.IN, machine.Pin.PULL_UP)
        # The protocol uses the console (UART0 / USB at 115200 8N1): while main.py runs the REPL is
        # not reading it. Ctrl-C stays enabled so mpremote can still stop main.py (JSON never has 0x03).
        self._out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
        self._in = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)

    # --- time, flags, system ---
    def ticks_ms(self):
        return time.ticks_ms()

    def make_flag(self):
        return asyncio.ThreadSafeFlag()

    def reset_cause(self):
        return RESET_CAUSES.get(machine.reset_cause(), "unknown")

    def free_mem(self):
        gc.collect()
        return gc.mem_free()

    def wifi_rssi(self):
        if self.wlan is not None and self.wlan.isconnected():
            return self.wlan.status("rssi")
        return None

    def wdt_start(self, timeout_ms):
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=timeout_ms)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset(self):
        machine.reset()

    def deep_sleep(self, ms):
        machine.deepsleep(ms)

    # --- flash files ---
    def read_file(self, name):
        try:
            with open(name) as f:
                return f.read()
        except OSError:
            return None

    def write_file(self, name, text):
        # Write then rename: a power cut mid-write leaves the old file, not half a file.
        with open(name + ".tmp", "w") as f:
            f.write(text)
        os.rename(name + ".tmp", name)

    def remove_file(self, name):
        try:
            os.remove(name)
        except OSError:
            pass

    # --- serial ---
    def serial_write(self, data):
        # The console driver copies into its TX buffer; with no host attached the bytes simply leave
        # the UART unread (the board never waits for the host).
        n = self._out.write(data)
        return n is None or n == len(data)

    async def serial_read(self):
        # stdin reads block until they have all they asked for, so read only bytes that poll()
        # says are there: a partial line (noise, a cable pulled mid-line) never stalls the loop.
        while True:
            data = bytearray()
            while len(data) < 256 and self._poll.poll(0):
                data += self._in.read(1)
            if data:
                return bytes(data)
            await asyncio.sleep_ms(10)

    # --- sensors ---
    def dht_read(self):
        import dht
        if self._dht is None:
            self._dht = dht.DHT22(machine.Pin(self.pins["dht"]))
        self._dht.measure()     # raises OSError on timeout or checksum error
        return bytes(self._dht.buf)

    def pir_value(self):
        return self._pir.value()

    def pir_irq(self, handler):
        self._pir.irq(handler=handler, trigger=machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING)

    def button_irq(self, handler):
        self._button.irq(handler=handler, trigger=machine.Pin.IRQ_FALLING)

    def button_value(self):
        return 0 if self._button.value() else 1   # active low

    def adc_read_uv(self):
        if self._adc is None:
            self._adc = machine.ADC(machine.Pin(self.pins["battery_adc"]))
            self._adc.atten(machine.ADC.ATTN_11DB)
        return self._adc.read_uv()

    def i2s_read(self, buf):
        if self._i2s is None:
            self._i2s = machine.I2S(0, sck=machine.Pin(self.pins["i2s_sck"]), ws=machine.Pin(self.pins["i2s_ws"]),
                                    sd=machine.Pin(self.pins["i2s_sd"]), mode=machine.I2S.RX, bits=32,
                                    format=machine.I2S.MONO, rate=16000, ibuf=8192)
        return self._i2s.readinto(buf)

    def i2c_transfer(self, address, data, read=0, delay_ms=0):
        """Write `data` to an I2C device, wait `delay_ms` for it to execute, read `read` bytes.
        OSError when the device does not acknowledge (absent, busy, or refusing the command)."""
        if self._i2c is None:
            self._i2c = machine.I2C(0, scl=machine.Pin(self.pins["i2c_scl"]), sda=machine.Pin(self.pins["i2c_sda"]),
                                    freq=100000)
        self._i2c.writeto(address, data)
        if not read:
            return b""
        time.sleep_ms(delay_ms)
        return self._i2c.readfrom(address, read)

    # --- actuators ---
    def servo_pulse_us(self, us):
        if self._servo is None:
            self._servo = machine.PWM(machine.Pin(self.pins["servo"]), freq=50)
        self._servo.duty_ns(us * 1000)

    def servo_off(self):
        if self._servo is not None:
            self._servo.deinit()
            self._servo = None

    def led_rgb(self, r, g, b):
        if self._leds is None:
            self._leds = [machine.PWM(machine.Pin(self.pins[k]), freq=1000) for k in ("led_r", "led_g", "led_b")]
        for pwm, value in zip(self._leds, (r, g, b)):
            pwm.duty_u16(value * 257)


def connect_wifi(ssid, password, timeout_ms=15000):
    """Station mode for the HTTP mode; returns the WLAN object (connected or not)."""
    import network
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(ssid, password)
        start = time.ticks_ms()
        while not wlan.isconnected() and time.ticks_diff(time.ticks_ms(), start) < timeout_ms:
            time.sleep_ms(100)
    return wlan

