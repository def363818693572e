# The board: owns the drivers, the settings and the per-boot line counter; turns host commands
# into actions and board state into protocol lines. No asyncio here (see app.py), no hardware
# (everything goes through the `hal` object it is given).
from . import FIRMWARE_VERSION
from .battery import BatteryMonitor
from .climate import Dht22
from .led import Led
from .motion import PirMotion
from .protocol import (
    PROTOCOL_VERSION,
    SEQ_LIMIT,
    CommandRefused,
    ProtocolError,
    ack,
    decode_command,
    encode,
    error_message,
)
from .scd40 import Scd40
from .schedule import ticks_diff
from .settings import SettingsStore, apply_calibration, apply_config, rounded
from .sound import SoundMeter
from .window import WindowMotor, parse_target

DEFAULT_CAPS = ("temperature", "humidity", "motion", "battery", "sound_level", "window", "led")
"""The reference wiring (firmware/README.md); add-ons are declared in board.json "caps"."""
ALL_CAPS = DEFAULT_CAPS + ("co2",)
"""Everything the firmware can drive: "co2" is an SCD40 on the I2C bus."""
CALIBRATION_FIELDS = ("min_us", "max_us", "invert", "max_open", "speed_pct_s", "temperature_offset",
                      "humidity_offset")
TEMP_HYSTERESIS = 1.0
BATTERY_HYSTERESIS = 3
FAILURES_FOR_ALERT = 3


