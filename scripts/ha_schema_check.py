"""Check the bridge's Home Assistant discovery payloads with Home Assistant's own schemas.

Optional and outside `make test` (`make check-ha-schemas`): Home Assistant does not install into
the project's venv (it needs Python ≥ 3.13 and pins its own versions of half our dependencies), so
this runs in two steps, each in its own interpreter:

    .venv/bin/python -m scripts.ha_schema_check dump > /tmp/discovery.json       # the project's venv
    .ha-venv/bin/python scripts/ha_schema_check.py check /tmp/discovery.json      # a venv with homeassistant

`check` runs every payload through the ``DISCOVERY_SCHEMA`` of its MQTT platform, exactly as Home
Assistant's discovery does, and reports what the schema refuses, and the keys it silently drops
(Home Assistant's discovery schemas remove keys they do not know: a key this HA version does not
know yet, like ``default_entity_id`` before 2025.10, is dropped, not refused). The data-driven
checker in tests/bridge/ha_discovery_check.py, which `make test` runs, stays the everyday guard.
Exit status 1 when any payload is refused.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any


def dump() -> int:
    from bridge.discovery import DiscoveryBuilder
    from shared.config import settings_from_dict
    from shared.topics import Topics

    root = Path(__file__).resolve().parent.parent
    document = json.loads((root / "instances" / "sensor_hub_01.json").read_text())
    # The automation's switch too, so its payload is checked with the rest.
    document["devices"].append({"device_id": "living_window_auto_switch", "name": "Living room fresh air",
                                "type": "switch", "source": {"automation": "living_window_auto"}})
    settings = settings_from_dict(document, {"INSTANCE_NAME": document["instance_id"], "DATA_DIR": "/nonexistent"})
    m = settings.mqtt
    # Its model select with options, as once ml_inference has said which versions it keeps.
    states = {"living_window_auto_switch": {"models": ["window-v1:45b98a2cdb34", "window-v1:0123456789ab"]}}
    configs = DiscoveryBuilder(settings, Topics(m.base_topic, settings.instance_id, m.ha_prefix)).configs(states)
    json.dump(configs, sys.stdout, indent=1, ensure_ascii=False)
    return 0


def _schema(component: str) -> Any:
    module = importlib.import_module(f"homeassistant.components.mqtt.{component}")
    return module.DISCOVERY_SCHEMA


def _dropped(payload: dict[str, Any], validated: dict[str, Any]) -> list[str]:
    return sorted(k for k in payload if k not in validated)


def check(path: str) -> int:
    from homeassistant.const import __version__ as ha_version

    configs: dict[str, dict[str, Any]] = json.loads(open(path, encoding="utf-8").read())
    refused = 0
    print(f"Home Assistant {ha_version}: {len(configs)} discovery payloads")
    for topic, payload in configs.items():
        component = topic.split("/")[1]
        try:
            validated = _schema(component)(dict(payload))
        except Exception as exc:  # noqa: BLE001 - vol.Invalid and friends: report, go on
            refused += 1
            print(f"REFUSED {topic}: {exc}")
            continue
        dropped = _dropped(payload, validated)
        print(f"ok      {topic}" + (f" (unknown to this version, dropped: {', '.join(dropped)})" if dropped else ""))
    print(f"{refused} refused")
    return 1 if refused else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["dump"]:
        raise SystemExit(dump())
    if sys.argv[1:2] == ["check"] and len(sys.argv) == 3:
        raise SystemExit(check(sys.argv[2]))
    raise SystemExit("usage: ha_schema_check.py dump | check FILE.json")
