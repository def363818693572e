"""The ml_inference REST API over real HTTP, with the real default model."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from testkit.helpers import wait_for
from tests.ml_inference.conftest import AUTOMATION, SWITCH

HOT = {"temperature": 29.0, "humidity": 75.0, "outdoor_temperature": 17.0, "motion": False, "sound_level": -60.0}
COLD = {"temperature": 16.0, "humidity": 50.0, "outdoor_temperature": 5.0}


def test_predict_one_input_and_a_batch(ml_service):
    ml = ml_service()
    ml.wait_ready()
    one = ml.post("/predict", HOT)
    assert one.status_code == 200
    body = one.json()
    assert body["position"] > 85 and 0 < body["confidence"] <= 1 and body["inference_ms"] >= 0
    model = ml.get("/model").json()
    assert body["model"] == model["model"] == f"window-v1:{model['sha256'][:12]}"
    batch = ml.post("/predict", [HOT, COLD, {"temperature": 21, "humidity": 45}]).json()
    assert batch["count"] == 3 and batch["model"] == body["model"]
    positions = [p["position"] for p in batch["predictions"]]
    assert positions[0] > 85 and positions[1] < 10
    assert model["status"] == "ready" and model["trained"]["teacher"].startswith("comfort rule")
    assert ml.get("/model").json()["predictions"] == 4 and model["threads"] == 1


def test_bad_input_is_a_clear_json_error_naming_the_field(ml_service):
    ml = ml_service()
    ml.wait_ready()
    nan = ml.post("/predict", data='{"temperature": NaN, "humidity": 50}', headers={"Content-Type": "application/json"})
    assert nan.status_code == 400
    assert nan.json() == {"error": "INVALID_VALUE", "field": "temperature",
                          "message": "temperature: must be a finite number -40..85 °C, got nan"}
    batch = ml.post("/predict", [HOT, {**HOT, "humidity": 101}])
    assert batch.status_code == 400 and batch.json()["field"] == "[1].humidity"
    broken = ml.post("/predict", data="{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"] == "INVALID_JSON"
    assert ml.get("/model").json()["predictions"] == 0  # nothing reached the model


def test_a_corrupt_model_file_keeps_the_service_up_and_says_why(ml_service, default_model: Path):
    ml = ml_service(model=b"PK\x03\x04 half a zip file")
    model_path = ml.settings.ml.model_path
    health = wait_for(lambda: (r := ml.get("/health")).status_code == 503 and "failed" in r.text and r.json(), 60,
                      message="health says the model failed")
    reason = health["reasons"][0]
    assert "is not a readable torch file" in reason and str(model_path) in reason
    answer = ml.post("/predict", HOT)
    assert answer.status_code == 503 and answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"] == "MODEL_UNAVAILABLE" and "Traceback" not in answer.text
    evaluate = ml.post(f"/automation/{AUTOMATION}/evaluate", {"inputs": HOT})
    assert evaluate.status_code == 503 and evaluate.json()["error"] == "MODEL_UNAVAILABLE"
    errors = ml.get("/errors").json()["errors"]
    assert errors[-1]["error_code"] == "MODEL_INVALID"
    assert model_path.read_bytes().startswith(b"PK\x03\x04 half")  # never overwritten: it may be someone's model
    # Replace the file, reload: back in business without a restart.
    shutil.copyfile(default_model, model_path)
    reloaded = ml.post("/model/reload")
    assert reloaded.status_code == 200 and reloaded.json()["status"] == "ready"
    health = ml.get("/health")
    assert health.status_code == 200 and ml.post("/predict", HOT).status_code == 200
    assert health.json()["instance_id"] == health.headers["X-Instance-Id"] == "sensor_hub_01"


def test_a_missing_model_file_is_created_with_the_default_weights(ml_service, default_model: Path):
    ml = ml_service(model=False)
    ml.wait_ready()
    info = ml.get("/model").json()
    assert info["created_default"] is True
    assert ml.settings.ml.model_path.read_bytes() == default_model.read_bytes()


def test_the_switch_turns_automatic_moves_on_and_off_and_is_remembered(ml_service):
    ml = ml_service()
    ml.wait_ready()
    sensors = ml.get("/sensors").json()["sensors"]
    assert [s["device_id"] for s in sensors] == [SWITCH]
    assert sensors[0]["online"] is True and sensors[0]["state"]["state"] == "on"  # config mode auto
    answer = ml.post(f"/sensor/{SWITCH}/cmd", {"values": {"state": "off"}, "id": "s-1"})
    assert answer.status_code == 200 and answer.json()["cmd_id"] == "s-1"
    assert answer.json()["result"]["mode"] == "suggest"
    facts = {"inputs": HOT, "window": {"position": 0, "moving": False}}
    suggested = ml.post(f"/automation/{AUTOMATION}/evaluate", facts).json()
    assert suggested["action"] == "suggest" and suggested["position"] == 80  # the example's max_position
    wait_for(lambda: any(s.get("action") == "suggest" for s in ml.states(SWITCH)), 10,
             message="the switch's state carries the latest recommendation on /events")
    saved = json.loads((ml.settings.data_dir / "automations.json").read_text())
    assert saved[AUTOMATION]["mode"] == "suggest"
    assert ml.post(f"/sensor/{SWITCH}/cmd", {"state": "on"}).json()["result"]["state"] == "on"
    assert ml.post(f"/automation/{AUTOMATION}/evaluate", facts).json()["action"] == "move"
    bad = ml.post(f"/sensor/{SWITCH}/cmd", {"state": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"] == "INVALID_VALUE"
    unknown = ml.post("/sensor/nope/cmd", {"state": "on"})
    assert unknown.status_code == 404 and unknown.json()["known"] == [SWITCH]


def test_a_switch_cannot_turn_on_an_automation_the_config_turned_off(ml_service):
    ml = ml_service({"config": {"window_automations": [{
        "automation_id": AUTOMATION, "window": "living_window", "mode": "off",
        "sensors": {"temperature": "living_temperature", "humidity": "living_humidity"}}]}})
    answer = ml.post(f"/sensor/{SWITCH}/cmd", {"state": "on"})
    assert answer.status_code == 409 and answer.json()["error"] == "REJECTED"
    assert "mode" in answer.json()["message"]


def test_evaluate_applies_the_policy_to_the_facts(ml_service):
    ml = ml_service()
    ml.wait_ready()
    url = f"/automation/{AUTOMATION}/evaluate"
    moved = ml.post(url, {"inputs": HOT, "window": {"position": 0}}).json()
    assert moved["action"] == "move" and moved["position"] == 80 and moved["recommendation"]["position"] > 85
    assert ml.post(url, {"inputs": HOT, "window": {"position": 75}}).json()["action"] == "stay"
    assert ml.post(url, {"inputs": HOT, "window": {"position": 0, "moving": True}}).json()["action"] == "wait"
    held = ml.post(url, {"inputs": HOT, "window": {"position": 0}, "manual": {"at": time.time() - 5, "cmd_id": "m-1"}})
    assert held.json()["action"] == "hold" and "m-1" in held.json()["reason"] and held.json()["held_until"]
    bad = ml.post(url, {"inputs": {"temperature": 21}, "window": {"position": 0}})
    assert bad.status_code == 400 and bad.json()["field"] == "inputs.humidity"
    bad_window = ml.post(url, {"inputs": HOT, "window": {"position": 101}})
    assert bad_window.status_code == 400 and bad_window.json()["field"] == "window.position"
    unknown = ml.post("/automation/nope/evaluate", {"inputs": HOT})
    assert unknown.status_code == 404 and unknown.json()["known"] == [AUTOMATION]
    view = ml.get(f"/automation/{AUTOMATION}").json()
    assert view["evaluations"] == 4 and view["last"]["action"] == "hold"


def test_metrics_count_predictions(ml_service):
    ml = ml_service()
    ml.wait_ready()
    ml.post("/predict", [HOT, COLD])
    text = ml.get("/metrics").text
    assert 'sensor_hub_predictions_total{endpoint="predict"} 2.0' in text
    assert "sensor_hub_model_ready 1.0" in text
