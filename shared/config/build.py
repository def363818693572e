"""Settings from an instance document that is already valid, plus the (merged) environment."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from shared.config.env import bundled_model, environment_fields
from shared.config.instance_schema import with_defaults
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
    """Settings from a document that is already valid, plus the (merged) environment.

    Every default of the document comes from the schema (``with_defaults``); none is written here.
    """
    environment = environment_fields(env)
    doc = with_defaults(doc)
    cfg = doc["config"]
    data_dir = environment["data_dir"]
    model_path = Path(cfg["ml"]["model_path"])
    ml = MlSettings(model_path=model_path if model_path.is_absolute() else data_dir / model_path,
                    threads=cfg["ml"]["threads"], confidence_threshold=float(cfg["ml"]["confidence_threshold"]),
                    train_after=cfg["ml"]["train_after"],
                    bundled_model=bundled_model(env))
    services = {name: ServiceAddress(name=name, **cfg["services"][name]) for name in DEFAULT_PORTS}
    return Settings(**{
        **environment,
        "instance_id": doc["instance_id"], "connector_type": CONNECTOR_TYPE,
        "friendly_name": doc.get("friendly_name") or doc["instance_id"], "enabled": doc["enabled"],
        "update_interval": doc["update_interval"], "devices": _devices(doc), "groups": _groups(doc),
        "boards": tuple(_board(b) for b in cfg["serial_ports"]),
        "endpoints": tuple(_endpoint(e) for e in cfg["http_endpoints"]),
        "automations": tuple(_automation(a) for a in cfg["window_automations"]),
        "cache_ttl": float(cfg["cache_ttl"]), "services": MappingProxyType(services), "ml": ml,
        "instances_dir": instances_dir or environment["instances_dir"], "config_file": config_file,
    })


def _devices(doc: dict[str, Any]) -> tuple[DeviceSpec, ...]:
    memberships: dict[str, list[str]] = {}
    for group in doc["groups"]:
        for member in group["devices"]:
            memberships.setdefault(member, []).append(group["group_id"])
    devices = []
    for item in doc["devices"]:
        source = item["source"]
        kind = next(k for k in SOURCE_OWNERS if k in source)
        devices.append(DeviceSpec(
            device_id=item["device_id"], type=item["type"], name=_name(item, "device_id"),
            service=SOURCE_OWNERS[kind], enabled=item["enabled"], model=item.get("model"),
            area=item.get("area"), board=source.get("board"), endpoint=source.get("endpoint"),
            key=source.get("key") or (item["type"] if "endpoint" in source else None),
            automation=source.get("automation"), groups=tuple(memberships.get(item["device_id"], ())),
        ))
    return tuple(devices)


def _groups(doc: dict[str, Any]) -> tuple[GroupSpec, ...]:
    return tuple(GroupSpec(group_id=g["group_id"], name=_name(g, "group_id"), devices=tuple(g["devices"]))
                 for g in doc["groups"])


def _board(b: dict[str, Any]) -> BoardSpec:
    return BoardSpec(
        board_id=b["board_id"], port=b["port"], name=_name(b, "board_id"), baudrate=b["baudrate"],
        enabled=b["enabled"], silence_timeout=float(b["silence_timeout"]), command_timeout=float(b["command_timeout"]),
        reconnect_max=float(b["reconnect_max"]), area=b.get("area"))


def _endpoint(e: dict[str, Any]) -> EndpointSpec:
    return EndpointSpec(
        endpoint_id=e["endpoint_id"], url=e["url"].rstrip("/"), name=_name(e, "endpoint_id"), profile=e["profile"],
        poll_interval=float(e["poll_interval"]), timeout=float(e["timeout"]), enabled=e["enabled"],
        area=e.get("area"))


def _automation(a: dict[str, Any]) -> AutomationSpec:
    return AutomationSpec(
        automation_id=a["automation_id"], name=_name(a, "automation_id"), window=a["window"],
        sensors=MappingProxyType(dict(a["sensors"])), mode=a["mode"], min_change=float(a["min_change"]),
        interval=float(a["interval"]), min_position=a["min_position"], max_position=a["max_position"],
        manual_hold=float(a["manual_hold"]))
