"""Is an instance document valid? Every problem at once, each naming its field.

The JSON Schema's errors are worded here as one sentence each (the JSON path, the bad value,
what is expected); the checks a schema cannot express (references between sections,
uniqueness, names) follow them.
"""
from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from shared.config.device_types import DEVICE_TYPES
from shared.config.instance_schema import schema
from shared.config.model import DEFAULT_PORTS, SOURCE_OWNERS

_validator: Draft202012Validator | None = None


def _schema_validator() -> Draft202012Validator:
    global _validator  # a compiled validator is immutable; caching it is safe
    if _validator is None:
        doc = schema()
        Draft202012Validator.check_schema(doc)
        _validator = Draft202012Validator(doc)
    return _validator


def json_path(parts: Iterable[Any]) -> str:
    """``config.serial_ports[0].baudrate`` from ``["config", "serial_ports", 0, "baudrate"]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, (dict, list)) else \
        json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "object": "an object", "array": "an array", "null": "null"}


def _describe(error: ValidationError) -> str:
    """One sentence naming the field, the bad value and what is expected."""
    path = list(error.absolute_path)
    value = error.instance
    kind = error.validator
    expected = error.schema.get("x-expected") if isinstance(error.schema, dict) else None
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        described = _describe_field(error.schema, missing)
        return f"{json_path(path + [missing])}: missing; it is required{described}"
    if kind == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys())
        extras = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        sentences = []
        for extra in extras:
            guess = difflib.get_close_matches(extra, allowed, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else f" (expected one of: {', '.join(allowed)})"
            sentences.append(f"{json_path(path + [extra])}: unknown field{hint}")
        return "; ".join(sentences) or f"{json_path(path)}: unknown fields"
    where = json_path(path)
    if kind == "enum":
        options = ", ".join(_show(v) for v in error.validator_value)
        return f"{where}: {_show(value)} is not one of {options}"
    if kind == "const":
        return f"{where}: {_show(value)} must be {_show(error.validator_value)}"
    if kind == "type":
        wanted = error.validator_value
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        return f"{where}: {_show(value)} is not {' or '.join(_TYPE_NAMES.get(n, n) for n in names)}"
    if kind == "pattern":
        return f"{where}: {_show(value)} is not valid (expected {expected or 'a match for ' + error.validator_value})"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {"minimum": "at least", "exclusiveMinimum": "greater than",
                    "maximum": "at most", "exclusiveMaximum": "less than"}[kind]
        return f"{where}: {_show(value)} is out of range (expected {relation} {error.validator_value})"
    if kind in ("minLength", "maxLength"):
        if kind == "minLength" and error.validator_value == 1:
            return f"{where}: must not be empty"
        relation = "at least" if kind == "minLength" else "at most"
        return f"{where}: {_show(value)} has the wrong length (expected {relation} {error.validator_value} characters)"
    if kind in ("minItems", "maxItems"):
        relation = "at least" if kind == "minItems" else "at most"
        return f"{where}: expected {relation} {error.validator_value} item(s)"
    if kind == "uniqueItems":
        return f"{where}: items must be unique"
    if kind == "minProperties":
        return f"{where}: must not be empty{_describe_field(error.schema, None)}"
    return f"{where}: {error.message}"


def _describe_field(parent_schema: Any, name: str | None) -> str:
    if not isinstance(parent_schema, dict):
        return ""
    if name is None:
        text = parent_schema.get("description")
    else:
        prop = (parent_schema.get("properties") or {}).get(name) or {}
        text = prop.get("description")
    return f" ({text.rstrip('.')})" if text else ""


def schema_problems(doc: Any) -> list[str]:
    errors = sorted(_schema_validator().iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return [_describe(e) for e in errors]


def _duplicates(items: list[Any], key: str, where: str) -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(key), str):
            continue
        ident = item[key]
        if ident in seen:
            problems.append(f"{where}[{index}].{key}: {ident!r} is a duplicate "
                            f"(already used by {where}[{seen[ident]}])")
        else:
            seen[ident] = index
    return problems


def cross_field_problems(doc: dict[str, Any], instance_name: str | None = None,
                         file_stem: str | None = None) -> list[str]:
    """Checks a schema cannot express: references between sections, uniqueness, names."""
    problems: list[str] = []
    cfg = doc.get("config") if isinstance(doc.get("config"), dict) else {}

    def listed(container: dict[str, Any], name: str) -> list[Any]:
        value = container.get(name)
        return value if isinstance(value, list) else []

    devices, groups = listed(doc, "devices"), listed(doc, "groups")
    boards, endpoints = listed(cfg, "serial_ports"), listed(cfg, "http_endpoints")
    automations = listed(cfg, "window_automations")

    instance_id = doc.get("instance_id")
    if isinstance(instance_id, str):
        if instance_name and instance_id != instance_name:
            problems.append(f"instance_id: {instance_id!r} does not match INSTANCE_NAME {instance_name!r}")
        if file_stem and instance_id != file_stem:
            problems.append(f"instance_id: {instance_id!r} does not match the file name {file_stem + '.json'!r}")

    problems += _duplicates(devices, "device_id", "devices")
    problems += _duplicates(groups, "group_id", "groups")
    problems += _duplicates(boards, "board_id", "config.serial_ports")
    problems += _duplicates(endpoints, "endpoint_id", "config.http_endpoints")
    problems += _duplicates(automations, "automation_id", "config.window_automations")
    problems += _duplicates(boards, "port", "config.serial_ports")

    def ids(items: list[Any], key: str) -> set[str]:
        return {i[key] for i in items if isinstance(i, dict) and isinstance(i.get(key), str)}

    known = {"board": ids(boards, "board_id"), "endpoint": ids(endpoints, "endpoint_id"),
             "automation": ids(automations, "automation_id")}
    where_listed = {"board": "config.serial_ports", "endpoint": "config.http_endpoints",
                    "automation": "config.window_automations"}
    device_types: dict[str, str] = {}
    for index, device in enumerate(devices):
        if not isinstance(device, dict):
            continue
        if isinstance(device.get("device_id"), str):
            # An unknown type is reported by the schema; do not report it again as a mismatch.
            device_types[device["device_id"]] = device["type"] if device.get("type") in DEVICE_TYPES else "?"
        source = device.get("source")
        if not isinstance(source, dict):
            continue
        kinds = [k for k in SOURCE_OWNERS if k in source]
        if len(kinds) != 1 and source:
            found = " and ".join(kinds) if kinds else "none of them"
            problems.append(f"devices[{index}].source: must name exactly one of board, endpoint or automation "
                            f"(found {found})")
            continue
        for kind in kinds:
            ref = source[kind]
            if isinstance(ref, str) and ref not in known[kind]:
                choices = ", ".join(sorted(known[kind])) or "none are configured"
                problems.append(f"devices[{index}].source.{kind}: {ref!r} is not in {where_listed[kind]} "
                                f"(known: {choices})")
        if "key" in source and "endpoint" not in source:
            problems.append(f"devices[{index}].source.key: only an endpoint source takes a key")

    for gi, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("devices"), list):
            continue
        for mi, member in enumerate(group["devices"]):
            if isinstance(member, str) and member not in device_types:
                problems.append(f"groups[{gi}].devices[{mi}]: {member!r} is not a configured device")

    for ai, automation in enumerate(automations):
        if not isinstance(automation, dict):
            continue
        window = automation.get("window")
        if isinstance(window, str):
            if window not in device_types:
                problems.append(f"config.window_automations[{ai}].window: {window!r} is not a configured device")
            elif device_types[window] not in ("window", "?"):
                problems.append(f"config.window_automations[{ai}].window: {window!r} is a "
                                f"{device_types[window]} device, expected a window device")
        sensors = automation.get("sensors")
        if isinstance(sensors, dict):
            for role, ref in sensors.items():
                if not isinstance(ref, str):
                    continue
                wanted = "temperature" if role == "outdoor_temperature" else role
                if ref not in device_types:
                    problems.append(f"config.window_automations[{ai}].sensors.{role}: {ref!r} is not a "
                                    "configured device")
                elif device_types[ref] not in (wanted, "?"):
                    problems.append(f"config.window_automations[{ai}].sensors.{role}: {ref!r} is a "
                                    f"{device_types[ref]} device, expected a {wanted} device")
        low, high = automation.get("min_position", 0), automation.get("max_position", 100)
        if isinstance(low, int) and isinstance(high, int) and low > high:
            problems.append(f"config.window_automations[{ai}].min_position: {low} is above max_position {high}")

    services = cfg.get("services") if isinstance(cfg.get("services"), dict) else {}
    used: dict[tuple[str, int], str] = {}
    for name, default_port in DEFAULT_PORTS.items():
        entry = services.get(name) if isinstance(services.get(name), dict) else {}
        port = entry.get("port", default_port)
        host = entry.get("host", "127.0.0.1")
        if isinstance(port, int) and isinstance(host, str):
            if (host, port) in used:
                problems.append(f"config.services.{name}.port: {port} is already used by {used[(host, port)]}")
            used[(host, port)] = name
    return problems


def validate_document(doc: Any, instance_name: str | None = None, file_stem: str | None = None) -> list[str]:
    """Every problem of an instance document, schema first, then cross-field checks."""
    if not isinstance(doc, dict):
        return [f"(top level): expected a JSON object, found {type(doc).__name__}"]
    return schema_problems(doc) + cross_field_problems(doc, instance_name, file_stem)
