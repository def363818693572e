"""What the model is asked: ``WindowInputs``, checked field by field, and its feature vector.

The inputs are the window-automation inputs of the device-type registry (shared/devices.py:
each type declares the roles it can play, their real and training ranges and how the model
scales them) plus the window's own current position. The registry marks temperature and
humidity required; every other input is optional. A missing optional input is explicit: it is
``None`` here and becomes a 0 value plus a 0 "known" flag in the features, so the model was
trained to tell "unknown" from "0". A value that is not finite or outside what a real sensor can
report is refused with an error naming the field; a value that is possible but outside what the
model was trained on is clipped to the training range (the model never extrapolates).

Adding an input to the registry changes ``FEATURES``: a stored model trained on other features
is refused (model.py) and the default weights are trained again (or re-bundled by the image).
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from shared.devices import BOOLEAN, AutomationInput, automation_inputs, is_number

POSITION = AutomationInput("position", "position", "The window's current position (the automation adds it).",
                           range=(0.0, 100.0), unit="%", training=(0.0, 100.0), scale=(0.0, 100.0), missing=0.2)
"""Not a sensor: the window the automation moves, which the model sees too (hysteresis)."""

INPUTS: dict[str, AutomationInput] = {**{role: spec for role, (_, spec) in automation_inputs().items()},
                                      POSITION.role: POSITION}
"""Every input the model takes, by name: required first, then the registry's order, position last."""
REQUIRED = tuple(name for name, spec in INPUTS.items() if spec.required)
OPTIONAL = tuple(name for name, spec in INPUTS.items() if not spec.required)
FIELDS = REQUIRED + OPTIONAL

# field -> (lowest, highest, unit) a real sensor can report; beyond that the reading is refused.
NUMERIC_FIELDS: dict[str, tuple[float, float, str]] = {
    name: (*spec.range, spec.unit) for name, spec in INPUTS.items() if spec.kind != BOOLEAN}
# What the model was trained on (train.py samples these ranges): inputs are clipped to them.
TRAINING_RANGE: dict[str, tuple[float, float]] = {
    name: spec.training for name, spec in INPUTS.items() if spec.training is not None}
AIRING: dict[str, tuple[float, float]] = {name: spec.airing for name, spec in INPUTS.items() if spec.airing}
"""Inputs that are a reason to air the room by themselves (rule.py): name -> (need starts, need is full)."""

FEATURES: tuple[str, ...] = tuple(
    feature for name in FIELDS for feature in ((name,) if name in REQUIRED else (name, f"{name}_known")))
"""The model's input vector, in order. A model file records it; a file with other features is refused."""

MAX_BATCH = 1024


class InvalidInput(ValueError):
    """An input the model cannot be asked with; ``field`` names it (``[3].humidity`` in a batch)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class WindowInputs:
    """The inputs of one question to the model, by name (``FIELDS``); a missing optional input is
    None: ``inputs.temperature``, ``inputs.get("sound_level")``. Immutable."""

    __slots__ = ("_values",)

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise TypeError(f"unknown window inputs {unknown} (inputs: {', '.join(FIELDS)})")
        missing = [name for name in REQUIRED if values.get(name) is None]
        if missing:
            raise TypeError(f"window inputs {missing} are required")
        object.__setattr__(self, "_values", {k: v for k, v in values.items() if v is not None})

    def __getattr__(self, name: str) -> Any:
        if name in INPUTS:
            return self._values.get(name)
        raise AttributeError(f"WindowInputs has no input {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("WindowInputs is immutable")

    def get(self, name: str) -> Any:
        return self._values.get(name)

    def to_dict(self) -> dict[str, Any]:
        return {name: self._values[name] for name in FIELDS if name in self._values}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowInputs) and other._values == self._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return "WindowInputs(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"


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
            if INPUTS[name].kind == BOOLEAN:
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


def _scaled(name: str, value: float | bool) -> float:
    spec = INPUTS[name]
    if spec.kind == BOOLEAN:
        return 1.0 if value else 0.0
    centre, spread = spec.scale
    return (_clip(name, float(value)) - centre) / spread


def features(inputs: WindowInputs) -> list[float]:
    """The model's input vector (``FEATURES``): each input scaled as the registry says (to about
    -1..1), with a known flag for each optional input."""
    vector: list[float] = []
    for name in FIELDS:
        value = inputs.get(name)
        if name in REQUIRED:
            vector.append(_scaled(name, value))
        else:
            vector += [0.0, 0.0] if value is None else [_scaled(name, value), 1.0]
    return vector
