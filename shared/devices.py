"""The device-type registry: every device type, in one table, for every program.

A logical device has one ``type``; its entry here fixes everything the programs know about it
(docs/architecture.md, "Device types and their state"):

* its state properties, their kind, unit and the values a real device can report;
* the field of a board's ``sensor`` line that carries each property, with the board hardware's
  plausible range (the serial handler splits and checks lines with it);
* the commands it takes (the aggregator checks a command here before it touches any service, the
  handlers check it again here, so the two can never disagree);
* its Home Assistant entity: component, device_class, unit, state_class;
* the window-automation inputs it can feed (role, ranges, training range, feature scaling and,
  for a generic input, the "airing need" ramp the comfort rule follows).

What is generated from this table (``make docs``; a test fails when a copy is stale): the
``type`` enum and the automation ``sensors`` of shared/instance.schema.json, manifest.json's
``device_types``, setup.json's board-part checkboxes and devices (``BOARD_PARTS``), and the
device-type tables of README.md and docs/architecture.md.
``normalize_command`` returns command values in their canonical form (``"on"``/``"off"``,
lowercase colours, whole-percent positions), so handlers map them without re-validating.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.logs import clip, excerpt

INTERVAL_RANGE_S = (0.1, 86_400.0)
"""Seconds between readings a sensor command may set (the firmware takes 1 ms .. 1 day)."""
BLINK_DEFAULT_MS = 500
COLOR = re.compile(r"\A#[0-9a-fA-F]{6}\Z")  # \Z: "$" would let a trailing newline through
"""A colour as every program writes it: ``#rrggbb``."""
ON_WORDS = frozenset({"on", "true", "1", "yes", "open", "detected", "active"})
OFF_WORDS = frozenset({"off", "false", "0", "no", "closed", "clear", "inactive", "idle"})
"""What devices in the wild say for on and off (lowercase); a command takes only ``on``/``off``."""

INVALID_VALUE = "INVALID_VALUE"
UNSUPPORTED = "UNSUPPORTED"

# Kinds of a state property's value (how a raw value is read: services/http_poller/values.py).
NUMBER, INTEGER, BOOLEAN, ON_OFF, COLOUR = "number", "integer", "boolean", "on_off", "color"


