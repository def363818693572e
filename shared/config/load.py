"""How programs get their settings: the instance file read, validated and built, or a ConfigError."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared import api_token as tokens
from shared.api_token import TokenError
from shared.config.build import build_settings
from shared.config.env import default_instances_dir, merged_environment
from shared.config.errors import ConfigError
from shared.config.model import Settings
from shared.config.validate import validate_document


def read_document(path: Path) -> dict[str, Any]:
    """The JSON of an instance file, or a ConfigError that says where the syntax breaks."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"instance file not found (looked for {path})"], source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the instance file: {exc}"], source=str(path)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})"],
                          source=str(path)) from None


def load_settings(environ: Mapping[str, str] | None = None, config_file: Path | str | None = None) -> Settings:
    """The one way programs get their settings. Raises ConfigError listing every problem."""
    env = merged_environment(environ)
    instance = (env.get("INSTANCE_NAME") or "").strip()
    if config_file is None:
        if not instance:
            raise ConfigError(["INSTANCE_NAME is not set (expected the instance id, e.g. sensor_hub_01)"],
                              source="environment")
        path = default_instances_dir(env) / f"{instance}.json"
    else:
        path = Path(config_file)
    doc = read_document(path)
    problems = validate_document(doc, instance_name=instance or None, file_stem=path.stem)
    if problems:
        raise ConfigError(problems, source=str(path))
    settings = build_settings(doc, env, config_file=path, instances_dir=path.parent)
    _ensure_writable(settings.data_dir)
    if settings.api_token is None:  # a real program always has a token: the data folder's
        try:
            settings = replace(settings, api_token=tokens.token_file(settings.data_dir))
        except TokenError as exc:
            raise ConfigError([str(exc)], source="environment") from None
    return settings


def load_settings_or_exit(program: str, exit_code: int = 2) -> Settings:
    """``load_settings()`` for a program's entry point: a broken config ends the start with the
    problems on stderr (supervisord shows them) instead of a traceback."""
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        raise SystemExit(exit_code) from None


def settings_from_dict(doc: dict[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Settings from an in-memory document (tests, tools); validated like a file."""
    env = dict(env or {})
    problems = validate_document(doc, instance_name=env.get("INSTANCE_NAME"))
    if problems:
        raise ConfigError(problems, source="document")
    return build_settings(doc, env)


def _ensure_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError([f"DATA_DIR: cannot create {str(path)!r} ({exc.strerror})"], source="environment") from None
    if not os.access(path, os.W_OK):
        raise ConfigError([f"DATA_DIR: {str(path)!r} is not writable"], source="environment")
