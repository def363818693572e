"""The environment contract: ``.env`` < ``/run/secrets`` files < real variables, read and checked.

Nothing else in the project reads ``os.environ`` for settings; every bad variable becomes one
sentence naming it, collected by the caller.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from shared import api_token as tokens
from shared.api_token import ApiToken, TokenError
from shared.config.errors import ConfigError
from shared.config.model import CONNECTOR_TYPE, MqttSettings, TlsSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LOG_LEVEL = "INFO"
LOG_FORMATS = ("human", "json")
"""LOG_FORMAT's choices, the default first."""
MODES = ("production", "development")
"""MODE's choices, the default first."""
_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


def read_key_values(path: Path) -> dict[str, str]:
    """``key=value`` lines (a .env or a secrets file); blank lines and # comments skipped."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def default_app_root(environ: Mapping[str, str]) -> Path:
    if environ.get("IOT2MQTT_PATH"):
        return Path(environ["IOT2MQTT_PATH"])
    return Path("/app") if Path("/app").is_dir() else Path(".")


def in_container(app_root: Path) -> bool:
    return app_root.resolve() != Path(".").resolve() and app_root.is_dir()


def merged_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment contract: ``<app>/.env`` < ``/run/secrets`` files < real variables.

    Secrets files are named after the instance (``<instance>_mqtt``, ``<instance>_creds``);
    their ``username``/``password``/``host``/``port`` keys map to the ``MQTT_*`` variables.
    Keys from ``<instance>_creds`` are kept apart (``CREDS_<key>``) for device credentials.
    """
    real = dict(os.environ if environ is None else environ)
    app_root = default_app_root(real)
    merged: dict[str, str] = {}
    merged.update(read_key_values(app_root / ".env"))
    instance = real.get("INSTANCE_NAME") or merged.get("INSTANCE_NAME")
    secrets_dir = Path(real.get("SECRETS_DIR") or merged.get("SECRETS_DIR") or "/run/secrets")
    if instance:
        for key, value in read_key_values(secrets_dir / f"{instance}_mqtt").items():
            name = key.upper()
            merged[name if name.startswith("MQTT_") else f"MQTT_{name}"] = value
        for key, value in read_key_values(secrets_dir / f"{instance}_creds").items():
            merged[f"CREDS_{key}"] = value
    merged.update(real)
    return merged


def _env_bool(env: Mapping[str, str], name: str, default: bool, problems: list[str]) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    problems.append(f"{name}: {raw!r} is not a boolean (expected true or false)")
    return default


