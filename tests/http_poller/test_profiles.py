"""Each profile against a real loopback server speaking its dialect: the network simulator, and
for ``sensor_hub`` the firmware's own HTTP mode on the board emulator."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from firmware.emulator.network import NetworkSimulator
from services.http_poller.fetch import KEY_MISSING, EndpointClient
from services.http_poller.profiles import PROFILES, Profile
from shared.commands import REJECTED, UNSUPPORTED, CommandError
from shared.config import DeviceSpec
from testkit.emulator_process import EmulatorProcess

from .conftest import sim_post


def device(device_type: str, key: str | None = None, device_id: str | None = None) -> DeviceSpec:
    return DeviceSpec(device_id=device_id or device_type, type=device_type, name=device_type,
                      service="http_poller", endpoint="e", key=key or device_type)


def profile(name: str, url: str, timeout: float = 5.0) -> Profile:
    return PROFILES[name](EndpointClient(requests.Session(), url, timeout))


def read_one(p: Profile, spec: DeviceSpec):
    return p.read([spec])[spec.device_id]


# What each profile reads for each type at the simulator's resting values (drift off).
EXPECTED = {
    "temperature": {"temperature": 21.0}, "humidity": {"humidity": 45.0}, "pressure": {"pressure": 1013.0},
    "illuminance": {"illuminance": 180.0}, "motion": {"motion": False}, "switch": {"state": "off"},
    "window": {"position": 0, "target": 0, "moving": False}, "battery": {"battery": 86.0, "voltage": 3.95},
}
SUPPORTED = {
    "esphome": ["temperature", "humidity", "pressure", "illuminance", "motion", "switch", "window"],
    "shelly": ["temperature", "humidity", "illuminance", "motion", "switch", "window", "battery"],
    "tasmota": ["temperature", "humidity", "pressure", "illuminance", "switch"],
    "json": ["temperature", "humidity", "pressure", "illuminance", "motion", "switch", "window"],
    "sensor_hub": ["temperature", "humidity", "pressure", "motion", "window", "battery"],
}


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_profile_reads_each_type_into_the_shared_state_properties(name: str, simulator):
    sim = simulator(name)
    p = profile(name, sim.url)
    specs = [device(t) for t in SUPPORTED[name]]
    readings = p.read(specs)
    for spec in specs:
        reading = readings[spec.device_id]
        assert reading.problem is None, (spec.type, reading.problem)
        expected = EXPECTED[spec.type]
        if spec.type == "window" and name == "esphome":
            expected = {"position": 0, "target": 0, "moving": False}
        if spec.type == "battery" and name in ("esphome", "json"):
            expected = {"battery": 86.0}
        assert reading.state == expected, (name, spec.type)


def test_readings_follow_the_device_and_keys_pick_other_entities(simulator):
    sim = simulator("esphome")
    sim_post(sim, "set", {"temperature": 25.5, "motion": True})
    p = profile("esphome", sim.url)
    outdoor = device("temperature", key="outdoor_temperature", device_id="outdoor")
    door = device("motion", key="binary_sensor/hall_presence", device_id="door")
    readings = p.read([outdoor, door, device("humidity", key="no_such_thing", device_id="ghost")])
    assert readings["outdoor"].state == {"temperature": 25.5}
    assert readings["door"].state == {"motion": True}
    assert readings["ghost"].problem == (KEY_MISSING, "no sensor 'no_such_thing' on the device (HTTP 404)")


def test_json_keys_are_dotted_paths_with_list_indexes(simulator):
    sim = simulator("json")
    sim_post(sim, "set", {"temperature": 19.25, "humidity": 61})
    p = profile("json", sim.url)
    specs = [device("temperature", "outdoor.temperature", "a"), device("humidity", "sensors.1.value", "b"),
             device("temperature", "outdoor.nope", "c"), device("battery", "battery", "d"),
             device("temperature", "motion", "e")]
    readings = p.read(specs)
    assert readings["a"].state == {"temperature": 19.25}
    assert readings["b"].state == {"humidity": 61}
    assert readings["c"].problem == (KEY_MISSING,
                                     "key 'outdoor.nope' is not in the response ('nope' not found in outdoor)")
    assert readings["d"].state == {"battery": 86.0}
    code, reason = readings["e"].problem
    assert code == "BAD_PAYLOAD" and "expected a number, got False" in reason


def test_shelly_components_and_paths(simulator):
    sim = simulator("shelly")
    p = profile("shelly", sim.url)
    specs = [device("temperature", "switch:0.temperature.tC", "relay_temp"), device("switch", "switch:0", "relay"),
             device("temperature", "temperature:3", "missing")]
    readings = p.read(specs)
    assert readings["relay_temp"].state == {"temperature": 38.5}
    assert readings["relay"].state == {"state": "off"}
    assert readings["missing"].problem == (KEY_MISSING, "component 'temperature:3' is not in Shelly.GetStatus")


def test_tasmota_paths_into_statussns_and_relays(simulator):
    sim = simulator("tasmota")
    sim_post(sim, "set", {"temperature": 22.5, "pressure": 1001.5})
    p = profile("tasmota", sim.url)
    readings = p.read([device("temperature", "BMP280.Temperature", "bmp"),
                       device("pressure", "StatusSNS.BMP280.Pressure", "p"),
                       device("temperature", "DS18B20.Temperature", "ds"), device("switch", "POWER2", "relay2")])
    assert readings["bmp"].state == {"temperature": 22.9}
    assert readings["p"].state == {"pressure": 1001.5}
    assert readings["ds"].problem[0] == KEY_MISSING
    assert readings["relay2"].problem[0] == KEY_MISSING
    # The space of "Status 10" travels as %20, as Tasmota documents it.
    assert sim.device().by_path.get("/cm", 0) >= 2


@pytest.mark.parametrize("name", ["esphome", "shelly", "tasmota"])
def test_switch_commands_reach_the_device_and_report_its_new_state(name: str, simulator):
    sim = simulator(name)
    p = profile(name, sim.url)
    relay = device("switch", "switch:0" if name == "shelly" else ("POWER" if name == "tasmota" else "relay"))
    assert p.command(relay, {"state": "on"}, 2.0) == {"state": "on"}
    assert read_one(p, relay).state == {"state": "on"}
    assert p.command(relay, {"state": "off"}, 2.0) == {"state": "off"}
    assert read_one(p, relay).state == {"state": "off"}


@pytest.mark.parametrize("name", ["esphome", "shelly", "sensor_hub"])
def test_window_commands_move_the_cover_to_the_target(name: str, simulator):
    sim = simulator(name, cover_speed=20.0)
    p = profile(name, sim.url)
    window = device("window", "cover:0" if name == "shelly" else "window")
    result = p.command(window, {"position": 40}, 2.0)
    assert result["target"] == 40 and result["moving"] is True
    sim.device().set({"position": 40})  # the motor arrives
    assert read_one(p, window).state == {"position": 40, "target": 40, "moving": False}
    p.command(window, {"position": 80}, 2.0)
    stopped = p.command(window, {"stop": True}, 2.0)
    assert stopped["moving"] is False and 40 <= stopped["position"] < 80


def test_light_commands_on_esphome_and_shelly(simulator):
    esp = profile("esphome", simulator("esphome").url)
    led = device("led", "status")
    assert esp.command(led, {"state": "on", "color": "#ff8800", "brightness": 128}, 2.0) == \
        {"state": "on", "color": "#ff8800", "brightness": 128}
    with pytest.raises(CommandError) as refused:
        esp.command(led, {"blink": 500}, 2.0)
    assert refused.value.code == UNSUPPORTED
    shelly = profile("shelly", simulator("shelly").url)
    assert shelly.command(device("led", "light:0"), {"state": "on", "brightness": 255}, 2.0) == \
        {"state": "on", "brightness": 255}


def test_tasmota_refusals_are_rejected(simulator):
    sim = simulator("tasmota")
    p = profile("tasmota", sim.url)
    with pytest.raises(CommandError) as refused:
        p.command(device("switch", "POWER7"), {"state": "on"}, 2.0)
    assert refused.value.code == REJECTED and "Power7 On" in refused.value.message


def test_profiles_without_a_command_dialect_say_so(simulator):
    sim = simulator("json")
    with pytest.raises(CommandError) as refused:
        profile("json", sim.url).command(device("switch"), {"state": "on"}, 2.0)
    assert refused.value.code == UNSUPPORTED and "json profile" in refused.value.message


@pytest.fixture
def firmware_board(cleanup) -> EmulatorProcess:
    return cleanup.add(EmulatorProcess("--seed", "1", "--motion-rate", "0", "--http", "0", "--motor-speed", "1000"))


def test_sensor_hub_profile_reads_and_drives_the_real_firmware_http_mode(firmware_board: EmulatorProcess,
                                                                          simulator: Callable[..., NetworkSimulator]):
    p = profile("sensor_hub", f"http://127.0.0.1:{firmware_board.http_port}")
    specs = [device(t) for t in ("temperature", "humidity", "motion", "battery", "window", "led", "sound_level")]
    readings = p.read(specs)
    for spec in specs:
        assert readings[spec.device_id].problem is None, (spec.type, readings[spec.device_id].problem)
    assert isinstance(readings["temperature"].state["temperature"], float)
    assert set(readings["battery"].state) == {"battery", "voltage"}
    assert readings["window"].state["moving"] is False
    assert readings["led"].state["state"] in ("on", "off")
    moved = p.command(device("window"), {"position": 30}, 3.0)
    assert moved["target"] == 30
    from testkit.helpers import wait_for
    wait_for(lambda: read_one(p, device("window")).state == {"position": 30, "target": 30, "moving": False}, 15,
             message="the board's window at 30 %")
    # The simulator speaks the same dialect, because it runs the firmware's own HttpApi.
    sim_readings = profile("sensor_hub", simulator("sensor_hub").url).read(specs)
    assert {k: set(r.state) for k, r in sim_readings.items()} == {k: set(r.state) for k, r in readings.items()}
