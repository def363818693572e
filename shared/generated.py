"""The files, or parts of files, written from the device-type registry and the schema.

``make docs`` (scripts/update_readme.py) writes them; tests/shared/test_generated.py fails when
a copy in the repository differs from what this module makes of the registry, so a device type
cannot be added in shared/devices.py without its schema enum, manifest entry and docs following.

* shared/instance.schema.json: ``$defs.device.properties.type.enum`` and the window automation's
  ``sensors`` (which roles exist, which are required);
* manifest.json: ``device_types``;
* docs/architecture.md: the table of "Device types and their state";
* README.md: the config reference (shared/reference.py, from the schema).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.devices import DEVICE_TABLE, DEVICE_TYPES, DeviceType, automation_inputs

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "shared" / "instance.schema.json"
MANIFEST = ROOT / "manifest.json"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"

TABLE_START = "<!-- device-types:start (generated from shared/devices.py by `make docs`) -->"
TABLE_END = "<!-- device-types:end -->"
REGENERATE = "run `make docs` (python -m scripts.update_readme) to regenerate it"


def schema_document(current: dict[str, Any]) -> dict[str, Any]:
    """``current`` (the schema) with its registry-made parts replaced."""
    doc = json.loads(json.dumps(current))
    doc["$defs"]["device"]["properties"]["type"]["enum"] = list(DEVICE_TYPES)
    sensors = doc["$defs"]["window_automation"]["properties"]["sensors"]
    inputs = automation_inputs()
    sensors["required"] = [role for role, (_, spec) in inputs.items() if spec.required]
    sensors["properties"] = {role: {"$ref": "#/$defs/id", "description": spec.description}
                             for role, (_, spec) in inputs.items()}
    return doc


def schema_text(current: str) -> str:
    return json.dumps(schema_document(json.loads(current)), indent=2, ensure_ascii=False) + "\n"


_MANIFEST_TYPES = re.compile(r'^(\s*)"device_types": \[[^\]]*\],$', re.MULTILINE)


def manifest_text(current: str) -> str:
    """manifest.json keeps its hand-made layout; only the ``device_types`` line is written."""
    line = '"device_types": ' + json.dumps(list(DEVICE_TYPES), ensure_ascii=False) + ","
    text, found = _MANIFEST_TYPES.subn(lambda m: m.group(1) + line, current)
    if found != 1:
        raise ValueError('manifest.json needs one line "device_types": [...], for the registry to fill')
    return text


def _property_text(entry: DeviceType) -> str:
    parts = []
    for prop in entry.properties:
        detail = prop.unit or ("bool" if prop.kind == "boolean" else "`on`/`off`" if prop.kind == "on_off"
                               else "`#rrggbb`" if prop.kind == "color" else "")
        low, high = prop.range
        if prop.kind != "number" and low > float("-inf") and high < float("inf"):
            detail = f"{low:g}–{high:g}" + (f" {prop.unit}" if prop.unit else "")
        parts.append(f"`{prop.name}`" + (f" ({detail})" if detail else ""))
    return ", ".join(parts)


def _ha_text(entry: DeviceType) -> str:
    if entry.ha_component != "sensor":
        return f"{entry.ha_component}" + (f" ({entry.ha_device_class})" if entry.ha_device_class else "")
    shown = []
    for prop in entry.properties:
        ha = prop.ha
        if ha is not None:
            shown.append(f"sensor ({ha.device_class or 'no class'}, {ha.unit})")
    return "; ".join(shown)


def device_table() -> str:
    """The markdown table of every device type (docs/architecture.md)."""
    lines = [TABLE_START, "", "| type | state properties | board `sensor` field | commands (`values`) "
             "| Home Assistant | automation input |",
             "|---|---|---|---|---|---|"]
    for entry in DEVICE_TABLE:
        fields = ", ".join(f"`{p.board.name}`" for p in entry.properties if p.board is not None)
        commands = ", ".join(f"`{name}`" for name in entry.commands) or "none"
        roles = ", ".join(f"`{i.role}`" + (" (required)" if i.required else "") for i in entry.inputs)
        lines.append(f"| `{entry.name}` | {_property_text(entry)} | {fields} | {commands} | {_ha_text(entry)} | "
                     f"{roles} |")
    lines += ["", TABLE_END]
    return "\n".join(lines)


def replace_section(text: str, start: str, end: str, section: str, where: str) -> str:
    head, found, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found or not found_end:
        raise ValueError(f"{where} lacks the markers {start!r} ... {end!r}")
    return head + section.rstrip("\n") + tail


def architecture_text(current: str) -> str:
    return replace_section(current, TABLE_START, TABLE_END, device_table(), ARCHITECTURE.name)


def readme_text(current: str) -> str:
    from shared.reference import END, START, config_reference  # reads the schema: after it is written

    return replace_section(current, START, END, config_reference(), README.name)


GENERATED: dict[Path, Callable[[str], str]] = {
    SCHEMA: schema_text,
    MANIFEST: manifest_text,
    ARCHITECTURE: architecture_text,
    README: readme_text,  # last: the config reference reads the schema written above
}
"""Each generated file and how to make it from its current text (order matters: the schema first)."""


def stale() -> list[Path]:
    """The generated files whose content differs from what the registry makes of them."""
    return [path for path, make in GENERATED.items() if make(path.read_text(encoding="utf-8"))
            != path.read_text(encoding="utf-8")]


def write_all() -> list[Path]:
    """Regenerate every file; the ones that changed."""
    changed = []
    for path, make in GENERATED.items():
        current = path.read_text(encoding="utf-8")
        new = make(current)
        if new != current:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed
