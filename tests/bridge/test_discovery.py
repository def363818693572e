"""Home Assistant discovery: payloads checked against the documented keys, stable ids, one
HA device per board/endpoint, re-announce on HA's birth message, HA commands routed."""
from __future__ import annotations

import copy
import json

import pytest

from bridge.discovery import DiscoveryBuilder
from bridge.ha_payloads import HaCommandError, ha_light_state, translate_ha_command
from shared.topics import Topics
from tests.bridge.conftest import BASE
from tests.bridge.ha_discovery_check import problems
from tests.bridge.mqtt_watch import Watcher
from tests.helpers import wait_for

STATUS = f"{BASE}/status"


def build(settings) -> dict[str, dict]:
    m = settings.mqtt
    return DiscoveryBuilder(settings, Topics(m.base_topic, settings.instance_id, m.ha_prefix)).configs()


def test_every_payload_validates_against_the_documented_keys(bridge_settings):
    configs = build(bridge_settings())
    assert configs
    for topic, payload in configs.items():
        assert problems(topic, payload) == [], topic
    components = {topic.split("/")[1] for topic in configs}
    assert components == {"sensor", "binary_sensor", "cover", "light"}
    cover = next(p for t, p in configs.items() if "/cover/" in t)
    assert cover["device_class"] == "window" and cover["position_open"] == 100 and cover["position_closed"] == 0
    assert cover["payload_stop"] == "STOP"
    battery = [p for t, p in configs.items() if "living_battery" in t]
    assert {p["device_class"] for p in battery} == {"battery", "voltage"}
    for payload in configs.values():
        assert payload["availability_mode"] == "all"
        assert [a["topic"] for a in payload["availability"]][0] == STATUS
        assert payload["origin"]["name"] == "sensor-hub"


def test_sensor_entities_come_from_the_registry_and_sound_is_dbfs(bridge_settings):
    from shared.devices import device_type

    configs = build(bridge_settings())
    sensors = [p for t, p in configs.items() if "/sensor/" in t]
    assert sensors
    for payload in sensors:
        assert payload["state_class"] == "measurement" and payload["unit_of_measurement"]
    sound = [p for p in sensors if p["state_topic"].endswith("/state/sound_level")]
    assert sound, "the test instance has a sound level device"
    for payload in sound:  # dBFS is no sound pressure: announced without a device class
        assert "device_class" not in payload and payload["unit_of_measurement"] == "dBFS"
    temperature = next(p for p in sensors if p["state_topic"].endswith("/state/temperature"))
    assert temperature["device_class"] == device_type("temperature").main.ha.device_class


def test_a_co2_device_is_announced_as_carbon_dioxide_in_ppm(bridge_settings):
    from tests.conftest import example_document

    devices = example_document()["devices"] + [
        {"device_id": "living_co2", "name": "Living room CO2", "type": "co2", "source": {"board": "living_room_esp32"}}]
    configs = build(bridge_settings(overrides={"devices": devices}))
    [(topic, payload)] = [(t, p) for t, p in configs.items() if "living_co2" in t]
    assert problems(topic, payload) == [] and topic.split("/")[1] == "sensor"
    assert (payload["device_class"], payload["unit_of_measurement"], payload["state_class"]) == \
        ("carbon_dioxide", "ppm", "measurement")
    assert payload["state_topic"].endswith("/devices/living_co2/state/co2")


def test_unique_ids_are_stable_and_one_device_per_board_or_endpoint(bridge_settings):
    first, second = build(bridge_settings()), build(bridge_settings())
    assert [p["unique_id"] for p in first.values()] == [p["unique_id"] for p in second.values()]
    ids = [p["unique_id"] for p in first.values()]
    assert len(ids) == len(set(ids))
    devices = {tuple(p["device"]["identifiers"]) for p in first.values()}
    assert len(devices) == 3  # living_room_esp32, balcony_weather, kitchen_climate
    assert {p["device"]["name"] for p in first.values()} == {"Living room ESP32", "Balcony weather station",
                                                             "Kitchen climate sensor"}


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p.pop("unique_id"), "unique_id"),
    (lambda p: p.update(unit_of_measurement="K"), "does not fit"),
    (lambda p: p.update(availability_topic="x/y"), "availability_topic"),
    (lambda p: p["device"].pop("identifiers"), "identifiers or connections"),
    (lambda p: p.update(state_topic="a/+/b"), "not a valid topic"),
    (lambda p: p.update(avty_mode="all"), "unknown key"),
    (lambda p: p["origin"].pop("name"), "origin.name"),
])
def test_the_checker_catches_mistakes(bridge_settings, mutate, expected):
    topic, payload = next((t, p) for t, p in build(bridge_settings()).items() if "humidity" in t)
    broken = copy.deepcopy(payload)
    mutate(broken)
    assert any(expected in problem for problem in problems(topic, broken))


def test_ha_command_translation():
    assert translate_ha_command("window", "set", b"OPEN") == {"position": 100}
    assert translate_ha_command("window", "set", b"STOP") == {"stop": True}
    assert translate_ha_command("window", "position", b"35") == {"position": 35}
    assert translate_ha_command("led", "set", b'{"state":"ON","brightness":10,"color":{"r":255,"g":0,"b":16}}') == \
        {"state": "on", "brightness": 10, "color": "#ff0010"}
    assert translate_ha_command("switch", "set", b"OFF") == {"state": "off"}
    for device_type, which, payload in [("window", "set", b"UP"), ("window", "position", b"150"),
                                        ("led", "set", b"ON"), ("temperature", "set", b"1")]:
        with pytest.raises(HaCommandError):
            translate_ha_command(device_type, which, payload)
    assert ha_light_state({"state": "on", "color": "#102030", "brightness": 9}) == {
        "state": "ON", "brightness": 9, "color_mode": "rgb", "color": {"r": 16, "g": 32, "b": 48}}


def config_topics(watcher) -> list[str]:
    return [t for t, p, _ in watcher.messages if t.startswith("homeassistant/") and t.endswith("/config") and p]


def test_announced_on_connect_and_again_on_ha_birth(aggregator, watcher, start_bridge):
    bridge = start_bridge()
    wait_for(lambda: len(config_topics(watcher)) >= 10, timeout=20)
    for topic in set(config_topics(watcher)):
        assert problems(topic, json.loads(watcher.last(topic))) == []
    first = bridge.discovery.announcements
    watcher.publish("homeassistant/status", "online")
    wait_for(lambda: bridge.discovery.announcements > first, timeout=10)
    watcher.wait(STATUS, lambda p: p == b"online")


def test_cover_command_from_the_ha_topic_moves_the_window(aggregator, watcher, start_bridge):
    start_bridge()
    watcher.wait(STATUS, lambda p: p == b"online")
    watcher.publish(f"{BASE}/ha/living_window/set", "OPEN")
    watcher.wait(f"{BASE}/devices/living_window/state/position", lambda p: p == b"100")
    watcher.publish(f"{BASE}/ha/living_window/position", "40")
    watcher.wait(f"{BASE}/devices/living_window/state/position", lambda p: p == b"40")
    assert [c["values"] for c in aggregator.commands] == [{"position": 100}, {"position": 40}]
    watcher.publish(f"{BASE}/ha/living_window/set", "WIGGLE")
    doc = watcher.wait_json(f"{BASE}/devices/living_window/error")
    assert doc["error_code"] == "INVALID_PAYLOAD"


def test_led_state_in_ha_shape(aggregator, watcher, start_bridge):
    start_bridge()
    watcher.wait(STATUS, lambda p: p == b"online")
    aggregator.set_state("living_led", state="on", color="#00ff00", brightness=200)
    doc = watcher.wait_json(f"{BASE}/ha/living_led/state", lambda d: d["state"] == "ON")
    assert doc == {"state": "ON", "brightness": 200, "color_mode": "rgb", "color": {"r": 0, "g": 255, "b": 0}}


def test_entities_of_removed_devices_are_deleted(aggregator, watcher, start_bridge, tmp_path):
    stale = "homeassistant/sensor/sensor_hub_01_old_sensor/config"
    memory = tmp_path / "data" / "ha_discovery.json"
    memory.parent.mkdir(parents=True, exist_ok=True)
    memory.write_text(json.dumps([stale]))
    watcher.publish(stale, {"unique_id": "sensor_hub_01_old_sensor"}, retain=True)
    start_bridge()
    watcher.wait(stale, lambda p: p == b"")
    assert stale not in json.loads(memory.read_text())


def test_discovery_can_be_switched_off(aggregator, watcher, start_bridge):
    bridge = start_bridge(env={"HA_DISCOVERY": "false"})
    try:
        watcher.wait(STATUS, lambda p: p == b"online", timeout=30)
    except AssertionError:  # seen once on a loaded machine: say which side did not get there
        pytest.fail(f"no online status: bridge {bridge.stats()}, mqtt_connected={bridge.ctx.mqtt_connected}, "
                    f"bus idle={bridge.ctx.bus.idle()}, watcher connected={watcher.client.is_connected()}, "
                    f"seen on the status topic {watcher.on(STATUS)}")
    wait_for(lambda: bridge.ctx.bus.idle(), timeout=10)
    assert bridge.discovery is None
    assert not [t for t, _, _ in watcher.messages if t.startswith("homeassistant/")]


def test_custom_prefix(aggregator, broker, start_bridge):
    extra = Watcher(broker.port, ["ha_test/#", "homeassistant/#"]).start()
    try:
        start_bridge(env={"HA_DISCOVERY_PREFIX": "ha_test"})
        wait_for(lambda: any(t.startswith("ha_test/") and t.endswith("/config") for t, _, _ in extra.messages),
                 timeout=20)
        assert not [t for t, _, _ in extra.messages if t.startswith("homeassistant/")]
    finally:
        extra.stop()
