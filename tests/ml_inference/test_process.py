"""``python -m services.ml_inference`` as a real process: it starts without a model file (and
creates the default), answers while it does, and a broken model file never takes it down."""
from __future__ import annotations

import json
import os
from pathlib import Path

import requests

from testkit.example import deep_merge, example_document
from testkit.helpers import authorization, free_port, wait_for
from testkit.service_process import ServiceProcess


def _process(tmp_path: Path) -> ServiceProcess:
    port = free_port()
    doc = deep_merge(example_document(), {"config": {"services": {"ml_inference": {"port": port}}}})
    instances = tmp_path / "instances"
    instances.mkdir()
    (instances / "sensor_hub_01.json").write_text(json.dumps(doc))
    env = {**os.environ, "INSTANCE_NAME": "sensor_hub_01", "INSTANCES_DIR": str(instances),
           "DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "INFO"}
    return ServiceProcess("services.ml_inference", f"http://127.0.0.1:{port}", env, tmp_path / "ml.log")


def test_first_start_creates_the_default_model_and_then_predicts(tmp_path: Path, cleanup, default_model: Path):
    service = cleanup.add(_process(tmp_path).start())
    # Up at once (the model loads in the background); ready once the default weights exist.
    wait_for(lambda: requests.get(service.url + "/health", timeout=2).status_code == 200, 120, interval=0.1,
             message="the default model trained and loaded")
    model_file = tmp_path / "data" / "models" / "window.pt"
    assert model_file.read_bytes() == default_model.read_bytes()
    answer = requests.post(service.url + "/predict", json={"temperature": 29, "humidity": 75,
                                                           "outdoor_temperature": 17}, timeout=10,
                           headers=authorization(tmp_path / "data"))
    assert answer.status_code == 200 and answer.json()["position"] > 70
    assert service.stop() == 0
    assert "training the default weights" in service.log()


def test_a_corrupt_model_file_leaves_the_process_up_with_a_reason(tmp_path: Path, cleanup):
    model_file = tmp_path / "data" / "models" / "window.pt"
    model_file.parent.mkdir(parents=True)
    model_file.write_bytes(os.urandom(4096))
    service = cleanup.add(_process(tmp_path).start())
    health = wait_for(lambda: (r := requests.get(service.url + "/health", timeout=2)).status_code == 503
                      and r.json()["checks"]["model"]["detail"].startswith("failed") and r.json(), 60,
                      message="health reports the refused model")
    assert "is not a readable torch file" in health["reasons"][0]
    answer = requests.post(service.url + "/predict", json={"temperature": 21, "humidity": 50}, timeout=10,
                           headers=authorization(tmp_path / "data"))
    assert answer.status_code == 503 and answer.json()["error"] == "MODEL_UNAVAILABLE"
    assert service.proc.poll() is None
    assert "Traceback" not in service.log()
