"""Every default of the instance file is written once, in the schema: what the builder makes of an
absent field and what a dataclass takes when built by hand both equal the schema's ``default``."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from shared.config import (
    DEFAULT_PORTS,
    AutomationSpec,
    BoardSpec,
    DeviceSpec,
    EndpointSpec,
    MlSettings,
    Settings,
    settings_from_dict,
)
from shared.config.instance_schema import field_defaults, with_defaults
from shared.reference import fields

# Only the required fields: everything else is the schema's to fill in.
BARE = {"instance_id": "hub", "connector_type": "sensor-hub", "devices": [], "config": {}}
ONE_OF_EACH = {
    "instance_id": "hub", "connector_type": "sensor-hub",
    "devices": [{"device_id": "t", "type": "temperature", "source": {"board": "b"}},
                {"device_id": "h", "type": "humidity", "source": {"endpoint": "e"}},
                {"device_id": "w", "type": "window", "source": {"board": "b"}}],
    "config": {"serial_ports": [{"board_id": "b", "port": "loop://"}],
               "http_endpoints": [{"endpoint_id": "e", "url": "http://127.0.0.1:8080"}],
               "window_automations": [{"automation_id": "a", "window": "w",
                                       "sensors": {"temperature": "t", "humidity": "h"}}]},
}
DATA_DIR = Path("/nonexistent/data")


def _built(path: str, bare: Settings, full: Settings) -> Any:
    """What the builder made of the schema field at ``path`` (a path of shared.reference.fields)."""
    head, _, name = path.rpartition(".")
    items = {"devices[]": full.devices, "config.serial_ports[]": full.boards,
             "config.http_endpoints[]": full.endpoints, "config.window_automations[]": full.automations}
    if head in items:
        return getattr(items[head][0], name)
    if head.startswith("config.services."):
        return getattr(bare.service(head.split(".")[2]), name)
    if head == "config.ml":
        value = getattr(bare.ml, name)
        return str(value.relative_to(DATA_DIR)) if name == "model_path" else value
    sections = {"groups": bare.groups, "config.serial_ports": bare.boards, "config.http_endpoints": bare.endpoints,
                "config.window_automations": bare.automations}
    if path in sections:
        return list(sections[path])
    if head in ("", "config"):
        return getattr(bare, name)
    raise AssertionError(f"the test does not know where {path} ends up in Settings: add it to _built")


def test_the_builder_takes_every_default_from_the_schema():
    env = {"DATA_DIR": str(DATA_DIR)}
    bare, full = settings_from_dict(BARE, env), settings_from_dict(ONE_OF_EACH, env)
    defaults = {path: json.loads(default) for path, _, default, _, _ in fields() if default}
    assert len(defaults) > 30  # the walk found the schema's defaults, nested ones included
    for path, default in defaults.items():
        assert _built(path, bare, full) == default, path


def test_the_services_default_ports_are_the_schemas():
    assert DEFAULT_PORTS == {"serial_handler": 5001, "http_poller": 5002, "state_aggregator": 5003,
                             "ml_inference": 5004}  # and in start order
    assert list(DEFAULT_PORTS) == list(with_defaults(BARE)["config"]["services"])


@pytest.mark.parametrize("spec,path", [
    (DeviceSpec, ("devices",)), (BoardSpec, ("config", "serial_ports")), (EndpointSpec, ("config", "http_endpoints")),
    (AutomationSpec, ("config", "window_automations")), (MlSettings, ("config", "ml")),
], ids=lambda p: p.__name__ if isinstance(p, type) else ".".join(p))
def test_a_spec_built_by_hand_has_the_schemas_defaults(spec: type, path: tuple[str, ...]):
    own = {f.name: f.default for f in dataclasses.fields(spec) if f.default is not dataclasses.MISSING}
    schema = field_defaults(*path)
    shared_names = set(own) & set(schema)
    assert shared_names, "no field in common: wrong path?"
    for name in shared_names:
        assert own[name] == schema[name], f"{spec.__name__}.{name}"
    # A field the schema gives a default and the dataclass does not is fine only when it is
    # relative to something the dataclass cannot know (model_path is under DATA_DIR).
    assert set(schema) - set(own) <= {"model_path"}


def test_defaults_are_filled_without_touching_the_callers_document_or_wrong_types():
    doc = {"config": {"serial_ports": [{"board_id": "b"}, "not a board"], "services": "nope"}, "groups": 3}
    filled = with_defaults(doc)
    assert filled["config"]["serial_ports"][0]["baudrate"] == 115200
    assert filled["config"]["serial_ports"][1] == "not a board"
    assert filled["config"]["services"] == "nope" and filled["groups"] == 3
    assert doc == {"config": {"serial_ports": [{"board_id": "b"}, "not a board"], "services": "nope"}, "groups": 3}
    user_port = with_defaults({"config": {"services": {"http_poller": {"host": "0.0.0.0"}}}})
    assert user_port["config"]["services"]["http_poller"] == {"host": "0.0.0.0", "port": 5002}


def test_the_platforms_files_offer_the_schemas_defaults():
    """setup.json and manifest.json are read by IoT2MQTT, not by our code, so they repeat some
    defaults; this keeps them equal to the schema's."""
    root = Path(__file__).resolve().parents[2]
    manifest = json.loads((root / "manifest.json").read_text())
    assert {s["name"]: s["port"] for s in manifest["services"] if "port" in s} == DEFAULT_PORTS
    setup = json.loads((root / "setup.json").read_text())
    offered = {f["name"]: f["default"] for flow in setup["flows"] for step in flow.get("steps", [])
               for f in step.get("schema", {}).get("fields", []) if "default" in f}
    assert {name: offered[f"{name}_port"] for name in DEFAULT_PORTS} == DEFAULT_PORTS
    assert offered["baudrate"] == field_defaults("config", "serial_ports")["baudrate"]
