"""The instance config and the environment contract, turned into one immutable Settings object.

Every program starts with ``load_settings()``; nothing else reads the environment or the
instance file. Problems are collected, not raised one by one: a user who fixes a config wants
to see every mistake at once, each with its JSON path, the bad value and what is expected.

``python -m shared.config check [FILE]`` validates a file from the command line.
"""
from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from shared import api_token as tokens
from shared.api_token import ApiToken, TokenError
from shared.devices import DEVICE_TYPES, automation_inputs

SCHEMA_PATH = Path(__file__).with_name("instance.schema.json")
CONNECTOR_TYPE = "sensor-hub"
VERSION = "0.1.0"

# Service name -> default port. The order is the start order and the dependency order.
DEFAULT_PORTS = {
    "serial_handler": 5001,
    "http_poller": 5002,
    "state_aggregator": 5003,
    "ml_inference": 5004,
}
# Which service owns a device, by the key its source names.
SOURCE_OWNERS = {"board": "serial_handler", "endpoint": "http_poller", "automation": "ml_inference"}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


class ConfigError(Exception):
    """The instance cannot start: ``problems`` lists every reason, one sentence each."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            text = head + self.problems[0]
        else:
            text = head + f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


# --------------------------------------------------------------------------- settings types


@dataclass(frozen=True)
class ServiceAddress:
    name: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        # A wildcard bind is reached through loopback by the programs beside it.
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class BoardSpec:
    board_id: str
    port: str
    name: str
    baudrate: int = 115200
    enabled: bool = True
    silence_timeout: float = 30.0
    command_timeout: float = 3.0
    reconnect_max: float = 30.0
    area: str | None = None


@dataclass(frozen=True)
class EndpointSpec:
    endpoint_id: str
    url: str
    name: str
    profile: str = "json"
    poll_interval: float = 30.0
    timeout: float = 5.0
    enabled: bool = True
    area: str | None = None


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    type: str
    name: str
    service: str
    enabled: bool = True
    model: str | None = None
    area: str | None = None
    board: str | None = None
    endpoint: str | None = None
    key: str | None = None
    automation: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def source_id(self) -> str:
        """The board, endpoint or automation the device belongs to."""
        return self.board or self.endpoint or self.automation or ""


@dataclass(frozen=True)
class GroupSpec:
    group_id: str
    name: str
    devices: tuple[str, ...]


@dataclass(frozen=True)
class AutomationSpec:
    automation_id: str
    name: str
    window: str
    sensors: Mapping[str, str]
    mode: str = "auto"
    min_change: float = 10.0
    interval: float = 60.0
    min_position: int = 0
    max_position: int = 100
    manual_hold: float = 7200.0


@dataclass(frozen=True)
class MlSettings:
    model_path: Path
    threads: int = 1
    confidence_threshold: float = 0.6
    bundled_model: Path | None = None
    """The default weights shipped in the image (``SENSOR_HUB_BUNDLED_MODEL``): copied to a
    missing ``model_path`` instead of training them at start (seconds here, minutes on a Pi)."""


@dataclass(frozen=True)
class TlsSettings:
    ca_file: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    base_topic: str = "IoT2mqtt"
    client_prefix: str = "iot2mqtt"
    qos: int = 1
    retain: bool = True
    keepalive: int = 60
    tls: TlsSettings | None = None
    ha_discovery: bool = True
    ha_prefix: str = "homeassistant"

    def client_id(self, instance_id: str, program: str = "") -> str:
        """``<prefix>_<instance>``, suffixed per program so two clients never share an id."""
        base = f"{self.client_prefix}_{instance_id}"
        return f"{base}_{program}" if program else base


@dataclass(frozen=True)
class Settings:
    instance_id: str
    connector_type: str
    friendly_name: str
    enabled: bool
    update_interval: int
    devices: tuple[DeviceSpec, ...]
    groups: tuple[GroupSpec, ...]
    boards: tuple[BoardSpec, ...]
    endpoints: tuple[EndpointSpec, ...]
    automations: tuple[AutomationSpec, ...]
    cache_ttl: float
    services: Mapping[str, ServiceAddress]
    ml: MlSettings
    mqtt: MqttSettings
    log_level: str = "INFO"
    log_format: str = "human"
    mode: str = "production"
    tz: str | None = None
    app_root: Path = Path(".")
    data_dir: Path = Path("data")
    run_dir: Path = Path("data/run")
    """Files of this run only (supervisord's socket, the bridge's health file): a tmpfs in the
    container, where the root file system may be read-only."""
    instances_dir: Path = Path("instances")
    config_file: Path | None = None
    credentials: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    version: str = VERSION
    api_token: ApiToken | None = field(default=None, repr=False)
    """What state-changing REST calls must carry (shared/api_token.py). ``load_settings`` always
    has one; settings built from a dict have one only if it is given (``SENSOR_HUB_API_TOKEN``),
    and without one the services refuse every state-changing call."""

    def service(self, name: str) -> ServiceAddress:
        try:
            return self.services[name]
        except KeyError:
            raise KeyError(f"unknown service {name!r}; known: {', '.join(self.services)}") from None

    def device(self, device_id: str) -> DeviceSpec:
        for device in self.devices:
            if device.device_id == device_id:
                return device
        raise KeyError(device_id)

    def group(self, group_id: str) -> GroupSpec:
        for group in self.groups:
            if group.group_id == group_id:
                return group
        raise KeyError(group_id)

    def devices_of(self, service: str) -> tuple[DeviceSpec, ...]:
        return tuple(d for d in self.devices if d.service == service)

    def devices_on_board(self, board_id: str) -> tuple[DeviceSpec, ...]:
        return tuple(d for d in self.devices if d.board == board_id)

    def board(self, board_id: str) -> BoardSpec:
        for board in self.boards:
            if board.board_id == board_id:
                return board
        raise KeyError(board_id)

    def endpoint(self, endpoint_id: str) -> EndpointSpec:
        for endpoint in self.endpoints:
            if endpoint.endpoint_id == endpoint_id:
                return endpoint
        raise KeyError(endpoint_id)


# --------------------------------------------------------------------------- environment


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


def _in_container(app_root: Path) -> bool:
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


# --------------------------------------------------------------------------- validation

_validator: Draft202012Validator | None = None


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


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
                wanted = automation_inputs()[role][0] if role in automation_inputs() else role
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


# --------------------------------------------------------------------------- building settings


def _name(item: dict[str, Any], key: str) -> str:
    return item.get("name") or item[key]


def build_settings(doc: dict[str, Any], env: Mapping[str, str], *, config_file: Path | None = None,
                   instances_dir: Path | None = None) -> Settings:
    """Settings from a document that is already valid, plus the (merged) environment."""
    problems: list[str] = []
    cfg = doc.get("config", {})
    memberships: dict[str, list[str]] = {}
    for group in doc.get("groups", []):
        for member in group["devices"]:
            memberships.setdefault(member, []).append(group["group_id"])

    devices = []
    for item in doc.get("devices", []):
        source = item["source"]
        kind = next(k for k in SOURCE_OWNERS if k in source)
        devices.append(DeviceSpec(
            device_id=item["device_id"], type=item["type"], name=_name(item, "device_id"),
            service=SOURCE_OWNERS[kind], enabled=item.get("enabled", True), model=item.get("model"),
            area=item.get("area"), board=source.get("board"), endpoint=source.get("endpoint"),
            key=source.get("key") or (item["type"] if "endpoint" in source else None),
            automation=source.get("automation"), groups=tuple(memberships.get(item["device_id"], ())),
        ))
    boards = tuple(BoardSpec(
        board_id=b["board_id"], port=b["port"], name=_name(b, "board_id"), baudrate=b.get("baudrate", 115200),
        enabled=b.get("enabled", True), silence_timeout=float(b.get("silence_timeout", 30)),
        command_timeout=float(b.get("command_timeout", 3)), reconnect_max=float(b.get("reconnect_max", 30)),
        area=b.get("area")) for b in cfg.get("serial_ports", []))
    endpoints = tuple(EndpointSpec(
        endpoint_id=e["endpoint_id"], url=e["url"].rstrip("/"), name=_name(e, "endpoint_id"),
        profile=e.get("profile", "json"), poll_interval=float(e.get("poll_interval", 30)),
        timeout=float(e.get("timeout", 5)), enabled=e.get("enabled", True), area=e.get("area"))
        for e in cfg.get("http_endpoints", []))
    automations = tuple(AutomationSpec(
        automation_id=a["automation_id"], name=_name(a, "automation_id"), window=a["window"],
        sensors=MappingProxyType(dict(a["sensors"])), mode=a.get("mode", "auto"),
        min_change=float(a.get("min_change", 10)), interval=float(a.get("interval", 60)),
        min_position=a.get("min_position", 0), max_position=a.get("max_position", 100),
        manual_hold=float(a.get("manual_hold", 7200)))
        for a in cfg.get("window_automations", []))
    groups = tuple(GroupSpec(group_id=g["group_id"], name=_name(g, "group_id"), devices=tuple(g["devices"]))
                   for g in doc.get("groups", []))

    services_cfg = cfg.get("services", {})
    services = {}
    for name, port in DEFAULT_PORTS.items():
        entry = services_cfg.get(name, {})
        services[name] = ServiceAddress(name=name, host=entry.get("host", "127.0.0.1"), port=entry.get("port", port))

    app_root = default_app_root(env)
    container = _in_container(app_root)
    data_dir = Path(env.get("DATA_DIR") or (app_root / "data" if container else Path("data")))
    run_dir = Path(env.get("SENSOR_HUB_RUN_DIR") or data_dir / "run")
    ml_cfg = cfg.get("ml", {})
    model_path = Path(ml_cfg.get("model_path", "models/window.pt"))
    ml = MlSettings(model_path=model_path if model_path.is_absolute() else data_dir / model_path,
                    threads=ml_cfg.get("threads", 1),
                    confidence_threshold=float(ml_cfg.get("confidence_threshold", 0.6)),
                    bundled_model=Path(env["SENSOR_HUB_BUNDLED_MODEL"]) if env.get("SENSOR_HUB_BUNDLED_MODEL")
                    else None)

    log_level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if log_level not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL: {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        log_level = "INFO"
    log_format = (env.get("LOG_FORMAT") or "human").strip().lower()
    if log_format not in ("human", "json"):
        problems.append(f"LOG_FORMAT: {log_format!r} is not one of human, json")
    mode = (env.get("MODE") or "production").strip().lower()
    if mode not in ("production", "development"):
        problems.append(f"MODE: {mode!r} is not one of production, development")
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

    return Settings(
        instance_id=doc["instance_id"], connector_type=CONNECTOR_TYPE,
        friendly_name=doc.get("friendly_name") or doc["instance_id"], enabled=doc.get("enabled", True),
        update_interval=doc.get("update_interval", 60), devices=tuple(devices), groups=groups, boards=boards,
        endpoints=endpoints, automations=automations, cache_ttl=float(cfg.get("cache_ttl", 30)),
        services=MappingProxyType(services), ml=ml, mqtt=mqtt, log_level=log_level, log_format=log_format,
        mode=mode, tz=env.get("TZ") or None, app_root=app_root, data_dir=data_dir, run_dir=run_dir,
        instances_dir=instances_dir or default_instances_dir(env), config_file=config_file,
        credentials=MappingProxyType({k[len("CREDS_"):]: v for k, v in env.items() if k.startswith("CREDS_")}),
        api_token=token,
    )


def default_instances_dir(env: Mapping[str, str]) -> Path:
    if env.get("INSTANCES_DIR"):
        return Path(env["INSTANCES_DIR"])
    app_root = default_app_root(env)
    return app_root / "instances" if _in_container(app_root) else Path("instances")


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


# --------------------------------------------------------------------------- command line


def summary(settings: Settings) -> str:
    by_type: dict[str, int] = {}
    for device in settings.devices:
        by_type[device.type] = by_type.get(device.type, 0) + 1
    types = ", ".join(f"{n} {t}" for t, n in sorted(by_type.items()))

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return (f"instance {settings.instance_id} ({settings.connector_type}): {count(len(settings.devices), 'device')}"
            f" ({types}), {count(len(settings.boards), 'serial board')}, "
            f"{count(len(settings.endpoints), 'HTTP endpoint')}, {count(len(settings.groups), 'group')}, "
            f"{count(len(settings.automations), 'window automation')}")


def check_file(path: Path, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(ok, report) for ``python -m shared.config check``."""
    env = merged_environment(environ)
    try:
        doc = read_document(path)
        problems = validate_document(doc, instance_name=(env.get("INSTANCE_NAME") or "").strip() or None,
                                     file_stem=path.stem)
        if problems:
            raise ConfigError(problems, source=str(path))
        settings = build_settings(doc, env, config_file=path)
    except ConfigError as exc:
        return False, str(exc)
    return True, f"{path}: OK, {summary(settings)}"


def main(argv: list[str] | None = None) -> int:
    from shared.reference import config_reference  # only the CLI needs it

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "reference":
        print(config_reference(), end="")
        return 0
    if not args or args[0] != "check" or len(args) > 2:
        print("usage: python -m shared.config check [FILE]\n"
              "       python -m shared.config reference", file=sys.stderr)
        return 2
    if len(args) == 2:
        path = Path(args[1])
    else:
        env = merged_environment()
        instance = (env.get("INSTANCE_NAME") or "").strip()
        if not instance:
            print("INSTANCE_NAME is not set; name the file: python -m shared.config check FILE", file=sys.stderr)
            return 1
        path = default_instances_dir(env) / f"{instance}.json"
    ok, report = check_file(path)
    print(report, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
