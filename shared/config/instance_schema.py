"""The instance file's JSON Schema (shared/instance.schema.json), read once."""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).parent.parent / "instance.schema.json"


@functools.cache
def _loaded() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def schema() -> dict[str, Any]:
    """The schema as a fresh dict (callers may change it without touching anyone else's)."""
    return copy.deepcopy(_loaded())
