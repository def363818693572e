"""The instance config and the environment contract, turned into one immutable Settings object.

Every program starts with ``load_settings()``; nothing else reads the environment or the
instance file. Problems are collected, not raised one by one: a user who fixes a config wants
to see every mistake at once, each with its JSON path, the bad value and what is expected.

The package, one job per module (docs/architecture.md, "Settings"):

- ``model``: the frozen dataclasses (Settings, DeviceSpec, BoardSpec, ...);
- ``instance_schema``: shared/instance.schema.json, read once;
- ``device_types``: what the package knows about device types;
- ``env``: the environment contract (``.env``, ``/run/secrets``, variables);
- ``validate``: the schema's errors worded per field, then the rules, in one call;
- ``rules``: the cross-field rules, one small function each (``RULES``);
- ``build``: Settings from a validated document plus the environment;
- ``load``: the file read, validated and built (``load_settings``, ``settings_from_dict``);
- ``cli``: ``python -m shared.config check [FILE]`` and ``python -m shared.config reference``.

Callers import from ``shared.config`` itself; the names below are the public surface.
"""
from __future__ import annotations

from shared.config.build import build_settings
from shared.config.cli import check_file, main, summary
from shared.config.device_types import DEVICE_TYPES
from shared.config.env import (
    LOG_LEVELS,
    default_app_root,
    default_instances_dir,
    merged_environment,
    mqtt_from_env,
    read_key_values,
)
from shared.config.errors import ConfigError
from shared.config.instance_schema import SCHEMA_PATH, schema
from shared.config.load import load_settings, load_settings_or_exit, read_document, settings_from_dict
from shared.config.model import (
    CONNECTOR_TYPE,
    DEFAULT_PORTS,
    SOURCE_OWNERS,
    VERSION,
    AutomationSpec,
    BoardSpec,
    DeviceSpec,
    EndpointSpec,
    GroupSpec,
    MlSettings,
    MqttSettings,
    ServiceAddress,
    Settings,
    TlsSettings,
)
from shared.config.rules import cross_field_problems
from shared.config.validate import json_path, schema_problems, validate_document

__all__ = [
    "CONNECTOR_TYPE", "DEFAULT_PORTS", "DEVICE_TYPES", "LOG_LEVELS", "SCHEMA_PATH", "SOURCE_OWNERS", "VERSION",
    "AutomationSpec", "BoardSpec", "ConfigError", "DeviceSpec", "EndpointSpec", "GroupSpec", "MlSettings",
    "MqttSettings", "ServiceAddress", "Settings", "TlsSettings",
    "build_settings", "check_file", "cross_field_problems", "default_app_root", "default_instances_dir",
    "json_path", "load_settings", "load_settings_or_exit", "main", "merged_environment", "mqtt_from_env",
    "read_document", "read_key_values", "schema", "schema_problems", "settings_from_dict", "summary",
    "validate_document",
]
