# Board settings: the `config` command's fields and the `calibrate` values, validated as a whole
# (an invalid field refuses the whole command) and persisted to flash as one JSON file.
import json

from .protocol import CommandRefused, boolean, int_in, is_number, number_in, show

CONFIG_FILE = "config.json"

LED_MODES = ("manual", "motion", "heartbeat")


def default_config():
    return {
        "interval_ms": 5000,
        "status_interval_ms": 30000,
        "motion_hold_ms": 30000,
        "thresholds": {"high_temperature": 35.0, "low_battery": 15},
        "led_mode": "manual",
        "deep_sleep": False,
    }


def default_calibration():
    return {
        "min_us": 1000,
        "max_us": 2000,
        "invert": False,
        "max_open": 100,
        "speed_pct_s": 20.0,
        "temperature_offset": 0.0,
        "humidity_offset": 0.0,
    }


def copy(doc):
    return json.loads(json.dumps(doc))


def apply_config(current, cmd):
    """The config after applying the known fields of `cmd`; CommandRefused on any bad field."""
    new = copy(current)
    if "interval_ms" in cmd:
        new["interval_ms"] = int_in("interval_ms", cmd["interval_ms"], 1, 86400000)
    if "status_interval_ms" in cmd:
        new["status_interval_ms"] = int_in("status_interval_ms", cmd["status_interval_ms"], 1000, 86400000)
    if "motion_hold_ms" in cmd:
        new["motion_hold_ms"] = int_in("motion_hold_ms", cmd["motion_hold_ms"], 0, 3600000)
    if "thresholds" in cmd:
        th = cmd["thresholds"]
        if not isinstance(th, dict):
            raise CommandRefused("thresholds must be an object, got %s" % show(th))
        if "high_temperature" in th:
            new["thresholds"]["high_temperature"] = number_in("thresholds.high_temperature",
                                                              th["high_temperature"], -40, 125)
        if "low_battery" in th:
            new["thresholds"]["low_battery"] = int_in("thresholds.low_battery", th["low_battery"], 0, 100)
    if "led_mode" in cmd:
        if cmd["led_mode"] not in LED_MODES:
            raise CommandRefused("led_mode must be one of manual, motion, heartbeat, got %s" % show(cmd["led_mode"]))
        new["led_mode"] = cmd["led_mode"]
    if "deep_sleep" in cmd:
        new["deep_sleep"] = boolean("deep_sleep", cmd["deep_sleep"])
    return new


def apply_calibration(current, cmd):
    new = copy(current)
    if "min_us" in cmd:
        new["min_us"] = int_in("min_us", cmd["min_us"], 500, 2500)
    if "max_us" in cmd:
        new["max_us"] = int_in("max_us", cmd["max_us"], 500, 2500)
    if new["min_us"] >= new["max_us"]:
        raise CommandRefused("min_us must be below max_us, got %d >= %d" % (new["min_us"], new["max_us"]))
    if "invert" in cmd:
        new["invert"] = boolean("invert", cmd["invert"])
    if "max_open" in cmd:
        new["max_open"] = int_in("max_open", cmd["max_open"], 1, 100)
    if "speed_pct_s" in cmd:
        new["speed_pct_s"] = number_in("speed_pct_s", cmd["speed_pct_s"], 0.1, 100000)
    if "temperature_offset" in cmd:
        new["temperature_offset"] = number_in("temperature_offset", cmd["temperature_offset"], -10, 10)
    if "humidity_offset" in cmd:
        new["humidity_offset"] = number_in("humidity_offset", cmd["humidity_offset"], -20, 20)
    return new


class SettingsStore:
    """Loads and saves {"config":..., "calibration":...} through the HAL's flash file access.

    A missing or corrupt file gives the defaults: a bad file must never stop the board booting.
    """

    def __init__(self, hal, name=CONFIG_FILE):
        self.hal = hal
        self.name = name

    def load(self):
        config = default_config()
        calibration = default_calibration()
        text = self.hal.read_file(self.name)
        if text:
            try:
                doc = json.loads(text)
                config = apply_config(config, doc.get("config") or {})
                calibration = apply_calibration(calibration, doc.get("calibration") or {})
            except (ValueError, CommandRefused, AttributeError):
                pass
        return config, calibration

    def save(self, config, calibration):
        self.hal.write_file(self.name, json.dumps({"config": config, "calibration": calibration}))

    def erase(self):
        self.hal.remove_file(self.name)


def fraction_or_percent(text):
    """An HTTP `position` value: integer percent, or an ESPHome fraction like 0.5."""
    if "." in text:
        value = float(text)
        if value <= 1.0:
            return int(round(value * 100))
        return int(round(value))
    return int(text)


def rounded(value, digits):
    """round() that gives the same result on MicroPython and CPython for our reading values."""
    if value is None or not is_number(value):
        return value
    scale = 10 ** digits
    x = value * scale
    n = int(x + 0.5) if x >= 0 else -int(-x + 0.5)
    return n / scale if digits else n
