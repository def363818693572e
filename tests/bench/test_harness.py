"""The bench harness runs a tiny scenario and writes a valid report (no figure is asserted:
performance is measured in bench/, never in tests)."""
from __future__ import annotations

import json
import queue
import threading

from bench import report
from bench.__main__ import main as bench_main
from bench.harness import (
    Harness,
    MessageTracker,
    NotAvailable,
    Options,
    Sample,
    Scenario,
    at_least,
    at_most,
    percentile,
    tree_usage,
)
from bench.scenarios import discover


def queue_round_trip(ctx, fixture) -> Sample:
    """Messages through a real thread and queue: enough to exercise timestamps and loss."""
    inbox: queue.Queue = queue.Queue()
    tracker = MessageTracker()

    def echo() -> None:
        while (key := inbox.get()) is not None:
            tracker.received(key)

    worker = threading.Thread(target=echo)
    worker.start()
    for key in range(ctx.params["messages"]):
        tracker.sent(key)
        inbox.put(key)
    tracker.sent("never delivered")
    inbox.put(None)
    worker.join(10)
    return tracker.sample()


def fixed_ceiling(ctx) -> dict[str, float]:
    return {"p50_ms": 1e-6}


def tiny_scenarios() -> dict[str, Scenario]:
    ceiling = Scenario("ceiling_queue", run=queue_round_trip, quick={"messages": 200})
    tiny = Scenario("tiny_queue", run=queue_round_trip, baseline="ceiling_queue", quick={"messages": 200},
                    targets={"loss_pct": at_most(0.0), "throughput_per_s": at_least(1.0)})
    versus_callable = Scenario("tiny_callable_baseline", run=queue_round_trip, baseline=fixed_ceiling,
                               quick={"messages": 50}, rounds={"quick": 1}, targets={"p50_ms": at_most(1e-9)})

    def missing(ctx):
        raise NotAvailable("services/nothing_here")

    absent = Scenario("tiny_missing", setup=missing, run=queue_round_trip)
    return {s.name: s for s in (ceiling, tiny, versus_callable, absent)}


def test_harness_runs_a_scenario_beside_its_ceiling_and_writes_a_valid_report(tmp_path):
    scenarios = tiny_scenarios()
    harness = Harness(scenarios, Options(mode="quick", rounds=2, verbose=False, profile=True))
    results = harness.run(["tiny_queue", "tiny_callable_baseline", "tiny_missing"])
    by_name = {r.name: r for r in results}
    assert list(by_name) == ["ceiling_queue", "tiny_queue", "tiny_callable_baseline", "tiny_missing"]

    tiny = by_name["tiny_queue"]
    assert tiny.status == "ok"
    assert tiny.rounds == 2
    assert tiny.figures["messages"] == 400            # 2 rounds x 200 delivered
    assert tiny.figures["loss_pct"] > 0               # one message per round is never delivered
    assert tiny.verdicts["loss_pct"] is False         # ... so the zero-loss target is missed
    assert tiny.verdicts["throughput_per_s"] is True
    assert tiny.baseline == "ceiling_queue"
    assert set(tiny.ratios) >= {"p50_ms", "p99_ms", "throughput_per_s"}
    assert tiny.figures["p50_ms"] <= tiny.figures["p99_ms"] <= tiny.figures["max_ms"]
    assert tiny.profile and "cumulative" in tiny.profile   # --profile attaches one on a miss
    assert "bench (in-process)" in tiny.processes

    other = by_name["tiny_callable_baseline"]
    assert other.baseline == "fixed_ceiling" and other.ratios["p50_ms"] > 1
    assert other.missed == ["p50_ms"]

    missing = by_name["tiny_missing"]
    assert missing.status == "not available"
    assert missing.reason == "not available yet: services/nothing_here"
    assert not missing.figures

    written = report.write(results, tmp_path, "quick")
    doc = json.loads(written["json"].read_text())
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu_model"]
    assert doc["date"] and doc["mode"] == "quick"
    assert {r["name"] for r in doc["results"]} == set(by_name)
    tiny_json = next(r for r in doc["results"] if r["name"] == "tiny_queue")
    assert tiny_json["targets"]["loss_pct"] == {"op": "<=", "bound": 0.0, "met": False}
    markdown = written["md"].read_text()
    assert "| scenario | figure | value | ceiling | ratio | target | result |" in markdown
    assert "**MISS**" in markdown and "pass" in markdown
    assert "not available yet: services/nothing_here" in markdown
    png = written["tiny_queue"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tiny_missing" not in written                # no histogram without numbers


def test_a_broken_scenario_is_reported_and_does_not_stop_the_others(tmp_path):
    def broken(ctx, fixture):
        raise RuntimeError("boom")

    scenarios = {"ok_one": Scenario("ok_one", run=queue_round_trip, quick={"messages": 10}, rounds={"quick": 1}),
                 "broken_one": Scenario("broken_one", run=broken)}
    results = Harness(scenarios, Options(verbose=False)).run(["broken_one", "ok_one"])
    assert [(r.name, r.status) for r in results] == [("broken_one", "error"), ("ok_one", "ok")]
    assert "RuntimeError: boom" in results[0].reason


def test_every_scenario_file_loads_and_names_known_baselines():
    scenarios, broken = discover()
    assert not broken, broken
    assert any(name.startswith("ceiling_") for name in scenarios)
    for scenario in scenarios.values():
        if isinstance(scenario.baseline, str):
            assert scenario.baseline in scenarios, f"{scenario.name}: unknown baseline {scenario.baseline}"


def test_command_line_rejects_an_unknown_scenario(capsys, tmp_path):
    assert bench_main(["--only", "no_such_scenario", "--out", str(tmp_path)]) == 2
    assert "no scenario matches no_such_scenario" in capsys.readouterr().err


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_process_usage_reads_proc_for_a_live_process():
    import os
    usage = tree_usage(os.getpid())
    assert usage.cpu_s > 0 and usage.peak_rss_mib > 0


def test_py_spy_stacks_are_summarised_by_own_and_total_samples():
    from bench.harness import summarise_stacks

    raw = ('process 1:"python x.py";main (x.py:1);work (x.py:5) 30\n'
           'process 1:"python x.py";main (x.py:1);idle (x.py:9) 10\n'
           "garbage line\n")
    samples, text = summarise_stacks(raw)
    assert samples == 40
    first = text.splitlines()[1]
    assert "work (x.py:5)" in first and "75.0" in first
    assert "main (x.py:1)" in text and "process" not in text


def test_shared_fixtures_live_for_their_group_and_are_released_before_the_next():
    events: list[str] = []

    def fixture_of(key: str):
        def setup(ctx):
            def factory(scope):
                events.append(f"start {key}")
                scope.cleanup.callback(events.append, f"stop {key}")
                assert scope.workdir.is_dir()
                return key
            return ctx.shared(key, factory)
        return setup

    def run(ctx, fixture) -> Sample:
        events.append(f"run {ctx.scenario.name} with {fixture}")
        return Sample()

    scenarios = {name: Scenario(name, setup=fixture_of(key), run=run, warmup=False, rounds={"quick": 1})
                 for name, key in (("alpha_one", "a"), ("alpha_two", "a"), ("beta_one", "b"))}
    Harness(scenarios, Options(verbose=False)).run(list(scenarios))
    assert events == ["start a", "run alpha_one with a", "run alpha_two with a", "stop a",
                      "start b", "run beta_one with b", "stop b"]
