"""The real model: the default weights are reproducible, learned the comfort rule, and a model
file that does not fit is refused with a reason."""
from __future__ import annotations

import hashlib
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from services.ml_inference.inputs import FEATURES, WindowInputs, features
from services.ml_inference.model import ModelFileError, WindowModel, load_model, save_model
from services.ml_inference.rule import comfort_rule
from services.ml_inference.train import sample_inputs
from testkit.example import ROOT


@pytest.fixture(scope="module")
def model(default_model: Path):
    return load_model(default_model)


def ask(model, **inputs) -> tuple[float, float]:
    with torch.inference_mode():
        position, confidence = model.model(torch.tensor([features(WindowInputs(**inputs))]))
    return float(position[0]), float(confidence[0])


def test_the_train_command_writes_the_same_file_again(default_model: Path, tmp_path: Path):
    out = tmp_path / "again.pt"
    result = subprocess.run([sys.executable, "-m", "services.ml_inference.train", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(default_model.read_bytes()).hexdigest()
    assert f"window-v1:{digest[:12]}" in result.stdout


def test_hot_and_humid_inside_and_cool_outside_opens_wide(model):
    position, confidence = ask(model, temperature=29.0, humidity=75.0, outdoor_temperature=17.0, motion=False,
                               sound_level=-60.0, position=0.0)
    assert position > 85 and confidence > 0.8


def test_cold_keeps_the_window_closed(model):
    assert ask(model, temperature=16.0, humidity=80.0, outdoor_temperature=10.0)[0] < 10
    assert ask(model, temperature=27.0, humidity=70.0, outdoor_temperature=-10.0)[0] < 10  # freezing outside
    assert ask(model, temperature=21.0, humidity=45.0, outdoor_temperature=15.0, position=50.0)[0] < 10


def test_a_stuffy_room_opens_the_window(model):
    # co2 is an input only because the registry declares it (shared/devices.py, airing 1000..1600 ppm).
    stuffy, confidence = ask(model, temperature=21.0, humidity=45.0, co2=1800.0, motion=False, sound_level=-60.0)
    assert stuffy > 85 and confidence > 0.6
    assert ask(model, temperature=21.0, humidity=45.0, co2=600.0, motion=False, sound_level=-60.0)[0] < 10
    assert ask(model, temperature=16.0, humidity=45.0, co2=1800.0)[0] < 15  # too cold to air


def test_warmer_outside_does_not_open_for_heat(model):
    assert ask(model, temperature=27.0, humidity=50.0, outdoor_temperature=31.0)[0] < 10


def test_someone_present_and_loud_opens_less(model):
    quiet = ask(model, temperature=28.0, humidity=50.0, outdoor_temperature=18.0, motion=True, sound_level=-60.0)[0]
    loud = ask(model, temperature=28.0, humidity=50.0, outdoor_temperature=18.0, motion=True, sound_level=-25.0)[0]
    nobody = ask(model, temperature=28.0, humidity=50.0, outdoor_temperature=18.0, motion=False, sound_level=-25.0)[0]
    assert loud < quiet - 30 and nobody > loud + 30


def test_an_unknown_outdoor_temperature_opens_less_and_is_less_sure(model):
    known = ask(model, temperature=29.0, humidity=50.0, outdoor_temperature=18.0, motion=False, sound_level=-60.0)
    unknown = ask(model, temperature=29.0, humidity=50.0, motion=False, sound_level=-60.0)
    assert 40 < unknown[0] < known[0] - 20
    assert unknown[1] < known[1] - 0.1 and unknown[1] > 0.6  # still above the default threshold


def test_near_a_threshold_the_model_is_less_confident(model):
    clear = ask(model, temperature=29.0, humidity=50.0, outdoor_temperature=18.0, motion=False, sound_level=-60.0)[1]
    edge = ask(model, temperature=23.5, humidity=50.0, outdoor_temperature=18.0, motion=False, sound_level=-60.0)[1]
    assert edge < clear - 0.15


def test_the_model_agrees_with_the_rule_on_new_situations(model):
    rng = random.Random(7)  # not the training seed: situations the model has not seen
    errors = []
    for _ in range(2000):
        inputs = sample_inputs(rng)
        expected, _ = comfort_rule(inputs)
        errors.append(abs(ask(model, **inputs.to_dict())[0] - expected))
    errors.sort()
    assert sum(errors) / len(errors) < 5.0
    assert errors[int(len(errors) * 0.95)] < 15.0


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path):
    path = tmp_path / "window.pt"
    path.write_bytes(b"\x00garbage, not a torch file")
    with pytest.raises(ModelFileError, match="is not a readable torch file"):
        load_model(path)
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="is not a readable torch file"):
        load_model(path)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "absent.pt")


