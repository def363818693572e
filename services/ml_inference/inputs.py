"""What the model is asked: ``WindowInputs``, checked field by field, and its feature vector.

Temperature and humidity are required; outdoor temperature, motion, sound level and the window's
current position are optional. A missing optional input is explicit: it is ``None`` here and
becomes a 0 value plus a 0 "known" flag in the features, so the model was trained to tell
"unknown" from "0". A value that is not finite or outside what a real sensor can report is
refused with an error naming the field; a value that is possible but outside what the model
was trained on is clipped to the training range (the model never extrapolates).
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.devices import is_number

# field -> (lowest, highest, unit) a real sensor can report; beyond that the reading is refused.
NUMERIC_FIELDS: dict[str, tuple[float, float, str]] = {
    "temperature": (-40.0, 85.0, "°C"),
    "humidity": (0.0, 100.0, "%"),
    "outdoor_temperature": (-50.0, 70.0, "°C"),
    "sound_level": (-120.0, 0.0, "dBFS"),
    "position": (0.0, 100.0, "%"),
}
REQUIRED = ("temperature", "humidity")
OPTIONAL = ("outdoor_temperature", "motion", "sound_level", "position")
FIELDS = REQUIRED + OPTIONAL

# What the model was trained on (train.py samples these ranges): inputs are clipped to them.
TRAINING_RANGE: dict[str, tuple[float, float]] = {
    "temperature": (5.0, 40.0),
    "humidity": (10.0, 100.0),
    "outdoor_temperature": (-20.0, 40.0),
    "sound_level": (-90.0, 0.0),
}

FEATURES: tuple[str, ...] = (
    "temperature", "humidity",
    "outdoor_temperature", "outdoor_temperature_known",
    "motion", "motion_known",
    "sound_level", "sound_level_known",
    "position", "position_known",
)
"""The model's input vector, in order. A model file records it; a file with other features is refused."""

MAX_BATCH = 1024


class InvalidInput(ValueError):
    """An input the model cannot be asked with; ``field`` names it (``[3].humidity`` in a batch)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class WindowInputs:
    temperature: float
    humidity: float
    outdoor_temperature: float | None = None
    motion: bool | None = None
    sound_level: float | None = None
    position: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}


def _number(name: str, value: Any) -> float:
    low, high, unit = NUMERIC_FIELDS[name]
    if not is_number(value):
        shown = "true/false" if isinstance(value, bool) else repr(value)
        raise InvalidInput(name, f"must be a finite number {low:g}..{high:g} {unit}, got {shown}")
    if not low <= value <= high:
        raise InvalidInput(name, f"{value!r} is out of range ({low:g}..{high:g} {unit})")
    return float(value)


def parse_inputs(data: Any, where: str = "") -> WindowInputs:
    """``WindowInputs`` from a JSON object, or :class:`InvalidInput` naming the first bad field.

    ``null`` for an optional field is the same as leaving it out; unknown fields are refused
    (a typo would otherwise silently become a missing input)."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, Mapping):
        raise InvalidInput(where, f"must be an object of inputs like {{\"temperature\": 24.5, \"humidity\": 60}}, "
                                  f"not {type(data).__name__}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        name = str(unknown[0])
        guess = [f for f in FIELDS if name and f.startswith(name)] or difflib.get_close_matches(name, FIELDS, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else f" (inputs: {', '.join(FIELDS)})"
        raise InvalidInput(prefix + str(unknown[0]), f"unknown input{hint}")
    values: dict[str, Any] = {}
    for name in FIELDS:
        value = data.get(name)
        if value is None:
            if name in REQUIRED:
                raise InvalidInput(prefix + name, "missing; it is required")
            continue
        try:
            if name == "motion":
                if not isinstance(value, bool):
                    raise InvalidInput(name, f"must be true or false, got {value!r}")
                values[name] = value
            else:
                values[name] = _number(name, value)
        except InvalidInput as exc:
            raise InvalidInput(prefix + name, exc.message) from None
    return WindowInputs(**values)


def parse_batch(data: Any) -> tuple[list[WindowInputs], bool]:
    """One input object or a list of them: ``(inputs, is_batch)``."""
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if not data:
            raise InvalidInput("", "the batch is empty")
        if len(data) > MAX_BATCH:
            raise InvalidInput("", f"a batch holds at most {MAX_BATCH} inputs, got {len(data)}")
        return [parse_inputs(item, f"[{i}]") for i, item in enumerate(data)], True
    return [parse_inputs(data)], False


def _clip(name: str, value: float) -> float:
    low, high = TRAINING_RANGE[name]
    return min(max(value, low), high)


def features(inputs: WindowInputs) -> list[float]:
    """The model's input vector (``FEATURES``): scaled to about -1..1, with a known flag for each
    optional input."""
    def optional(value: float | None, scale: Any) -> tuple[float, float]:
        return (0.0, 0.0) if value is None else (scale(value), 1.0)

    return [
        (_clip("temperature", inputs.temperature) - 22.0) / 6.0,
        (_clip("humidity", inputs.humidity) - 55.0) / 25.0,
        *optional(inputs.outdoor_temperature, lambda v: (_clip("outdoor_temperature", v) - 15.0) / 10.0),
        *optional(inputs.motion, lambda v: 1.0 if v else 0.0),
        *optional(inputs.sound_level, lambda v: (_clip("sound_level", v) + 45.0) / 20.0),
        *optional(inputs.position, lambda v: v / 100.0),
    ]
