"""Learning through the REST API of a real ``python -m services.ml_inference`` process:
corrections in (invalid ones counted), an update on demand in the background, a rollback that
survives a restart, and forgetting."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import requests

from services.ml_inference.occupant import Occupant
from services.ml_inference.train import sample_inputs
from testkit.helpers import authorization, wait_for
from tests.ml_inference.test_process import _process


def test_corrections_train_a_version_and_a_rollback_survives_a_restart(tmp_path: Path, cleanup, default_model: Path):
    model_file = tmp_path / "data" / "models" / "window.pt"
    model_file.parent.mkdir(parents=True)
    shutil.copyfile(default_model, model_file)
    service = cleanup.add(_process(tmp_path).start())
    wait_for(lambda: requests.get(service.url + "/health", timeout=2).status_code == 200, 60, message="model loaded")
    auth = authorization(tmp_path / "data")

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, service.url + path, headers=auth, timeout=10, **kwargs)

    root = wait_for(lambda: call("GET", "/models").json()["active"], 30, message="the first model recorded")
    invalid = call("POST", "/corrections", json={"window": "living_window", "position": 30,
                                                 "inputs": {"humidity": 50}})
    assert invalid.status_code == 200 and invalid.json()["stored"] is False
    rng, occupant = random.Random(4), Occupant(seed=4)
    for _ in range(8):  # fewer than train_after: no update by itself
        inputs = sample_inputs(rng)
        answer = call("POST", "/corrections", json={"window": "living_window", "source": "occupant",
                                                    "position": occupant.correct(inputs)[0],
                                                    "inputs": inputs.to_dict()})
        assert answer.json()["stored"] is True
    listed = call("GET", "/corrections", params={"limit": 5}).json()
    assert listed["total"] == 8 and len(listed["corrections"]) == 5 and listed["invalid"] == {"temperature": 1}

    assert call("POST", "/train").status_code == 202
    trained = wait_for(lambda: [v for v in call("GET", "/models").json()["versions"]
                                if v["version"] != root and v["status"] in ("active", "rejected")], 60,
                       message="the update recorded as a version, and in use if it passed")[0]
    assert trained["parent"] == root and trained["samples"] == 6 and trained["status"] in ("active", "rejected")
    assert predicted_by(call) == (trained["version"] if trained["status"] == "active" else root)
    metrics = call("GET", "/metrics").text
    assert "sensor_hub_model_validation_error{" in metrics and "sensor_hub_training_seconds_count 1.0" in metrics

    # Roll forward to the trained version (even a rejected one may be chosen by a person), restart: still it.
    assert call("POST", f"/models/{trained['version']}/activate").status_code == 200
    assert predicted_by(call) == trained["version"]
    assert service.stop() == 0
    service.start()
    wait_for(lambda: requests.get(service.url + "/health", timeout=2).status_code == 200, 60, message="reloaded")
    assert call("GET", "/models").json()["active"] == trained["version"]
    assert predicted_by(call) == trained["version"]
    assert call("POST", f"/models/{root}/activate").json()["status"] == "active"
    assert predicted_by(call) == root
    assert call("POST", "/models/window-v1:000000000000/activate").status_code == 404
    # The automation (and its switch's state, so MQTT) names the version and its validation error.
    call("POST", "/automation/living_window_auto/evaluate", json={"inputs": {"temperature": 25, "humidity": 60}})
    automation = call("GET", "/automation/living_window_auto").json()
    assert automation["model"] == root and isinstance(automation["model_error"], float)

    assert call("DELETE", "/corrections").json() == {"deleted": 8}
    assert call("GET", "/corrections").json()["total"] == 0


def predicted_by(call) -> str:
    return call("POST", "/predict", json={"temperature": 25, "humidity": 60}).json()["model"]
