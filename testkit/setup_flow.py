"""Renders an IoT2MQTT setup flow (setup.json) the way the platform does, for tests.

Templates are ``{{ path.to.value }}``: a string that is exactly one placeholder becomes the raw
value (a number stays a number, a checkbox a boolean); otherwise the value is interpolated into
the string. Form answers default to each field's ``default``.
"""
from __future__ import annotations

import re
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


def lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        value = value[part]
    return value


def resolve(node: Any, context: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: resolve(v, context) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, context) for v in node]
    if isinstance(node, str):
        whole = PLACEHOLDER.fullmatch(node.strip())
        if whole:
            return lookup(context, whole.group(1))
        return PLACEHOLDER.sub(lambda m: str(lookup(context, m.group(1))), node)
    return node


def default_answers(flow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}
    for step in flow["steps"]:
        if step["type"] == "form":
            answers[step["id"]] = {f["name"]: f.get("default") for f in step["schema"]["fields"]}
    return answers


def render_instance(flow: dict[str, Any], answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    step = next(s for s in flow["steps"] if s["type"] == "instance")
    return resolve(step["instance"], {"form": answers})
