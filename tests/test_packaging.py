"""The files the IoT2MQTT platform reads: setup.json produces a valid instance; manifest and
container files name programs that exist."""
from __future__ import annotations

import configparser
import json

import pytest

from shared.config import DEVICE_TYPES, validate_document
from shared.devices import BOARD_PARTS
from testkit.example import ROOT
from testkit.setup_flow import default_answers, render_instance


def _flow() -> dict:
    setup = json.loads((ROOT / "setup.json").read_text())
    return next(f for f in setup["flows"] if f.get("default"))


def test_setup_flow_with_default_answers_produces_a_valid_instance():
    flow = _flow()
    answers = default_answers(flow)
    answers["details"]["instance_id"] = "sensor_hub_02"
    doc = render_instance(flow, answers)
    assert validate_document(doc, instance_name="sensor_hub_02") == []
    assert {d["type"] for d in doc["devices"]} >= {"temperature", "motion", "window", "led"}


@pytest.mark.parametrize("board_id,port", [("hall_board", "/dev/serial/by-id/usb-Espressif-if00"),
                                           ("attic", "socket://127.0.0.1:7000")])
def test_setup_flow_with_other_answers_stays_valid(board_id: str, port: str):
    flow = _flow()
    answers = default_answers(flow)
    answers["details"].update(instance_id="attic_hub", friendly_name="Attic")
    answers["board"].update(board_id=board_id, port=port, has_window=False, baudrate=57600)
    doc = render_instance(flow, answers)
    assert validate_document(doc, instance_name="attic_hub") == []
    window = next(d for d in doc["devices"] if d["type"] == "window")
    assert window["enabled"] is False and window["device_id"] == f"{board_id}_window"


@pytest.mark.parametrize("part", BOARD_PARTS, ids=lambda part: part.answer)
def test_each_board_part_checkbox_enables_its_registry_devices(part):
    """The setup flow's part checkboxes and the devices they enable are generated from the
    registry's BOARD_PARTS: a "yes" enables exactly that part's devices, of registry types."""
    flow = _flow()
    answers = default_answers(flow)
    answers["details"]["instance_id"] = "parts_hub"
    answers["board"].update({other.answer: other is part for other in BOARD_PARTS})
    doc = render_instance(flow, answers)
    assert validate_document(doc, instance_name="parts_hub") == []
    enabled = {(d["type"], d["device_id"]) for d in doc["devices"] if d["enabled"] is True}
    assert enabled == {(type_name, f"esp32_{suffix}") for type_name, suffix, _ in part.devices}
    assert all(type_name in DEVICE_TYPES for type_name, _, _ in part.devices)


def test_setup_flow_gives_a_second_instance_its_own_ports():
    flow = _flow()
    first, second = default_answers(flow), default_answers(flow)
    first["details"]["instance_id"], second["details"]["instance_id"] = "hub_1", "hub_2"
    second["advanced"].update(serial_handler_port=5101, http_poller_port=5102, state_aggregator_port=5103,
                              ml_inference_port=5104)
    ports = []
    for answers in (first, second):
        doc = render_instance(flow, answers)
        assert validate_document(doc, instance_name=answers["details"]["instance_id"]) == []
        ports.append({name: entry["port"] for name, entry in doc["config"]["services"].items()})
    assert ports[0] == {"serial_handler": 5001, "http_poller": 5002, "state_aggregator": 5003, "ml_inference": 5004}
    assert not set(ports[0].values()) & set(ports[1].values())


def test_setup_flow_rejects_a_bad_board_id_through_the_schema():
    flow = _flow()
    answers = default_answers(flow)
    answers["details"]["instance_id"] = "sensor_hub_02"
    answers["board"]["board_id"] = "living room"
    problems = validate_document(render_instance(flow, answers), instance_name="sensor_hub_02")
    assert any(p.startswith("config.serial_ports[0].board_id: \"living room\" is not valid") for p in problems)


def test_manifest_matches_the_schema_and_the_code():
    manifest = json.loads((ROOT / "manifest.json").read_text())
    assert tuple(manifest["device_types"]) == DEVICE_TYPES
    for service in manifest["services"]:
        if service["status"] == "available":
            module = service["command"].split()[-1]
            path = ROOT / (module if module.endswith(".py") else module.replace(".", "/") + "/__main__.py")
            assert path.exists(), f"manifest says {service['name']} is available but {path} is missing"


def test_container_supervisord_config_runs_only_programs_that_exist():
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "supervisord.conf")
    programs = [s for s in parser.sections() if s.startswith("program:")]
    assert programs, "supervisord.conf has no programs"
    for section in programs:
        command = parser.get(section, "command").split()
        target = command[-1].removeprefix("/app/")  # the container's app root is this checkout
        path = ROOT / (target if target.endswith(".py") else target.replace(".", "/") + "/__main__.py")
        assert path.exists(), f"{section} runs {target}, which does not exist"
        assert parser.get(section, "stdout_logfile") == "/dev/stdout"
        assert parser.get(section, "stdout_logfile_maxbytes") == "0"
    assert parser.get("supervisord", "nodaemon") == "true"


def test_container_supervisord_config_never_kills_a_program_within_its_own_stop_deadline():
    """``stopwaitsecs`` above what each program may take to stop by itself, and a KILL, should a
    program hang past it, to its process group, so that no gunicorn worker outlives its master."""
    from bridge.bridge import SHUTDOWN_DEADLINE_S
    from shared.server import GRACEFUL_TIMEOUT_S

    parser = configparser.RawConfigParser()
    parser.read(ROOT / "supervisord.conf")
    for section in (s for s in parser.sections() if s.startswith("program:")):
        own_deadline = SHUTDOWN_DEADLINE_S if section == "program:mqtt_bridge" else GRACEFUL_TIMEOUT_S
        assert own_deadline < parser.getfloat(section, "stopwaitsecs") <= 5, section
        if parser.get(section, "command").split()[1:2] == ["-m"]:  # a service: a KILL takes whatever it started
            assert parser.getboolean(section, "killasgroup"), section
