"""The repository and its example instance (instances/sensor_hub_01.json), which tests and
benchmarks build their instances on."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_INSTANCE = ROOT / "instances" / "sensor_hub_01.json"


def example_document() -> dict[str, Any]:
    """A fresh copy of the example instance, for a caller to change."""
    return json.loads(EXAMPLE_INSTANCE.read_text())


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` merged into ``base`` (in place, and returned); lists are replaced, not merged."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base
