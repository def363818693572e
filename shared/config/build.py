"""Settings from an instance document that is already valid, plus the (merged) environment."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from shared import api_token as tokens
from shared.api_token import ApiToken, TokenError
from shared.config.env import LOG_LEVELS, default_app_root, default_instances_dir, in_container, mqtt_from_env
from shared.config.errors import ConfigError
from shared.config.model import (
    CONNECTOR_TYPE,
    DEFAULT_PORTS,
    SOURCE_OWNERS,
    AutomationSpec,
    BoardSpec,
    DeviceSpec,
    EndpointSpec,
    GroupSpec,
    MlSettings,
    ServiceAddress,
    Settings,
)


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
    container = in_container(app_root)
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
