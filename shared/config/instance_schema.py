"""The instance file's JSON Schema (shared/instance.schema.json), read once, and its defaults.

The schema is the only place a default of the instance file is written: the builder reads a
document with ``with_defaults`` filled in, and the dataclasses take theirs from
``field_defaults``. The README's config reference shows the same values (shared/reference.py).
"""
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


def resolve(node: dict[str, Any], root: dict[str, Any] | None = None) -> dict[str, Any]:
    """``node`` with its ``$ref`` followed: the definition, with node's own keywords on top.

    Own ``properties`` are merged field by field, so that an entry can give a shared definition
    its own defaults (each service's default port on the one ``service`` definition).
    """
    root = root or _loaded()
    while "$ref" in node:
        target = root["$defs"][node["$ref"].split("/")[-1]]
        own = {k: v for k, v in node.items() if k != "$ref"}
        merged = {**target, **own}
        if "properties" in target and "properties" in own:
            names = dict.fromkeys([*target["properties"], *own["properties"]])
            merged["properties"] = {name: {**target["properties"].get(name, {}), **own["properties"].get(name, {})}
                                    for name in names}
        node = merged
    return node


def _fill(value: Any, node: dict[str, Any]) -> Any:
    node = resolve(node)
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_fill(item, node["items"]) for item in value]
    if not isinstance(value, dict):
        return value
    filled = dict(value)
    for name, child in (node.get("properties") or {}).items():
        child = resolve(child)
        if name in filled:
            filled[name] = _fill(filled[name], child)
        elif "default" in child:
            filled[name] = _fill(copy.deepcopy(child["default"]), child)
        elif child.get("type") == "object":
            # An absent object whose fields have defaults (config.ml, config.services) takes them.
            inner = _fill({}, child)
            if inner:
                filled[name] = inner
    return filled


def with_defaults(document: Any) -> Any:
    """A copy of ``document`` in which every absent field with a schema default has it.

    Values of the wrong type are left as they are (the schema's problems name them), so this is
    safe on a document that is not valid yet.
    """
    return _fill(document, _loaded())


def field_defaults(*path: str) -> dict[str, Any]:
    """The schema's defaults of the fields of the object at ``path`` (field names; arrays are
    entered by their items): ``field_defaults("config", "serial_ports")`` -> a board's defaults."""
    node = resolve(_loaded())
    for name in path:
        node = resolve(node["properties"][name])
        if node.get("type") == "array":
            node = resolve(node["items"])
    return {name: child["default"] for name, child in
            ((name, resolve(child)) for name, child in (node.get("properties") or {}).items()) if "default" in child}
