"""Instance config: the example validates; broken variants name the field and what is expected."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.config import ConfigError, load_settings, merged_environment, settings_from_dict, validate_document
from testkit.example import EXAMPLE_INSTANCE, ROOT, example_document


def test_example_instance_is_valid_and_complete():
    settings = settings_from_dict(example_document(), {"INSTANCE_NAME": "sensor_hub_01"})
    assert settings.instance_id == "sensor_hub_01"
    types = {d.type for d in settings.devices}
    assert {"temperature", "humidity", "motion", "sound_level", "battery", "window", "led"} <= types
    assert [b.board_id for b in settings.boards] == ["living_room_esp32"]
    assert len(settings.endpoints) == 2 and len(settings.automations) == 1 and len(settings.groups) == 1
    assert settings.device("living_window").service == "serial_handler"
    assert settings.device("balcony_temperature").service == "http_poller"
    assert settings.device("living_led").groups == ("living_room",)
    assert settings.service("state_aggregator").url == "http://127.0.0.1:5003"


def test_settings_are_immutable():
    settings = settings_from_dict(example_document(), {})
    with pytest.raises(AttributeError):
        settings.instance_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.services["x"] = None  # type: ignore[index]


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


def _del(doc: dict[str, Any], path: list[Any]) -> None:
    for part in path[:-1]:
        doc = doc[part]
    del doc[path[-1]]


Mutation = Callable[[dict[str, Any]], None]

BROKEN: list[tuple[str, Mutation, str]] = [
    ("baudrate", lambda d: _set(d, ["config", "serial_ports", 0, "baudrate"], 11520),
     "config.serial_ports[0].baudrate: 11520 is not one of 9600, 19200, 38400, 57600, 115200"),
    ("missing port", lambda d: _del(d, ["config", "serial_ports", 0, "port"]),
     "config.serial_ports[0].port: missing; it is required"),
    ("device type", lambda d: _set(d, ["devices", 0, "type"], "thermometer"),
     "devices[0].type: \"thermometer\" is not one of \"temperature\""),
    ("id with slash", lambda d: _set(d, ["devices", 1, "device_id"], "living/humidity"),
     "devices[1].device_id: \"living/humidity\" is not valid (expected letters, digits, '_' or '-' only"),
    ("id with space", lambda d: _set(d, ["groups", 0, "group_id"], "living room"),
     "groups[0].group_id: \"living room\" is not valid"),
    ("id with wildcard", lambda d: _set(d, ["devices", 2, "device_id"], "motion+"),
     "devices[2].device_id: \"motion+\" is not valid"),
    ("duplicate device", lambda d: _set(d, ["devices", 1, "device_id"], "living_temperature"),
     "devices[1].device_id: 'living_temperature' is a duplicate (already used by devices[0])"),
    ("unknown group member", lambda d: d["groups"][0]["devices"].append("garage_door"),
     "groups[0].devices[7]: 'garage_door' is not a configured device"),
    ("unknown board", lambda d: _set(d, ["devices", 0, "source"], {"board": "kitchen_esp32"}),
     "devices[0].source.board: 'kitchen_esp32' is not in config.serial_ports (known: living_room_esp32)"),
    ("automation sensor missing", lambda d: _set(d, ["config", "window_automations", 0, "sensors", "humidity"],
                                                   "bathroom_humidity"),
     "config.window_automations[0].sensors.humidity: 'bathroom_humidity' is not a configured device"),
    ("automation wrong window", lambda d: _set(d, ["config", "window_automations", 0, "window"], "living_led"),
     "config.window_automations[0].window: 'living_led' is a led device, expected a window device"),
    ("typo field", lambda d: d["devices"][0].update(sorce=d["devices"][0].pop("source")),
     "devices[0].sorce: unknown field (did you mean 'source'?)"),
    ("wrong type", lambda d: _set(d, ["update_interval"], "60"),
     "update_interval: \"60\" is not an integer"),
    ("out of range", lambda d: _set(d, ["config", "cache_ttl"], -1),
     "config.cache_ttl: -1 is out of range (expected at least 0)"),
    ("two sources", lambda d: _set(d, ["devices", 0, "source"], {"board": "living_room_esp32", "endpoint": "x"}),
     "devices[0].source: must name exactly one of board, endpoint or automation (found board and endpoint)"),
    ("service port clash", lambda d: _set(d, ["config", "services", "http_poller", "port"], 5001),
     "config.services.http_poller.port: 5001 is already used by serial_handler"),
    ("bad url", lambda d: _set(d, ["config", "http_endpoints", 0, "url"], "ftp://127.0.0.1"),
     "config.http_endpoints[0].url: \"ftp://127.0.0.1\" is not valid (expected an http:// or https:// URL)"),
    ("connector type", lambda d: _set(d, ["connector_type"], "zigbee"),
     "connector_type: \"zigbee\" must be \"sensor-hub\""),
]


@pytest.mark.parametrize("name,mutate,expected", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_variant_names_field_and_expectation(name: str, mutate: Mutation, expected: str):
    doc = example_document()
    mutate(doc)
    problems = validate_document(doc, instance_name="sensor_hub_01")
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once():
    doc = example_document()
    doc["config"]["serial_ports"][0]["baudrate"] = 11520
    doc["devices"][0]["type"] = "thermometer"
    doc["groups"][0]["devices"].append("garage_door")
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(doc, {"INSTANCE_NAME": "sensor_hub_01"})
    assert len(caught.value.problems) == 3
    text = str(caught.value)
    assert "3 problems" in text and "baudrate" in text and "thermometer" in text and "garage_door" in text


def test_instance_id_must_match_instance_name():
    problems = validate_document(example_document(), instance_name="sensor_hub_02")
    assert problems == ["instance_id: 'sensor_hub_01' does not match INSTANCE_NAME 'sensor_hub_02'"]


def _write_instance(tmp_path: Path, doc: dict[str, Any], name: str = "sensor_hub_01") -> Path:
    folder = tmp_path / "instances"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def test_load_settings_merges_env_file_secrets_and_real_environment(tmp_path: Path):
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").write_text("MQTT_HOST=broker.local\nMQTT_PORT=1999\nLOG_LEVEL=debug\n# comment\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "sensor_hub_01_mqtt").write_text("username=hub\npassword=s3cret-value\n")
    (secrets / "sensor_hub_01_creds").write_text("balcony_weather_password=abc\n")
    _write_instance(app, example_document())
    env = {"INSTANCE_NAME": "sensor_hub_01", "IOT2MQTT_PATH": str(app), "SECRETS_DIR": str(secrets),
           "MQTT_PORT": "2883"}
    settings = load_settings(env)
    assert settings.mqtt.host == "broker.local"  # from .env
    assert settings.mqtt.port == 2883  # real environment wins over .env
    assert settings.mqtt.username == "hub" and settings.mqtt.password == "s3cret-value"
    assert settings.credentials["balcony_weather_password"] == "abc"
    assert settings.log_level == "DEBUG"
    assert settings.instances_dir == app / "instances"
    assert settings.data_dir == app / "data" and settings.data_dir.is_dir()
    assert "s3cret-value" not in repr(settings)


def test_load_settings_without_instance_name_says_so(tmp_path: Path):
    with pytest.raises(ConfigError, match="INSTANCE_NAME is not set"):
        load_settings({"IOT2MQTT_PATH": str(tmp_path)})


def test_bad_environment_values_are_named(tmp_path: Path):
    path = _write_instance(tmp_path, example_document())
    env = {"INSTANCE_NAME": "sensor_hub_01", "INSTANCES_DIR": str(path.parent), "MQTT_QOS": "3",
           "MQTT_RETAIN": "maybe", "DATA_DIR": str(tmp_path / "data")}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert "MQTT_QOS: 3 is out of range (expected 0..2)" in caught.value.problems
    assert "MQTT_RETAIN: 'maybe' is not a boolean (expected true or false)" in caught.value.problems


def test_env_file_never_overrides_real_environment(tmp_path: Path):
    (tmp_path / ".env").write_text("MQTT_HOST=from-file\nTZ=Europe/Paris\n")
    env = merged_environment({"IOT2MQTT_PATH": str(tmp_path), "MQTT_HOST": "127.0.0.1"})
    assert env["MQTT_HOST"] == "127.0.0.1" and env["TZ"] == "Europe/Paris"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.config", *args], cwd=ROOT, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=60)


def test_cli_check_passes_on_the_example():
    result = _cli("check", str(EXAMPLE_INSTANCE))
    assert result.returncode == 0, result.stderr
    assert "OK, instance sensor_hub_01 (sensor-hub): 9 devices" in result.stdout


def test_cli_check_lists_problems_and_fails(tmp_path: Path):
    doc = example_document()
    doc["config"]["serial_ports"][0]["baudrate"] = 11520
    doc["devices"][3]["device_id"] = "bad id"
    path = _write_instance(tmp_path, doc)
    result = _cli("check", str(path))
    assert result.returncode == 1
    assert "config.serial_ports[0].baudrate: 11520 is not one of" in result.stderr
    assert "devices[3].device_id: \"bad id\" is not valid" in result.stderr


def test_cli_check_reports_json_syntax_errors(tmp_path: Path):
    path = tmp_path / "sensor_hub_01.json"
    path.write_text('{"instance_id": "sensor_hub_01",\n "devices": [}\n')
    result = _cli("check", str(path))
    assert result.returncode == 1
    assert "line 2 column" in result.stderr and "not valid JSON" in result.stderr


def test_readme_config_reference_matches_the_schema():
    from shared.reference import END, START, config_reference, fields

    readme = (ROOT / "README.md").read_text()
    assert START in readme and END in readme, "README.md lacks the generated config reference"
    section = readme[readme.index(START): readme.index(END) + len(END)] + "\n\n"
    assert section.strip() == config_reference().strip(), "README config reference is stale: run `make docs`"
    undocumented = [path for path, _, _, description, _ in fields() if not description]
    assert not undocumented, f"schema fields without a description: {undocumented}"
