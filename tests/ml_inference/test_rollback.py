"""Rolling back by a device command: an automation's switch takes ``{"model": "<version>"}`` (MQTT's
``cmd``, Home Assistant's select), offers the versions to pick from in its state, and names the
active one. The service over real HTTP; then the same command through the aggregator's routing."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from services.ml_inference import learning
from services.ml_inference.corrections import Correction
from services.ml_inference.occupant import Occupant
from services.ml_inference.train import sample_inputs
from services.ml_inference.versions import ModelVersion, ModelVersions, UnknownVersion
from testkit.helpers import wait_for
from tests.ml_inference.conftest import SWITCH, MlService, with_switch
from tests.state_aggregator.conftest import AggregatorUnderTest, service_ports

REASON = "its error on held-out corrections (9.1) is not lower than the parent's (8.0)"


def corrections(seed: int) -> list[Correction]:
    rng, occupant = random.Random(seed), Occupant(seed=seed)
    return [Correction(i + 1, "living_window", None, 0.0, "occupant", inputs, occupant.correct(inputs)[0])
            for i, inputs in enumerate(sample_inputs(rng) for _ in range(8))]


def versions(ml: MlService) -> tuple[str, ModelVersion, ModelVersion]:
    """The first model (recorded by the learner's thread), one more kept and one rejected."""
    learner = ml.service.learner
    wait_for(lambda: learner.versions.active() is not None, 60, message="the first model recorded as a version")
    root = learner.versions.active().version
    model = learner.recommender.current().model
    kept = learner.versions.add_model(learning.fine_tune(model, corrections(3), steps=5, replay=50), {},
                                      parent=root, samples=8, status="accepted", reason=None,
                                      validation={"corrections_mae": 4.2})
    rejected = learner.versions.add_model(learning.fine_tune(model, corrections(4), steps=5, replay=50), {},
                                          parent=root, samples=8, status="rejected", reason=REASON, validation={})
    return root, kept, rejected


def test_the_versions_on_offer_are_bounded_never_rejected_and_always_hold_the_active_one(tmp_path: Path):
    names = [f"window-v1:{i:012x}" for i in range(30)]
    status = {5: "active", 28: "rejected", 29: "rejected"}
    records = [{"version": n, "file": f"{n[-12:]}.pt", "parent": None, "samples": 0, "created_at": "",
                "status": status.get(i, "accepted")} for i, n in enumerate(names)]
    (tmp_path / "versions.json").write_text(json.dumps({"versions": records}))
    versions = ModelVersions(tmp_path)
    offered = versions.choices(limit=10)
    assert offered == [names[5], *names[19:28]]  # the active one, then the newest kept
    assert versions.choices(limit=40) == [n for i, n in enumerate(names) if i not in (28, 29)]
    assert versions.find(names[7][-12:]).version == versions.find(names[7]).version == names[7]
    for unknown in ("window-v1:ffffffffffff", "", "window-v1"):
        with pytest.raises(UnknownVersion):
            versions.find(unknown)


def switch_state(ml: MlService) -> dict:
    return ml.get(f"/sensor/{SWITCH}").json()["state"]


def test_a_model_command_activates_a_kept_version_and_refuses_the_others(ml_service):
    ml = ml_service()
    ml.wait_ready()
    root, kept, rejected = versions(ml)
    state = switch_state(ml)
    assert state["model"] == root and state["models"] == [root, kept.version]  # never a rejected one
    assert isinstance(state["model_error"], float)

    unknown = ml.post(f"/sensor/{SWITCH}/cmd", {"id": "m-1", "values": {"model": "window-v1:000000000000"}})
    assert unknown.status_code == 404 and unknown.json()["error"] == "UNKNOWN_VERSION"
    assert unknown.json()["known"] == [root, kept.version]
    refused = ml.post(f"/sensor/{SWITCH}/cmd", {"values": {"model": rejected.version}})
    assert refused.status_code == 409 and refused.json()["error"] == "REJECTED"
    assert refused.json()["reason"] == REASON and REASON in refused.json()["message"]
    malformed = ml.post(f"/sensor/{SWITCH}/cmd", {"values": {"model": "two words"}})
    assert malformed.status_code == 400 and malformed.json()["error"] == "INVALID_VALUE"
    assert ml.service.recommender.current().version == root  # nothing refused changed anything

    mark = ml.mark()
    sha12 = kept.version.rpartition(":")[2]  # the short form works too
    done = ml.post(f"/sensor/{SWITCH}/cmd", {"id": "m-2", "values": {"model": sha12}})
    assert done.status_code == 200 and done.json()["cmd_id"] == "m-2"
    assert done.json()["result"]["model"] == kept.version and done.json()["result"]["model_error"] == 4.2
    assert ml.service.recommender.current().version == kept.version
    assert ml.get("/models").json()["active"] == kept.version
    assert ml.settings.ml.model_path.read_bytes() == (ml.service.learner.versions.directory / kept.file).read_bytes()
    ml.wait_event(lambda e: e.kind == "state" and e.data["state"].get("model") == kept.version, start=mark,
                  message="the switch's state names the new version on /events")
    # REST's activate (which may force a rejected version) tells the switches too.
    mark = ml.mark()
    assert ml.post(f"/models/{root}/activate").status_code == 200
    ml.wait_event(lambda e: e.kind == "state" and e.data["state"].get("model") == root, start=mark,
                  message="the state names the version REST activated")


def test_a_version_whose_file_fails_its_checks_is_refused_and_the_active_one_stays(ml_service):
    ml = ml_service()
    ml.wait_ready()
    root, kept, _ = versions(ml)
    (ml.service.learner.versions.directory / kept.file).write_bytes(b"not a torch file at all")
    answer = ml.post(f"/sensor/{SWITCH}/cmd", {"values": {"model": kept.version}})
    assert answer.status_code == 409 and answer.json()["error"] == "MODEL_INVALID"
    assert "not a readable torch file" in answer.json()["message"]
    assert ml.service.recommender.current().version == root and switch_state(ml)["model"] == root


def test_the_model_command_through_the_aggregator_activates_it_and_the_state_names_it(
        ml_service, make_settings, cleanup):
    ml = ml_service()
    ml.wait_ready()
    root, kept, _ = versions(ml)
    services = {**service_ports(), "ml_inference": {"host": "127.0.0.1", "port": ml.server.port}}
    aggregator = cleanup.add(AggregatorUnderTest(make_settings(with_switch({"config": {"services": services}}))))
    wait_for(lambda: aggregator.device(SWITCH).get("online"), 30, message="the switch on the aggregator")
    answer = aggregator.post(f"/device/{SWITCH}/cmd", json={"id": "roll-1", "values": {"model": kept.version}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["model"] == kept.version
    assert ml.service.recommender.current().version == kept.version
    wait_for(lambda: aggregator.device(SWITCH)["state"].get("model") == kept.version, 15,
             message="the aggregator's state of the switch names the version")
    # Its shape is checked before ml_inference is asked (the registry's rule, shared/devices.py).
    bad = aggregator.post(f"/device/{SWITCH}/cmd", json={"values": {"model": 7}})
    assert bad.status_code == 400 and bad.json()["error"] == "INVALID_VALUE"
    assert root in aggregator.device(SWITCH)["state"]["models"]
