"""Files written from the device-type registry must match it (`make docs` writes them)."""
from __future__ import annotations

import json

import pytest

from shared import generated
from shared.devices import BOARD_PARTS, DEVICE_TYPES, automation_inputs


@pytest.mark.parametrize("path", list(generated.GENERATED), ids=lambda p: p.name)
def test_generated_file_is_current(path):
    current = path.read_text(encoding="utf-8")
    assert generated.GENERATED[path](current) == current, \
        f"{path.relative_to(generated.ROOT)} is stale against shared/devices.py: {generated.REGENERATE}"


def test_schema_and_manifest_carry_the_registry():
    schema = json.loads(generated.SCHEMA.read_text())
    assert schema["$defs"]["device"]["properties"]["type"]["enum"] == list(DEVICE_TYPES)
    sensors = schema["$defs"]["window_automation"]["properties"]["sensors"]
    assert list(sensors["properties"]) == list(automation_inputs())
    assert json.loads(generated.MANIFEST.read_text())["device_types"] == list(DEVICE_TYPES)


def test_setup_asks_the_registrys_board_parts():
    setup = json.loads(generated.SETUP.read_text())
    fields = [f for step in setup["flows"][0]["steps"] for f in step.get("schema", {}).get("fields", [])]
    assert [f["name"] for f in fields if f["type"] == "checkbox"] == [p.answer for p in BOARD_PARTS]
    assert "has_co2" in {p.answer for p in BOARD_PARTS}
    for part in BOARD_PARTS:
        assert {t for t, _, _ in part.devices} <= set(DEVICE_TYPES), part.answer


def test_a_setup_without_its_generated_block_is_refused():
    with pytest.raises(ValueError, match="part checkboxes"):
        generated.setup_text('{"flows": []}\n')


def test_a_stale_copy_is_found_and_rewritten(tmp_path, monkeypatch):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(generated.MANIFEST.read_text().replace('"switch"]', '"switch", "thermostat"]'))
    monkeypatch.setattr(generated, "GENERATED", {manifest: generated.manifest_text})
    assert generated.stale() == [manifest]
    assert generated.write_all() == [manifest]
    assert json.loads(manifest.read_text())["device_types"] == list(DEVICE_TYPES)
    assert generated.stale() == []


def test_missing_markers_are_named():
    with pytest.raises(ValueError, match="lacks the markers"):
        generated.architecture_text("# no table here\n")
