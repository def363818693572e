"""Learning from corrections: the store, versions, the gate, rollback, refused files, determinism
(pure parts and the Learner with a real Recommender on a temporary data folder)."""
from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest
import torch

from services.ml_inference import learning
from services.ml_inference.corrections import (
    Correction,
    CorrectionStore,
    why_not_a_correction,
)
from services.ml_inference.inputs import WindowInputs
from services.ml_inference.learner import Learner
from services.ml_inference.model import load_model
from services.ml_inference.occupant import Occupant, preference
from services.ml_inference.recommender import Recommender
from services.ml_inference.rule import comfort_rule
from services.ml_inference.train import sample_inputs
from services.ml_inference.versions import ACTIVE, REJECTED
from shared.config import MlSettings
from shared.errors import Conflict

INPUTS = {"temperature": 27.0, "humidity": 70.0, "outdoor_temperature": 18.0}


def sample(position: float = 40.0, **extra) -> dict:
    return {"window": "living_window", "position": position, "inputs": dict(INPUTS), "source": "rest", **extra}


# -- the store


def test_samples_survive_a_restart_and_are_listed_newest_first(tmp_path: Path):
    store = CorrectionStore(tmp_path / "c.sqlite")
    first, second = store.add(sample(10)), store.add(sample(20))
    assert first is not None and second is not None and second.id > first.id
    store.close()
    again = CorrectionStore(tmp_path / "c.sqlite")
    assert [c.position for c in again.list()] == [20.0, 10.0]
    assert again.list()[0].inputs == WindowInputs(temperature=27.0, humidity=70.0, outdoor_temperature=18.0)


def test_invalid_samples_are_ignored_counted_and_logged_once(tmp_path: Path, caplog):
    store = CorrectionStore(tmp_path / "c.sqlite")
    assert store.add({**sample(), "inputs": {"humidity": 50}}) is None  # temperature missing
    assert store.add({**sample(), "inputs": {"temperature": 999, "humidity": 50}}) is None
    assert store.add(sample(position=140)) is None
    assert store.add({**sample(), "inputs": {"temperature": 20, "humidity": float("nan")}}) is None
    assert store.count() == 0
    assert store.invalid == {"temperature": 2, "position": 1, "humidity": 1}
    assert sum("correction ignored" in r.message for r in caplog.records) == 3  # temperature once


def test_the_store_is_bounded_by_rows_and_by_age(tmp_path: Path):
    store = CorrectionStore(tmp_path / "c.sqlite", max_rows=5, retention=3600)
    for i in range(8):
        store.add(sample(i))
    assert [c.position for c in store.all()] == [3.0, 4.0, 5.0, 6.0, 7.0]
    store.add(sample(50, at=time.time() - 7200))  # older than the retention: gone at the next write
    store.add(sample(60))
    assert 50.0 not in [c.position for c in store.all()]


def test_forgetting_deletes_one_windows_samples_or_all(tmp_path: Path):
    store = CorrectionStore(tmp_path / "c.sqlite")
    store.add(sample(10))
    store.add({**sample(20), "window": "bedroom_window"})
    assert store.forget("bedroom_window") == 1
    assert [c.window for c in store.all()] == ["living_window"]
    assert store.forget() == 1 and store.count() == 0
    store.close()
    assert CorrectionStore(tmp_path / "c.sqlite").count() == 0


def test_what_counts_as_a_correction():
    now = 10_000.0
    moment = (now - 60, "stay", WindowInputs(temperature=25.0, humidity=60.0))
    assert why_not_a_correction("suggest", moment, 0.0, now) is None
    assert why_not_a_correction("auto", (now - 60, "suggest", moment[2]), 0.0, now) is None
    assert why_not_a_correction("auto", moment, now - 600, now) is None  # soon after an automatic move
    assert "no automatic move" in why_not_a_correction("auto", moment, now - 4000, now)
    assert "old" in why_not_a_correction("suggest", (now - 3600, "suggest", moment[2]), 0.0, now)
    assert "not evaluated" in why_not_a_correction("suggest", None, 0.0, now)


# -- training


def occupant_corrections(count: int, seed: int = 3) -> list[Correction]:
    rng, occupant = random.Random(seed), Occupant(seed=seed)
    out = []
    for i in range(count):
        inputs = sample_inputs(rng)
        out.append(Correction(i + 1, "living_window", None, 0.0, "occupant", inputs, occupant.correct(inputs)[0]))
    return out


def test_training_is_deterministic_for_a_seed(default_model: Path):
    parent = load_model(default_model).model
    corrections = occupant_corrections(12)
    one = learning.fine_tune(parent, corrections, seed=5, steps=20)
    two = learning.fine_tune(parent, corrections, seed=5, steps=20)
    for name, tensor in one.state_dict().items():
        assert torch.equal(tensor, two.state_dict()[name]), name
    assert not torch.equal(one.state_dict()["position.weight"], parent.state_dict()["position.weight"])


