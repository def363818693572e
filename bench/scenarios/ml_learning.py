"""ml_inference learns a simulated occupant (services/ml_inference/occupant.py): the ``learning``
scenario of the issue.

``python -m services.ml_inference`` with its default model. Each round starts from the first
model with no corrections, then posts the occupant's corrections (``POST /corrections`` with the
situation's inputs: delay, noise and slips as the occupant makes them) and asks for an update
(``POST /train``) after 10, 30 and 100 of them, waiting for it to finish. After each: the mean
absolute error of ``POST /predict`` against the occupant's preference on 500 fresh situations;
on the situations where occupant and rule agree, the error against the rule (its regression from
the first model); the active version's calibration error; the update's training time.
"""
from __future__ import annotations

import random
import time

import requests

from bench.fixtures import authorization, install_default_model, start_service, write_instance
from bench.harness import Context, Sample, Scenario, at_most
from bench.stack import instance_document
from testkit.helpers import wait_for

STEPS = (10, 30, 100)
TEST_CASES = 500


def setup(ctx: Context) -> tuple[requests.Session, str]:
    from services.ml_inference.occupant import preference  # torch: imported by the scenario that needs it
    from services.ml_inference.rule import comfort_rule
    from services.ml_inference.train import sample_inputs

    doc = instance_document(ctx.workdir, boards=0)
    doc.setdefault("config", {}).setdefault("ml", {})["train_after"] = 10_000  # only POST /train updates
    _, env = write_instance(ctx, doc)
    install_default_model(ctx, env)
    service = start_service(ctx, "ml_inference", doc, env, ready_timeout=180, healthy=True)
    session = requests.Session()
    session.headers.update(authorization(env))
    ctx.cleanup.callback(session.close)
    wait_for(lambda: session.get(service.url + "/models", timeout=10).json()["active"], 60,
             message="the first model recorded as a version")
    rng = random.Random(99)
    cases = [sample_inputs(rng) for _ in range(TEST_CASES)]
    ctx.note(f"occupant: +25 points when humid, closed when loud, ≤ 60 % when cold outside; MAE on {TEST_CASES} "
             "situations the model never saw; rule regression on those where the occupant agrees with the rule, "
             "against the first model; training_s: fine-tuning time of the update after 100 corrections, "
             "as the service records it (one torch thread)")
    return session, service.url, cases, [preference(c) for c in cases], [comfort_rule(c)[0] for c in cases]


def _mae(session: requests.Session, url: str, cases, truth) -> list[float]:
    answer = session.post(url + "/predict", json=[c.to_dict() for c in cases], timeout=30).json()
    return [abs(p["position"] - t) for p, t in zip(answer["predictions"], truth, strict=True)]


def _wait_update(session: requests.Session, url: str, before: int, deadline_s: float = 120.0) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        learning = session.get(url + "/model", timeout=10).json()["learning"]
        if learning["updates"] > before and not learning["training"]:
            return learning
        time.sleep(0.05)  # polling a status with a deadline, not synchronising on time
    raise TimeoutError("the model update did not finish")


def run(ctx: Context, fixture) -> Sample:
    from services.ml_inference.occupant import Occupant
    from services.ml_inference.train import sample_inputs

    session, url, cases, wanted, rule = fixture
    versions = session.get(url + "/models", timeout=10).json()["versions"]
    first = next(v["version"] for v in versions if v["parent"] is None)
    session.post(f"{url}/models/{first}/activate", timeout=30).raise_for_status()
    session.delete(url + "/corrections", timeout=30).raise_for_status()
    agree = [i for i, (w, r) in enumerate(zip(wanted, rule, strict=True)) if abs(w - r) < 1e-6]

    def errors() -> tuple[float, float]:
        mae = sum(_mae(session, url, cases, wanted)) / len(cases)
        rule_mae = sum(_mae(session, url, [cases[i] for i in agree], [rule[i] for i in agree])) / len(agree)
        return mae, rule_mae

    figures: dict[str, float] = {}
    figures["mae_before"], rule_before = errors()
    rng, occupant = random.Random(7), Occupant(seed=8)
    posted, training = 0, []
    for target in STEPS:
        while posted < target:
            inputs = sample_inputs(rng)
            position, delay = occupant.correct(inputs)
            session.post(url + "/corrections", json={"window": "window", "source": "occupant", "position": position,
                                                     "at": time.time() - delay, "inputs": inputs.to_dict()},
                         timeout=10).raise_for_status()
            posted += 1
        updates = session.get(url + "/model", timeout=10).json()["learning"]["updates"]
        session.post(url + "/train", timeout=10)
        newest = _wait_update(session, url, updates)["last_update"]
        training.append(float(newest.get("training_s") or 0.0))
        if newest["status"] == "rejected":
            ctx.note(f"after {target} corrections the candidate was rejected: {newest['reason']}")
        figures[f"mae_after_{target}"], rule_mae = errors()
        figures[f"rule_regression_{target}"] = rule_mae - rule_before
    active = session.get(url + "/model", timeout=10).json()["learning"]
    figures["calibration_error"] = float((active.get("validation") or {}).get("ece") or 0.0)
    figures["mae_ratio_30"] = figures["mae_after_30"] / figures["mae_before"]
    figures["training_s"] = training[-1]
    figures["training_s_max"] = max(training)
    return Sample(latencies_s=training, sent=len(training), received=len(training), duration_s=sum(training),
                  figures=figures)


SCENARIO = Scenario(
    "ml_learning", title="learning: a simulated occupant's corrections (ml_inference, POST /train)",
    setup=setup, run=run,
    targets={"mae_ratio_30": at_most(0.5), "mae_after_100": at_most(8.0), "rule_regression_100": at_most(3.0),
             "training_s_max": at_most(2.0)},
    quick={}, full={}, rounds={"quick": 1, "full": 3},
    figures=("mae_before", "mae_after_10", "mae_after_30", "mae_after_100", "rule_regression_30",
             "calibration_error", "training_s"),
)
