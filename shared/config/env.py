"""The environment contract: ``.env`` < ``/run/secrets`` files < real variables, read and checked.

Nothing else in the project reads ``os.environ`` for settings; every bad variable becomes one
sentence naming it, collected by the caller.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from shared.config.model import MqttSettings, TlsSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
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


def mqtt_from_env(env: Mapping[str, str], problems: list[str]) -> MqttSettings:
    tls = None
    ca_file = env.get("MQTT_TLS_CA") or env.get("MQTT_CA_FILE")
    certfile = env.get("MQTT_TLS_CERT") or env.get("MQTT_CERTFILE")
    keyfile = env.get("MQTT_TLS_KEY") or env.get("MQTT_KEYFILE")
    use_tls = _env_bool(env, "MQTT_TLS", bool(ca_file or certfile), problems)
    if use_tls:
        tls = TlsSettings(ca_file=ca_file or None, certfile=certfile or None, keyfile=keyfile or None,
                          insecure=_env_bool(env, "MQTT_TLS_INSECURE", False, problems))
        for name, path in (("MQTT_TLS_CA", ca_file), ("MQTT_TLS_CERT", certfile), ("MQTT_TLS_KEY", keyfile)):
            if path and not Path(path).is_file():
                problems.append(f"{name}: {path!r} is not a readable file")
    qos = _env_int(env, "MQTT_QOS", 1, problems, 0, 2)
    base = env.get("MQTT_BASE_TOPIC", "IoT2mqtt").strip() or "IoT2mqtt"
    if any(c in base for c in "+#") or base.startswith("/") or base.endswith("/"):
        problems.append(f"MQTT_BASE_TOPIC: {base!r} must not contain '+' or '#' nor start or end with '/'")
    prefix = env.get("HA_DISCOVERY_PREFIX", "homeassistant").strip() or "homeassistant"
    return MqttSettings(
        host=env.get("MQTT_HOST", "localhost").strip() or "localhost",
        port=_env_int(env, "MQTT_PORT", 8883 if use_tls else 1883, problems, 1, 65535),
        username=env.get("MQTT_USERNAME") or None,
        password=env.get("MQTT_PASSWORD") or None,
        base_topic=base,
        client_prefix=env.get("MQTT_CLIENT_PREFIX", "iot2mqtt").strip() or "iot2mqtt",
        qos=qos,
        retain=_env_bool(env, "MQTT_RETAIN", True, problems),
        keepalive=_env_int(env, "MQTT_KEEPALIVE", 60, problems, 5, 65535),
        tls=tls,
        ha_discovery=_env_bool(env, "HA_DISCOVERY", True, problems),
        ha_prefix=prefix,
    )


def default_instances_dir(env: Mapping[str, str]) -> Path:
    if env.get("INSTANCES_DIR"):
        return Path(env["INSTANCES_DIR"])
    app_root = default_app_root(env)
    return app_root / "instances" if in_container(app_root) else Path("instances")