def test_calibration_error_is_measured_on_validation_cases(default_model: Path):
    model = load_model(default_model).model
    x, y, _ = learning.rule_cases(400, 1)
    table, ece = learning.calibration(model, x, y)
    assert len(table) == learning.BINS and all(0.0 <= p <= 1.0 for p in table)
    assert 0.0 <= ece < 0.2
    # A confidence that is always 1 while the model misses half the time is far off.
    assert learning.expected_calibration_error(torch.ones(10), torch.tensor([1.0, 0.0] * 5)) == 0.5


# -- the learner: versions, the gate, rollback, refused files


def start_learner(data_dir: Path, default_model: Path | None = None) -> Learner:
    model_path = data_dir / "models" / "window.pt"
    if default_model is not None and not model_path.exists():
        model_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(default_model, model_path)
    recommender = Recommender(MlSettings(model_path=model_path))
    recommender.load()
    learner = Learner(data_dir, model_path, recommender)
    learner.sync()
    return learner


def test_a_candidate_worse_on_validation_is_never_activated(tmp_path: Path, default_model: Path):
    learner = start_learner(tmp_path, default_model)
    first = learner.recommender.current()
    # The person wants exactly what the model says: no candidate can be better on held-out corrections.
    rng = random.Random(9)
    for _ in range(12):
        inputs = sample_inputs(rng)
        [rec], _ = learner.recommender.predict([inputs])
        learner.store.add({"window": "w", "position": rec.position, "inputs": inputs.to_dict()})
    version = learner.train_once()
    assert version is not None and version.status == REJECTED
    assert "not lower than the parent's" in version.reason
    assert learner.recommender.current().version == first.version
    assert learner.versions.active().version == first.version
    assert learner.model_path.read_bytes() == default_model.read_bytes()


def test_rollback_works_across_restarts(tmp_path: Path, default_model: Path):
    learner = start_learner(tmp_path, default_model)
    root = learner.versions.active().version
    other = learning.fine_tune(learner.recommender.current().model, occupant_corrections(8), steps=10)
    added = learner.versions.add_model(other, {}, parent=root, samples=8, status="accepted", reason=None,
                                       validation={})
    learner.activate(added.version)
    assert learner.recommender.current().version == added.version
    learner.store.close()

    restarted = start_learner(tmp_path)
    assert restarted.recommender.current().version == added.version
    assert restarted.versions.active().version == added.version
    restarted.activate(root)  # roll back to the first model
    restarted.store.close()
    again = start_learner(tmp_path)
    assert again.recommender.current().version == root
    assert {v.version: v.status for v in again.versions.list()} == {root: ACTIVE, added.version: "accepted"}


@pytest.mark.parametrize("content, reason", [
    (b"not a torch file at all", "is not a readable torch file"),
    ("foreign", "is not a window model"),
])
def test_a_corrupt_or_foreign_version_is_refused_and_the_good_one_stays(tmp_path: Path, default_model: Path,
                                                                       content, reason):
    learner = start_learner(tmp_path, default_model)
    root = learner.versions.active().version
    other = learning.fine_tune(learner.recommender.current().model, occupant_corrections(8), steps=10)
    added = learner.versions.add_model(other, {}, parent=root, samples=8, status="accepted", reason=None,
                                       validation={})
    path = learner.versions.directory / added.file
    if content == "foreign":
        torch.save({"format": "someone/else", "version": 1, "features": [], "state_dict": {}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(Conflict) as refused:
        learner.activate(added.version)
    assert refused.value.code == "MODEL_INVALID" and reason in refused.value.message
    assert learner.recommender.current().version == root
    assert learner.model_path.read_bytes() == default_model.read_bytes()


def test_a_corrupt_model_file_at_start_falls_back_to_the_last_active_version(tmp_path: Path, default_model: Path):
    learner = start_learner(tmp_path, default_model)
    root = learner.versions.active().version
    learner.store.close()
    learner.model_path.write_bytes(b"garbage")
    restarted = start_learner(tmp_path)
    assert restarted.recommender.current().version == root
    ok, detail = restarted.recommender.health()
    assert ok and "not a readable torch file" in detail
    assert restarted.model_path.read_bytes() == b"garbage"  # never overwritten: it may be someone's


def test_an_update_from_corrections_is_recorded_with_its_metadata(tmp_path: Path, default_model: Path):
    learner = start_learner(tmp_path, default_model)
    root = learner.versions.active().version
    for c in occupant_corrections(20):
        learner.store.add({"window": c.window, "position": c.position, "inputs": c.inputs.to_dict()})
    version = learner.train_once()
    assert version.parent == root and version.samples == 15 and version.training_s > 0
    assert version.validation["held_out"] == 5 and version.validation["corrections_mae"] is not None
    assert version.status == ACTIVE or version.reason
    if version.status == ACTIVE:  # whichever it was, the model in use agrees with the record
        assert learner.recommender.current().version == version.version
    else:
        assert learner.recommender.current().version == root


def test_the_occupant_prefers_something_else_than_the_rule():
    humid_and_loud = WindowInputs(temperature=27.0, humidity=80.0, outdoor_temperature=20.0, motion=True,
                                  sound_level=-20.0)
    assert preference(humid_and_loud) == 0.0
    humid = WindowInputs(temperature=22.0, humidity=80.0, outdoor_temperature=15.0)
    assert preference(humid) > 20.0 and preference(humid) - comfort_rule(humid)[0] == 25.0
