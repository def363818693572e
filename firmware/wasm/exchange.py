# A scripted exchange with the hardware-free firmware modules, run under CPython and under real
# MicroPython (tests/firmware/test_micropython.py compares the two outputs line by line).
# Every board line is printed as it is written; "trace" lines record internal results.
# Deterministic: a scripted clock, fixed sensor values, no asyncio timing.
import json

from sensorhub.board import Board
from sensorhub.climate import encode_dht22
from sensorhub.http import HttpApi
from sensorhub.protocol import LineBuffer
from sensorhub.schedule import TICKS_PERIOD, Periodic, ticks_add, ticks_diff
from sensorhub.sound import FULL_SCALE, rms_dbfs, samples_from_i2s


class Flag:
    def __init__(self):
        self.count = 0

    def set(self):
        self.count += 1


class ScriptHal:
    DHT_MIN_INTERVAL_MS = 2000
    DIVIDER_TOP = 100000
    DIVIDER_BOTTOM = 100000

    def __init__(self):
        self.now = TICKS_PERIOD - 3000   # start near the wrap: scheduling must survive it
        self.files = {}
        self.temperature = 21.5
        self.humidity = 40.0
        self.dht_failures = 0
        self.battery_uv = 1960000
        self.amplitude = FULL_SCALE // 100   # a square wave at -40 dBFS
        self.pir = 0
        self.pir_handler = None
        self.servo = []
        self.led = (0, 0, 0)

    def ticks_ms(self):
        return self.now

    def advance(self, ms):
        self.now = ticks_add(self.now, ms)

    def make_flag(self):
        return Flag()

    def reset_cause(self):
        return "power_on"

    def free_mem(self):
        return 100000

    def wifi_rssi(self):
        return None

    def read_file(self, name):
        return self.files.get(name)

    def write_file(self, name, text):
        self.files[name] = text

    def remove_file(self, name):
        self.files.pop(name, None)

    def serial_write(self, data):
        print(data.decode().rstrip("\n"))
        return True

    def dht_read(self):
        if self.dht_failures > 0:
            self.dht_failures -= 1
            raise OSError(110)
        return encode_dht22(self.temperature, self.humidity)

    def pir_value(self):
        return self.pir

    def pir_irq(self, handler):
        self.pir_handler = handler

    def set_pir(self, level):
        self.pir = level
        self.pir_handler(None)

    def button_irq(self, handler):
        pass

    def button_value(self):
        return 0

    def adc_read_uv(self):
        return self.battery_uv

    def i2s_read(self, buf):
        n = len(buf) // 4
        for i in range(n):
            value = self.amplitude if (i // 8) % 2 == 0 else -self.amplitude
            raw = (value << 8) & 0xFFFFFFFF
            buf[4 * i] = raw & 0xFF
            buf[4 * i + 1] = (raw >> 8) & 0xFF
            buf[4 * i + 2] = (raw >> 16) & 0xFF
            buf[4 * i + 3] = (raw >> 24) & 0xFF
        return n * 4

    def servo_pulse_us(self, us):
        self.servo.append(us)

    def servo_off(self):
        self.servo.append(0)

    def led_rgb(self, r, g, b):
        self.led = (r, g, b)


def trace(what, value):
    print(json.dumps({"type": "trace", "what": what, "value": value}))


hal = ScriptHal()
board = Board(hal, "wasm-1")
board.hello()
board.status(hal.now)
board.sound.sample()

# --- commands arrive in odd chunks, mixed with boot noise and partial lines ---------------
stream = (
    b"ets Jun  8 2016 00:22:57\r\n\xff\xfe garbage\n"
    b'{"type":"ping","id":"p-1"}\n'
    b'{"type":"hello","id":"h-1"}\r\n'
    b'{"type":"read","id":"r-1"}\n'
    b'{"type":"config","id":"c-1","interval_ms":1000,"thresholds":{"high_temperature":30.0,"low_battery":20},'
    b'"future":1}\n'
    b'{"type":"config","id":"c-2","interval_ms":0}\n'
    b'{"type":"config","id":"c-3","led_mode":"disco"}\n'
    b'{"type":"led","id":"l-1","state":"on","color":"#FF8800","brightness":128}\n'
    b'{"type":"led","id":"l-2","brightness":300}\n'
    b'{"type":"led","id":"l-3","blink":true}\n'
    b'{"type":"led","id":"l-4"}\n'
    b'{"type":"led","state":"purple"}\n'
    b'{"type":"calibrate","id":"k-1","min_us":600,"max_us":2400,"speed_pct_s":50}\n'
    b'{"type":"calibrate","id":"k-2","min_us":2400,"max_us":600}\n'
    b'{"type":"window","id":"w-1","position":140}\n'
    b'{"type":"window","id":"w-2","position":"half"}\n'
    b'{"type":"window","id":"w-3","position":true}\n'
    b'{"type":"dance","id":"d-1"}\n'
    b'{"id":"no-type"}\n'
    b"[1,2,3]\n"
    b'{"type":"ping","id":7}\n'
    b'{"type":"ping","pad":"' + b"x" * 1500 + b'"}\n'
    b"\n"
    b'{"type":"ping","id":"p-2"}\n'
)
lines = LineBuffer()
for i in range(0, len(stream), 37):
    for line in lines.feed(stream[i:i + 37]):
        board.handle_line(line, hal.now)
trace("led", list(hal.led))
trace("config", board.config)

# --- readings on a drift-free schedule across the tick wrap, with alerts ------------------
period = Periodic(board.config["interval_ms"], hal.now)
script = {3: ("temperature", 31.0), 5: ("temperature", 28.5), 6: ("dht_failures", 4), 9: ("battery_uv", 1790000)}
for step in range(14):
    hal.advance(370 if step % 3 else 910)
    if step in script:
        key, value = script[step]
        setattr(hal, key, value)
    for _ in range(period.due(hal.now)):
        board.sensor(hal.now)
trace("periodic", {"next_in": period.delay_ms(hal.now), "missed": period.missed,
                   "wrapped": ticks_diff(hal.now, TICKS_PERIOD - 3000)})

# --- window: a smooth move, a retarget, a stop -------------------------------------------
board.handle_line(b'{"type":"window","id":"w-4","position":80}', hal.now)
for _ in range(60):
    hal.advance(100)
    result = board.window.tick(hal.now)
    if result in ("done", "fault") or (result == "moving" and board.window.report_due(hal.now)):
        board.window_line()
    if hal.now % 700 < 100 and board.window.moving and board.window.target == 80:
        board.handle_line(b'{"type":"window","id":"w-5","position":20}', hal.now)
board.handle_line(b'{"type":"window","id":"w-6","position":100}', hal.now)
hal.advance(400)
board.window.tick(hal.now)
board.handle_line(b'{"type":"window","id":"w-7","stop":true}', hal.now)
board.handle_line(b'{"type":"calibrate","id":"k-3"}', hal.now)
trace("servo", hal.servo[:12] + hal.servo[-4:])

# --- motion: interrupt, hold time, events --------------------------------------------------
board.handle_line(b'{"type":"config","id":"c-4","motion_hold_ms":1500}', hal.now)
hal.set_pir(1)
trace("motion_flag", board.motion_flag.count)
for step in range(10):
    hal.advance(400)
    if step == 3:
        hal.set_pir(0)
    name = board.motion.update(hal.now, board.config["motion_hold_ms"])
    if name:
        board.event(name, hal.now)

# --- microphone and HTTP mode ---------------------------------------------------------------
buf = bytearray(64)
hal.i2s_read(buf)
trace("samples", samples_from_i2s(buf)[:10])
trace("dbfs", board.sound.level)
trace("dbfs_sine_free", rms_dbfs([1000, -1000, 1000, -1000]))
api = HttpApi(board)
requests = (("GET", "/sensor/temperature", ""), ("GET", "/binary_sensor/motion", ""),
            ("POST", "/cover/window/set", "position=0.25"), ("POST", "/cover/window/set", "position=140"),
            ("GET", "/light/led", ""), ("GET", "/nothing/here", ""), ("GET", "/", ""))
for method, path, query in requests:
    status, body = api.handle(method, path, query)
    trace("http " + method + " " + path, {"status": status, "body": body})

board.handle_line(b'{"type":"reset","id":"x-1","factory":true}', hal.now)
trace("reset_requested", board.reset_requested)
trace("files", sorted(hal.files))

# --- SCD40 CO2 sensor: CRC-8, a sensor still measuring from before a reset, a corrupted frame ---
from sensorhub.scd40 import Scd40, crc8, encode_measurement, encode_words  # noqa: E402


class ScriptBus:
    def __init__(self, answers):
        self.answers = answers
        self.sent = []

    def i2c_transfer(self, address, data, read=0, delay_ms=0):
        self.sent.append([address, list(data), read, delay_ms])
        if not read:
            raise OSError(19)   # start_periodic_measurement is not acknowledged while measuring
        return self.answers.pop(0)


corrupted = bytearray(encode_measurement(900, 21.0, 40.0))
corrupted[1] ^= 0x01
bus = ScriptBus([encode_words((0x8006,)), encode_words((0x8006,)), encode_measurement(1234, 22.0, 45.0),
                 encode_words((0x8000,)), encode_words((0x8006,)), bytes(corrupted)])
sensor = Scd40(bus)
trace("scd40_crc_beef", crc8(b"\xbe\xef"))
trace("scd40_reads", [sensor.read(), sensor.read(), sensor.read()])
trace("scd40_errors", {"errors": sensor.errors, "last_error": sensor.last_error, "sent": bus.sent})

# The asyncio main loop must at least compile and import under MicroPython's asyncio.
import sensorhub.app  # noqa: E402

trace("app", {"has_app": hasattr(sensorhub.app, "App"), "tick_ms": sensorhub.app.WINDOW_TICK_MS})

# hal.py cannot run off the board (it imports machine) but it must at least compile under MicroPython.
import sensorhub  # noqa: E402

with open(sensorhub.__file__.rsplit("/", 1)[0] + "/hal.py") as f:
    compile(f.read(), "hal.py", "exec")
trace("hal_compiles", True)