class InvalidCommand(Exception):
    """A command a device type does not take; ``code`` is INVALID_VALUE or UNSUPPORTED."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def _invalid(message: str) -> InvalidCommand:
    return InvalidCommand(INVALID_VALUE, message)


def is_number(value: Any) -> bool:
    """A finite int or float; bools are not numbers here (JSON true is not 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def on_off_word(value: Any) -> bool | None:
    """True for an "on" word, False for an "off" word (any case, surrounding blanks ignored), else None."""
    if not isinstance(value, str):
        return None
    word = value.strip().lower()
    return True if word in ON_WORDS else False if word in OFF_WORDS else None


# --------------------------------------------------------------------------- command rules


def _interval(name: str, value: Any) -> float:
    low, high = INTERVAL_RANGE_S
    if not is_number(value) or not low <= value <= high:
        raise _invalid(f"{name} must be a number of seconds {low:g}..{high:g}, got {excerpt(value)}")
    return float(value)


def _position(name: str, value: Any) -> int | str:
    if value == "stop":
        return "stop"
    if not is_number(value) or not 0 <= value <= 100:
        raise _invalid(f"{name} must be a number 0..100 (percent open) or \"stop\", got {excerpt(value)}")
    return round(value)


def _stop(name: str, value: Any) -> bool:
    if value is not True and value != "stop":
        raise _invalid(f"{name} must be true, got {excerpt(value)}")
    return True


def _on_off(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if not isinstance(value, str) or value.lower() not in ("on", "off"):
        raise _invalid(f"{name} must be \"on\" or \"off\", got {excerpt(value)}")
    return value.lower()


def _color(name: str, value: Any) -> str:
    if not isinstance(value, str) or not COLOR.match(value):
        raise _invalid(f"{name} must be a colour \"#rrggbb\", got {excerpt(value)}")
    return value.lower()


def _brightness(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
        raise _invalid(f"{name} must be an integer 0..255, got {excerpt(value)}")
    return value


def _blink(name: str, value: Any) -> int:
    if isinstance(value, bool):
        return BLINK_DEFAULT_MS if value else 0
    if not isinstance(value, int) or not (value == 0 or 50 <= value <= 10_000):
        raise _invalid(f"{name} must be true/false or a period in ms (0 or 50..10000), got {excerpt(value)}")
    return value


MODEL_VERSION = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
"""A model version as ml_inference names one (``window-v1:<sha12>``) or its ``<sha12>`` alone."""


def _model_version(name: str, value: Any) -> str:
    if not isinstance(value, str) or not MODEL_VERSION.match(value.strip()):
        raise _invalid(f"{name} must be a model version like \"window-v1:45b98a2cdb34\" (GET /models on "
                       f"ml_inference lists them), got {excerpt(value)}")
    return value.strip()


Rule = Callable[[str, Any], Any]
SENSOR_COMMANDS: Mapping[str, Rule] = {"interval": _interval}
"""What every sensor type takes: a reading period, or nothing at all (a reading now)."""
AUTOMATION_COMMANDS: Mapping[str, Rule] = {"model": _model_version}
"""What a device whose source is a window automation (its ``switch``) takes besides its type's
commands: ``model``, the model version ml_inference should use (a rollback, docs/automation.md).
Whether that version exists is ml_inference's to say; here only its shape is checked."""


# --------------------------------------------------------------------------- the table's shapes


@dataclass(frozen=True)
class SensorField:
    """A field of a board's ``sensor`` line (docs/serial-protocol.md) and the board hardware's
    plausible range: a value outside is a broken sensor or a corrupted line, not weather."""

    name: str
    kind: str  # "number", "int" or "bool"
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class HaSensor:
    """How Home Assistant shows one property as a ``sensor`` entity (sensor.mqtt)."""

    device_class: str | None
    unit: str | None
    state_class: str | None = "measurement"


@dataclass(frozen=True)
class StateProperty:
    name: str
    kind: str
    unit: str | None = None
    range: tuple[float, float] = (-math.inf, math.inf)
    """What any device of the type may report; outside it a reading is refused."""
    board: SensorField | None = None
    ha: HaSensor | None = None


@dataclass(frozen=True)
class AutomationInput:
    """A role a device of this type can play in a window automation (docs/automation.md).

    The model sees ``(value - centre) / spread`` of the value clipped to ``training`` (the model
    never extrapolates), plus a known flag unless the input is required. ``airing`` makes the
    input a generic reason to open: the comfort rule's need rises from 0 at ``airing[0]`` to 1
    at ``airing[1]`` (the rule names no such input itself)."""

    role: str
    prop: str
    description: str
    required: bool = False
    kind: str = NUMBER
    range: tuple[float, float] = (-math.inf, math.inf)
    unit: str = ""
    training: tuple[float, float] | None = None
    scale: tuple[float, float] = (0.0, 1.0)
    airing: tuple[float, float] | None = None
    missing: float = 0.2
    """How often training leaves the input out: the model must know "unknown"."""


@dataclass(frozen=True)
class DeviceType:
    name: str
    description: str
    ha_component: str
    properties: tuple[StateProperty, ...]
    commands: Mapping[str, Rule] = field(default_factory=dict)
    reading: bool = False
    """A sensor: it takes an empty command (a reading now) and ``interval``."""
    ha_device_class: str | None = None
    inputs: tuple[AutomationInput, ...] = ()

    @property
    def main(self) -> StateProperty:
        """The property a bare value stands for (a scalar from an HTTP sensor)."""
        return self.properties[0]

    def prop(self, name: str) -> StateProperty:
        for prop in self.properties:
            if prop.name == name:
                return prop
        raise KeyError(f"a {self.name} device has no state property {name!r}")


def _sensor(name: str, description: str, unit: str | None, *, kind: str = NUMBER,
            range: tuple[float, float] = (-math.inf, math.inf), board: SensorField | None = None,
            ha: HaSensor | None = None, extra: tuple[StateProperty, ...] = (), ha_component: str = "sensor",
            ha_device_class: str | None = None, inputs: tuple[AutomationInput, ...] = ()) -> DeviceType:
    """A measuring type whose main property has the type's name."""
    main = StateProperty(name, kind, unit, range, board, ha)
    return DeviceType(name, description, ha_component, (main, *extra), SENSOR_COMMANDS, True, ha_device_class, inputs)


PERCENT = (0.0, 100.0)

# --------------------------------------------------------------------------- the registry

DEVICE_TABLE: tuple[DeviceType, ...] = (
    _sensor("temperature", "temperature", "°C", board=SensorField("temperature", "number", -40, 85),
            ha=HaSensor("temperature", "°C"),
            inputs=(AutomationInput("temperature", "temperature", "Indoor temperature device.", required=True,
                                    range=(-40.0, 85.0), unit="°C", training=(5.0, 40.0), scale=(22.0, 6.0)),
                    AutomationInput("outdoor_temperature", "temperature", "Outdoor temperature device.",
                                    range=(-50.0, 70.0), unit="°C", training=(-20.0, 40.0), scale=(15.0, 10.0),
                                    missing=0.25))),
    _sensor("humidity", "relative humidity", "%", range=PERCENT, board=SensorField("humidity", "number", 0, 100),
            ha=HaSensor("humidity", "%"),
            inputs=(AutomationInput("humidity", "humidity", "Indoor humidity device.", required=True,
                                    range=PERCENT, unit="%", training=(10.0, 100.0), scale=(55.0, 25.0)),)),
    _sensor("pressure", "air pressure", "hPa", board=SensorField("pressure", "number", 300, 1100),
            ha=HaSensor("pressure", "hPa")),
    _sensor("illuminance", "illuminance", "lx", range=(0.0, math.inf),
            board=SensorField("illuminance", "number", 0, 200_000), ha=HaSensor("illuminance", "lx")),
    _sensor("motion", "motion (occupancy)", None, kind=BOOLEAN, board=SensorField("motion", "bool"),
            ha_component="binary_sensor", ha_device_class="motion",
            inputs=(AutomationInput("motion", "motion", "Motion device (occupancy).", kind=BOOLEAN,
                                    missing=0.15),)),
    # dBFS is relative to the microphone's full scale, not a sound pressure: Home Assistant's
    # sound_pressure class would claim dB SPL, so it is a plain measurement in its own unit.
    _sensor("sound_level", "sound level (RMS, relative to the microphone's full scale)", "dBFS",
            board=SensorField("sound_dbfs", "number", -140, 0), ha=HaSensor(None, "dBFS"),
            inputs=(AutomationInput("sound_level", "sound_level",
                                    "Sound level device (noise outside keeps the window shut).",
                                    range=(-120.0, 0.0), unit="dBFS", training=(-90.0, 0.0), scale=(-45.0, 20.0),
                                    missing=0.15),)),
    _sensor("battery", "battery charge", "%", range=PERCENT, board=SensorField("battery_pct", "int", 0, 100),
            ha=HaSensor("battery", "%"),
            extra=(StateProperty("voltage", NUMBER, "V", board=SensorField("battery_v", "number", 0, 6),
                                 ha=HaSensor("voltage", "V")),)),
    # Sensirion SCD40 (photoacoustic NDIR, I2C) on a board: 0..40000 ppm; indoor air is stuffy
    # above about 1000 ppm (outdoor air is about 420), so it is a reason of its own to air the room.
    _sensor("co2", "carbon dioxide concentration", "ppm", range=(0.0, 40_000.0),
            board=SensorField("co2", "int", 0, 40_000), ha=HaSensor("carbon_dioxide", "ppm"),
            inputs=(AutomationInput("co2", "co2", "CO2 device (a stuffy room opens the window).",
                                    range=(0.0, 40_000.0), unit="ppm", training=(400.0, 2500.0),
                                    scale=(1000.0, 600.0), airing=(1000.0, 1600.0), missing=0.4),)),
    DeviceType("window", "a window motor (0 closed .. 100 open)", "cover", (
        StateProperty("position", INTEGER, "%", PERCENT),
        StateProperty("target", INTEGER, "%", PERCENT),
        StateProperty("moving", BOOLEAN)),
        {"position": _position, "stop": _stop}, ha_device_class="window"),
    DeviceType("led", "an RGB LED", "light", (
        StateProperty("state", ON_OFF),
        StateProperty("color", COLOUR),
        StateProperty("brightness", INTEGER, None, (0, 255)),
        StateProperty("blink", INTEGER, "ms")),
        {"state": _on_off, "color": _color, "brightness": _brightness, "blink": _blink}),
    DeviceType("switch", "a relay or any on/off output", "switch", (StateProperty("state", ON_OFF),),
               {"state": _on_off}),
)

@dataclass(frozen=True)
class BoardPart:
    """A part an ESP32 board may carry, as the setup flow (setup.json, generated) asks for it:
    one checkbox (``answer``), and the devices a "yes" gives the board."""

    answer: str
    label: str
    default: bool
    devices: tuple[tuple[str, str, str], ...]
    """(device type, device id suffix after the board id, name after the room)."""


BOARD_PARTS: tuple[BoardPart, ...] = (
    BoardPart("has_climate", "Temperature and humidity sensor (DHT22/BME280)", True,
              (("temperature", "temperature", "temperature"), ("humidity", "humidity", "humidity"))),
    BoardPart("has_motion", "PIR motion sensor", True, (("motion", "motion", "motion"),)),
    BoardPart("has_sound", "I2S microphone (sound level)", True, (("sound_level", "sound", "sound level"),)),
    BoardPart("has_battery", "Battery (voltage divider on an ADC pin)", False,
              (("battery", "battery", "board battery"),)),
    BoardPart("has_co2", "CO2 sensor (Sensirion SCD40, I2C)", False, (("co2", "co2", "CO2"),)),
    BoardPart("has_window", "Window motor (servo)", True, (("window", "window", "window"),)),
    BoardPart("has_led", "Status LED", True, (("led", "led", "LED"),)),
)

DEVICE_TYPES: tuple[str, ...] = tuple(t.name for t in DEVICE_TABLE)
REGISTRY: Mapping[str, DeviceType] = {t.name: t for t in DEVICE_TABLE}
SENSOR_TYPES = frozenset(t.name for t in DEVICE_TABLE if t.reading)
COMMAND_RULES: Mapping[str, Mapping[str, Rule]] = {t.name: t.commands for t in DEVICE_TABLE if t.commands}


def device_type(name: str) -> DeviceType:
    """The registry entry of a type; KeyError naming the known types."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown device type {name!r} (known: {', '.join(DEVICE_TYPES)})") from None


def board_fields() -> dict[str, tuple[str, StateProperty]]:
    """Every field a board's ``sensor`` line may carry -> (device type, its state property)."""
    return {p.board.name: (t.name, p) for t in DEVICE_TABLE for p in t.properties if p.board is not None}


def automation_inputs() -> dict[str, tuple[str, AutomationInput]]:
    """Every window-automation input role -> (the device type that feeds it, the input), required first."""
    found = [(i, t.name) for t in DEVICE_TABLE for i in t.inputs]
    found.sort(key=lambda pair: not pair[0].required)  # stable: registry order within each group
    return {i.role: (name, i) for i, name in found}


# --------------------------------------------------------------------------- commands


def command_rules(device_type: str, automation: bool = False) -> Mapping[str, Rule] | None:
    """The commands a device takes: its type's, plus AUTOMATION_COMMANDS when its source is a
    window automation. None: it takes no commands."""
    rules = COMMAND_RULES.get(device_type)
    if automation and rules is not None:
        return {**rules, **AUTOMATION_COMMANDS}
    return rules


def command_keys(device_type: str, automation: bool = False) -> tuple[str, ...]:
    """The value names a device's commands take (empty: it takes none)."""
    return tuple(sorted(command_rules(device_type, automation) or {}))


def normalize_command(device_type: str, values: Any, automation: bool = False) -> dict[str, Any]:
    """The canonical values of a command for ``device_type``, or :class:`InvalidCommand`.

    A sensor takes ``interval`` or nothing at all (an empty command asks for a reading now);
    a window takes ``position`` 0..100 or ``stop``; an LED ``state``/``color``/``brightness``/``blink``.
    ``automation``: the device's source is a window automation (its switch also takes ``model``).
    """
    if not isinstance(values, Mapping):
        raise _invalid(f"values must be an object, e.g. {{\"state\": \"on\"}}, not {type(values).__name__}")
    rules = command_rules(device_type, automation)
    if rules is None:
        raise InvalidCommand(UNSUPPORTED, f"a {device_type} device takes no commands")
    accepted = sorted(rules)
    unknown = sorted(set(values) - set(rules))
    if unknown:
        raise InvalidCommand(UNSUPPORTED, f"a {device_type} device does not take {clip(', '.join(unknown), 100)}; "
                                          f"it takes {', '.join(accepted)}", accepted=accepted)
    if not values and device_type not in SENSOR_TYPES:
        raise InvalidCommand(INVALID_VALUE, f"the command has no values; a {device_type} device takes "
                                            f"{', '.join(accepted)}", accepted=accepted)
    normalized = {name: rules[name](name, value) for name, value in values.items()}
    if device_type == "window":
        if "stop" in normalized and "position" in normalized:
            raise _invalid("a window command takes position or stop, not both")
        if normalized.get("position") == "stop":
            normalized = {"stop": True}
    return normalized
