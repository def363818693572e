"""The files, or parts of files, written from the device-type registry and the schema.

``make docs`` (scripts/update_readme.py) writes them; tests/shared/test_generated.py fails when
a copy in the repository differs from what this module makes of the registry, so a device type
cannot be added in shared/devices.py without its schema enum, manifest entry and docs following.

* shared/instance.schema.json: ``$defs.device.properties.type.enum`` and the window automation's
  ``sensors`` (which roles exist, which are required);
* manifest.json: ``device_types``;
* setup.json (the IoT2MQTT setup flow): the board step's part checkboxes and the devices the
  answers give the board, from ``BOARD_PARTS`` (the rest of the flow is hand-made);
* docs/architecture.md: the table of "Device types and their state";
* README.md: the config reference (shared/reference.py, from the schema).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.devices import BOARD_PARTS, DEVICE_TABLE, DEVICE_TYPES, DeviceType, automation_inputs

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "shared" / "instance.schema.json"
MANIFEST = ROOT / "manifest.json"
SETUP = ROOT / "setup.json"
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


def setup_checkboxes() -> list[dict[str, Any]]:
    """The board step's fields that ask which parts the board carries."""
    return [{"type": "checkbox", "name": part.answer, "label": part.label, "default": part.default}
            for part in BOARD_PARTS]


def setup_devices() -> list[dict[str, Any]]:
    """The instance's devices, each enabled by the answer to its part's checkbox."""
    board, area = "{{ form.board.board_id }}", "{{ form.board.area }}"
    return [{"device_id": f"{board}_{suffix}", "name": f"{area} {name}", "type": type_name, "area": area,
             "enabled": f"{{{{ form.board.{part.answer} }}}}", "source": {"board": board}}
            for part in BOARD_PARTS for type_name, suffix, name in part.devices]


def _replace_lines(text: str, belongs: Callable[[str], bool], items: list[dict[str, Any]], what: str) -> str:
    """Replace the one run of lines ``belongs`` picks with one JSON line per item, keeping the
    run's indent and whether its last line ends with a comma."""
    lines = text.splitlines(keepends=True)
    picked = [i for i, line in enumerate(lines) if belongs(line)]
    if not picked or picked != list(range(picked[0], picked[-1] + 1)):
        raise ValueError(f"setup.json needs {what} as one run of lines, one per line, for the registry to fill")
    first, last = lines[picked[0]], lines[picked[-1]]
    indent = first[:len(first) - len(first.lstrip())]
    ending = "," if last.rstrip().endswith(",") else ""
    new = [indent + json.dumps(item, ensure_ascii=False) + ("," if n < len(items) - 1 else ending) + "\n"
           for n, item in enumerate(items)]
    return "".join(lines[:picked[0]] + new + lines[picked[-1] + 1:])


def setup_text(current: str) -> str:
    """setup.json keeps its hand-made layout; the part checkboxes and the board's devices are written."""
    text = _replace_lines(current, lambda line: '"type": "checkbox", "name": "has_' in line, setup_checkboxes(),
                          "the board's part checkboxes")
    text = _replace_lines(text, lambda line: line.lstrip().startswith('{"device_id": "{{ form.board.board_id }}_'),
                          setup_devices(), "the board's devices")
    json.loads(text)  # still one JSON document
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
    SETUP: setup_text,
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