def test_a_file_that_would_run_code_is_refused(tmp_path: Path):
    path = tmp_path / "window.pt"
    torch.save({"state_dict": WindowModel().state_dict(), "hook": pickle.PickleError}, path)
    with pytest.raises(ModelFileError, match="Python objects besides tensors"):
        load_model(path)


def test_a_model_of_another_shape_or_features_is_refused(tmp_path: Path, default_model: Path):
    path = tmp_path / "window.pt"
    state = WindowModel().state_dict()
    state["body.0.weight"] = torch.zeros(32, 7)  # trained on 7 features
    torch.save(state, path)
    with pytest.raises(ModelFileError, match="does not fit WindowModel"):
        load_model(path)
    content = torch.load(default_model, weights_only=True)
    content["features"] = list(FEATURES[:-1]) + ["hour"]
    torch.save(content, path)
    with pytest.raises(ModelFileError, match="trained on the features"):
        load_model(path)
    content["features"], content["version"] = list(FEATURES), 2
    torch.save(content, path)
    with pytest.raises(ModelFileError, match="is version 2"):
        load_model(path)


def test_weights_that_give_nan_are_refused(tmp_path: Path):
    model = WindowModel()
    with torch.no_grad():
        model.position.bias.fill_(float("nan"))
    path = tmp_path / "window.pt"
    save_model(model, path)
    with pytest.raises(ModelFileError, match="non-finite"):
        load_model(path)


def test_a_bare_state_dict_of_the_right_shape_is_accepted(tmp_path: Path):
    torch.manual_seed(3)
    model = WindowModel(hidden=16)
    path = tmp_path / "mine.pt"
    torch.save(model.state_dict(), path)
    loaded = load_model(path)
    assert loaded.version == f"window-v1:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    assert loaded.model.position.in_features == 16


def test_saving_replaces_the_file_atomically(tmp_path: Path):
    path = tmp_path / "window.pt"
    path.write_bytes(b"old")
    digest = save_model(WindowModel(), path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert [p.name for p in tmp_path.iterdir()] == ["window.pt"]  # no temporary file left behind


def test_a_missing_model_file_gets_the_bundled_default_weights_without_training(tmp_path: Path,
                                                                               default_model: Path):
    from services.ml_inference.recommender import Recommender
    from shared.config import MlSettings

    target = tmp_path / "data" / "models" / "window.pt"
    recommender = Recommender(MlSettings(model_path=target, bundled_model=default_model))
    recommender.load()
    assert target.read_bytes() == default_model.read_bytes()
    assert recommender.ready and recommender.info()["created_default"] is True
    assert not list(target.parent.glob("*.tmp"))


def test_without_a_bundled_model_a_missing_file_is_trained(tmp_path: Path, default_model: Path):
    from services.ml_inference.recommender import Recommender
    from shared.config import MlSettings

    target = tmp_path / "window.pt"
    recommender = Recommender(MlSettings(model_path=target, bundled_model=tmp_path / "not-there.pt"))
    recommender.load()
    assert recommender.ready
    assert target.read_bytes() == default_model.read_bytes()  # the same seed: the same weights


def test_default_weights_of_another_version_are_replaced_but_a_model_of_your_own_is_not(tmp_path: Path,
                                                                                      default_model: Path):
    from services.ml_inference.recommender import Recommender
    from shared.config import MlSettings

    content = torch.load(default_model, weights_only=True)
    content["features"] = [f for f in FEATURES if not f.startswith("co2")]  # before the registry had co2
    target = tmp_path / "models" / "window.pt"
    target.parent.mkdir()
    torch.save(content, target)
    recommender = Recommender(MlSettings(model_path=target, bundled_model=default_model))
    recommender.load()
    assert recommender.ready and recommender.info()["created_default"] is True
    assert target.read_bytes() == default_model.read_bytes()

    content["trained"] = {"teacher": "three winters of my own living room"}
    torch.save(content, target)
    before = target.read_bytes()
    refused = Recommender(MlSettings(model_path=target, bundled_model=default_model))
    refused.load()
    assert not refused.ready and "trained on the features" in refused.health()[1]
    assert target.read_bytes() == before  # someone's own model is never overwritten
