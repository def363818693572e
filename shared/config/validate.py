"""Is an instance document valid? Every problem at once, each naming its field.

The JSON Schema's errors are worded here as one sentence each (the JSON path, the bad value,
what is expected); the checks a schema cannot express (references between sections,
uniqueness, names: rules.py) follow them.
"""
from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from shared.config.instance_schema import schema
from shared.config.rules import cross_field_problems

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


def validate_document(doc: Any, instance_name: str | None = None, file_stem: str | None = None) -> list[str]:
    """Every problem of an instance document, schema first, then cross-field checks."""
    if not isinstance(doc, dict):
        return [f"(top level): expected a JSON object, found {type(doc).__name__}"]
    return schema_problems(doc) + cross_field_problems(doc, instance_name, file_stem)