def _env_int(env: Mapping[str, str], name: str, default: int, problems: list[str],
             low: int | None = None, high: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        problems.append(f"{name}: {raw!r} is not an integer")
        return default
    if (low is not None and value < low) or (high is not None and value > high):
        problems.append(f"{name}: {value} is out of range (expected {low}..{high})")
        return default
    return value


def _env_text(env: Mapping[str, str], name: str, default: str) -> str:
    return (env.get(name) or "").strip() or default


_MQTT = MqttSettings()
MQTT_TLS_PORT = 8883
"""The broker port when TLS is on and MQTT_PORT is not set (MqttSettings' own is the plain one)."""


def mqtt_from_env(env: Mapping[str, str], problems: list[str]) -> MqttSettings:
    tls = None
    ca_file = env.get("MQTT_TLS_CA") or env.get("MQTT_CA_FILE")
    certfile = env.get("MQTT_TLS_CERT") or env.get("MQTT_CERTFILE")
    keyfile = env.get("MQTT_TLS_KEY") or env.get("MQTT_KEYFILE")
    use_tls = _env_bool(env, "MQTT_TLS", bool(ca_file or certfile), problems)
    if use_tls:
        tls = TlsSettings(ca_file=ca_file or None, certfile=certfile or None, keyfile=keyfile or None,
                          insecure=_env_bool(env, "MQTT_TLS_INSECURE", TlsSettings.insecure, problems))
        for name, path in (("MQTT_TLS_CA", ca_file), ("MQTT_TLS_CERT", certfile), ("MQTT_TLS_KEY", keyfile)):
            if path and not Path(path).is_file():
                problems.append(f"{name}: {path!r} is not a readable file")
    qos = _env_int(env, "MQTT_QOS", _MQTT.qos, problems, 0, 2)
    base = _env_text(env, "MQTT_BASE_TOPIC", _MQTT.base_topic)
    if any(c in base for c in "+#") or base.startswith("/") or base.endswith("/"):
        problems.append(f"MQTT_BASE_TOPIC: {base!r} must not contain '+' or '#' nor start or end with '/'")
    return MqttSettings(
        host=_env_text(env, "MQTT_HOST", _MQTT.host),
        port=_env_int(env, "MQTT_PORT", MQTT_TLS_PORT if use_tls else _MQTT.port, problems, 1, 65535),
        username=env.get("MQTT_USERNAME") or None,
        password=env.get("MQTT_PASSWORD") or None,
        base_topic=base,
        client_prefix=_env_text(env, "MQTT_CLIENT_PREFIX", _MQTT.client_prefix),
        qos=qos,
        retain=_env_bool(env, "MQTT_RETAIN", _MQTT.retain, problems),
        keepalive=_env_int(env, "MQTT_KEEPALIVE", _MQTT.keepalive, problems, 5, 65535),
        tls=tls,
        ha_discovery=_env_bool(env, "HA_DISCOVERY", _MQTT.ha_discovery, problems),
        ha_prefix=_env_text(env, "HA_DISCOVERY_PREFIX", _MQTT.ha_prefix),
    )


def _one_of(env: Mapping[str, str], name: str, choices: tuple[str, ...], problems: list[str]) -> str:
    """The variable, lowercased, when it is one of ``choices``; the first choice is the default."""
    value = _env_text(env, name, choices[0]).lower()
    if value not in choices:
        problems.append(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def bundled_model(env: Mapping[str, str]) -> Path | None:
    """The default weights the image ships (SENSOR_HUB_BUNDLED_MODEL), if any."""
    return Path(env["SENSOR_HUB_BUNDLED_MODEL"]) if env.get("SENSOR_HUB_BUNDLED_MODEL") else None


def environment_fields(env: Mapping[str, str]) -> dict[str, Any]:
    """The Settings fields the environment decides, by name; a ConfigError lists every bad variable."""
    problems: list[str] = []
    log_level = _env_text(env, "LOG_LEVEL", DEFAULT_LOG_LEVEL).upper()
    if log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL: {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        log_level = DEFAULT_LOG_LEVEL
    log_format = _one_of(env, "LOG_FORMAT", LOG_FORMATS, problems)
    mode = _one_of(env, "MODE", MODES, problems)
    connector_type = env.get("CONNECTOR_TYPE") or CONNECTOR_TYPE
    if connector_type != CONNECTOR_TYPE:
        problems.append(f"CONNECTOR_TYPE: {connector_type!r} must be {CONNECTOR_TYPE!r}")
    mqtt = mqtt_from_env(env, problems)
    token: ApiToken | None = None
    try:
        token = tokens.from_secrets(env)
    except TokenError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError(problems, source="environment")
    app_root = default_app_root(env)
    data_dir = Path(env.get("DATA_DIR") or (app_root / "data" if in_container(app_root) else Path("data")))
    return {
        "log_level": log_level, "log_format": log_format, "mode": mode, "tz": env.get("TZ") or None,
        "app_root": app_root, "data_dir": data_dir, "run_dir": Path(env.get("SENSOR_HUB_RUN_DIR") or data_dir / "run"),
        "instances_dir": default_instances_dir(env), "mqtt": mqtt, "api_token": token,
        "credentials": MappingProxyType({k[len("CREDS_"):]: v for k, v in env.items() if k.startswith("CREDS_")}),
    }


def default_instances_dir(env: Mapping[str, str]) -> Path:
    if env.get("INSTANCES_DIR"):
        return Path(env["INSTANCES_DIR"])
    app_root = default_app_root(env)
    return app_root / "instances" if in_container(app_root) else Path("instances")