class Board:
    def __init__(self, hal, board_id, caps=None):
        self.hal = hal
        self.board_id = board_id
        self.caps = tuple(caps) if caps else DEFAULT_CAPS
        self.store = SettingsStore(hal)
        self.config, self.calibration = self.store.load()
        now = hal.ticks_ms()
        self.boot_ticks = now
        self.seq = 0
        self.lines_out = 0
        self.acks_enabled = True   # the emulator's "noack" fault clears this
        self.reset_requested = None
        self.config_flag = hal.make_flag()   # config changed: the sensor task re-plans its sleep
        self.led_flag = hal.make_flag()      # LED state or mode changed
        self.motion_flag = hal.make_flag()
        self.window_flag = hal.make_flag()
        self.button_flag = hal.make_flag()
        self.alerts = {}
        self.last_reading = {}
        self.heartbeat_pulse = False
        has = self.has
        self.climate = Dht22(hal, hal.DHT_MIN_INTERVAL_MS) if has("temperature") or has("humidity") else None
        self.battery = BatteryMonitor(hal, hal.DIVIDER_TOP, hal.DIVIDER_BOTTOM) if has("battery") else None
        self.sound = SoundMeter(hal) if has("sound_level") else None
        self.motion = PirMotion(hal, self.motion_flag) if has("motion") else None
        self.window = WindowMotor(hal, self.calibration, now) if has("window") else None
        self.led = Led(hal) if has("led") else None
        self.co2 = Scd40(hal) if has("co2") else None
        hal.button_irq(self._on_button)

    def has(self, cap):
        return cap in self.caps

    def _on_button(self, _pin=None):
        self.button_flag.set()

    # --- output ---------------------------------------------------------------------------

    def emit(self, kind, fields=None):
        """Write one board line; every line takes the next seq, even if the write is lost."""
        msg = {"type": kind, "seq": self.seq}
        if fields:
            for key in fields:
                msg[key] = fields[key]
        self.seq = (self.seq + 1) % SEQ_LIMIT
        self.lines_out += 1
        self.hal.serial_write(encode(msg))
        return msg

    def uptime_s(self, now=None):
        if now is None:
            now = self.hal.ticks_ms()
        return rounded(ticks_diff(now, self.boot_ticks) / 1000.0, 1)

    def hello(self, cmd_id=None):
        fields = {}
        if cmd_id is not None:
            fields["id"] = cmd_id
        fields["board_id"] = self.board_id
        fields["fw"] = FIRMWARE_VERSION
        fields["protocol"] = PROTOCOL_VERSION
        fields["caps"] = list(self.caps)
        fields["interval_ms"] = self.config["interval_ms"]
        fields["reset_cause"] = self.hal.reset_cause()
        fields["uptime_s"] = self.uptime_s()
        if self.led is not None:
            fields["led"] = self.led.state()  # the host's hello after opening the port learns it at once
        return self.emit("hello", fields)

    def read_sensors(self, now):
        """Take a reading of every sensor (no line written); raises alerts on transitions."""
        r = {"uptime_s": self.uptime_s(now)}
        if self.climate is not None:
            t, h = self.climate.read(now, self.calibration)
            if self.has("temperature"):
                r["temperature"] = t
            if self.has("humidity"):
                r["humidity"] = h
        if self.motion is not None:
            r["motion"] = self.motion.active
        if self.battery is not None:
            v, pct = self.battery.read()
            r["battery_v"] = v
            r["battery_pct"] = pct
        if self.sound is not None:
            r["sound_dbfs"] = self.sound.level
        if self.co2 is not None:
            r["co2"] = self.co2.read(now)
        self.last_reading = r
        self.check_alerts(r)
        return r

    def sensor(self, now, cmd_id=None, extra=None):
        reading = self.read_sensors(now)
        fields = {}
        if cmd_id is not None:
            fields["id"] = cmd_id
        for key in reading:
            fields[key] = reading[key]
        if extra:
            for key in extra:
                fields[key] = extra[key]
        self.heartbeat_pulse = True
        return self.emit("sensor", fields)

    def status(self, now):
        errors = {}
        if self.climate is not None:
            if self.has("temperature"):
                errors["temperature"] = self.climate.errors
            if self.has("humidity"):
                errors["humidity"] = self.climate.errors
        if self.battery is not None:
            errors["battery"] = self.battery.errors
        if self.sound is not None:
            errors["sound_level"] = self.sound.errors
        if self.co2 is not None:
            errors["co2"] = self.co2.errors
        fields = {
            "uptime_s": self.uptime_s(now), "free_mem": self.hal.free_mem(), "rssi": self.hal.wifi_rssi(),
            "sensor_errors": errors, "interval_ms": self.config["interval_ms"],
            "deep_sleep": self.config["deep_sleep"]}
        if self.led is not None:
            # The LED's real state, so the host knows it from boot on (hello and status carry
            # it) and not only after it first commands the LED.
            fields["led"] = self.led.state()
        return self.emit("status", fields)

    def event(self, name, now, data=None):
        fields = {"event": name, "uptime_s": self.uptime_s(now)}
        if data is not None:
            fields["data"] = data
        return self.emit("event", fields)

    def window_line(self):
        fields = self.window.state()
        if not self.window.moving and self.window.end_reason:
            fields["stopped"] = self.window.end_reason
            self.window.end_reason = None
        return self.emit("window", fields)

    def _alert(self, name, active, fields):
        if bool(self.alerts.get(name)) == active:
            return
        self.alerts[name] = active
        msg = {"alert": name, "active": active}
        for key in fields:
            msg[key] = fields[key]
        self.emit("alert", msg)

    def check_alerts(self, r):
        th = self.config["thresholds"]
        t = r.get("temperature")
        if t is not None:
            limit = th["high_temperature"]
            if t >= limit:
                self._alert("high_temperature", True, {"value": t, "threshold": limit})
            elif t < limit - TEMP_HYSTERESIS:
                self._alert("high_temperature", False, {"value": t, "threshold": limit})
        pct = r.get("battery_pct")
        if pct is not None:
            limit = th["low_battery"]
            if pct <= limit:
                self._alert("low_battery", True, {"value": pct, "threshold": limit})
            elif pct > limit + BATTERY_HYSTERESIS:
                self._alert("low_battery", False, {"value": pct, "threshold": limit})
        if self.climate is not None:
            if self.climate.consecutive_errors >= FAILURES_FOR_ALERT:
                self._alert("sensor_failure", True, {"sensor": "temperature", "message": self.climate.last_error})
            elif self.climate.consecutive_errors == 0:
                self._alert("sensor_failure", False, {"sensor": "temperature"})

    # --- input ----------------------------------------------------------------------------

    def handle_line(self, line, now=None):
        """Act on one host line (bytes without newline, or None for an oversized line)."""
        if now is None:
            now = self.hal.ticks_ms()
        if line is None:
            self.emit_error(ProtocolError("too_long", "command longer than 1024 bytes discarded"))
            return
        if not line.strip():
            return  # a bare newline (terminal users, keep-alives) is not an error
        try:
            cmd = decode_command(line)
        except ProtocolError as exc:
            self.emit_error(exc)
            return
        cmd_id = cmd.get("id")
        handler = getattr(self, "cmd_" + cmd["type"])
        try:
            result = handler(cmd, now)
        except CommandRefused as exc:
            if cmd_id is not None:
                if self.acks_enabled:
                    self.emit("ack", _without_type(ack(cmd_id, False, error=str(exc))))
            else:
                self.emit("error", {"error": "rejected", "message": str(exc)})
            return
        if cmd_id is not None and self.acks_enabled:
            self.emit("ack", _without_type(ack(cmd_id, True, result=result)))

    def emit_error(self, exc):
        self.emit("error", _without_type(error_message(exc)))

    def cmd_ping(self, cmd, now):
        return {"pong": True, "uptime_s": self.uptime_s(now)}

    def cmd_hello(self, cmd, now):
        self.hello(cmd.get("id"))
        return None

    def cmd_read(self, cmd, now):
        self.sensor(now, cmd.get("id"))
        return None

    def cmd_config(self, cmd, now):
        self.config = apply_config(self.config, cmd)
        self.store.save(self.config, self.calibration)
        self.config_flag.set()
        self.led_flag.set()
        return self.config

    def cmd_led(self, cmd, now):
        if self.led is None:
            raise CommandRefused("this board has no led")
        result = self.led.apply(cmd)
        self.led_flag.set()
        return result

    def cmd_window(self, cmd, now):
        if self.window is None:
            raise CommandRefused("this board has no window motor")
        target = parse_target(cmd)
        if target is None:
            self.window.stop(now)
        else:
            self.window.move_to(target, now)
            self.window_flag.set()
        self.window_line()
        return self.window.state()

    def cmd_calibrate(self, cmd, now):
        fields = [key for key in CALIBRATION_FIELDS if key in cmd]
        if not fields:
            if self.window is None:
                raise CommandRefused("calibrate without fields re-homes the window; this board has none")
            self.window.home(now)
            self.window_line()
            return self.calibration
        self.calibration = apply_calibration(self.calibration, cmd)
        if self.window is not None:
            self.window.calibration = self.calibration
        self.store.save(self.config, self.calibration)
        return self.calibration

    def cmd_reset(self, cmd, now):
        self.reset_requested = {"factory": cmd.get("factory") is True}
        return None

    # --- HTTP mode view -------------------------------------------------------------------

    def snapshot(self):
        """Board state for the HTTP mode and the emulator's control channel."""
        state = {"board_id": self.board_id, "seq": self.seq, "caps": list(self.caps),
                 "reading": self.last_reading, "config": self.config, "calibration": self.calibration,
                 "alerts": self.alerts, "lines_out": self.lines_out}
        if self.motion is not None:
            state["motion"] = self.motion.active
        if self.window is not None:
            state["window"] = self.window.state()
        if self.led is not None:
            state["led"] = self.led.state()
        return state


def _without_type(msg):
    del msg["type"]
    return msg
