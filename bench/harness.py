"""The benchmark harness: scenarios, rounds, per-message timing, CPU/RSS per process, targets.

A scenario is one file in ``bench/scenarios/`` exposing ``SCENARIO`` (or ``SCENARIOS``, a list):

    SCENARIO = Scenario("e2e_command_round_trip", run=one_round, setup=start_stack,
                        baseline="ceiling_mqtt_qos1", targets={"p99_ms": at_most(30)})

``setup(ctx)`` starts what the rounds need (fixtures from ``bench.fixtures``, torn down by the
harness through ``ctx.cleanup``) and returns it; ``run(ctx, fixture)`` is one measured round
and returns a ``Sample``. The harness runs a warm-up round (discarded) and then N rounds, reads
the CPU time and peak RSS of every process the scenario tracks, and compares each figure with
the same figure of the scenario's baseline (its ceiling), run in the same invocation.

A scenario whose parts do not exist yet raises ``NotAvailable("what is missing")``: it is
reported as not available, never as a number.
"""
from __future__ import annotations

import contextlib
import cProfile
import io
import math
import os
import pstats
import resource
import signal
import statistics
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = 1024


class NotAvailable(Exception):
    """A part the scenario needs does not exist (yet); the message names it."""


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """A bound on one figure: ``value <op> bound``."""

    op: str  # "<=" or ">="
    bound: float

    def met(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {_fmt(self.bound)}"


def at_most(bound: float) -> Target:
    return Target("<=", bound)


def at_least(bound: float) -> Target:
    return Target(">=", bound)


# --------------------------------------------------------------------------- samples


@dataclass
class Sample:
    """What one round measured.

    ``latencies_s``: one entry per delivered message; ``sent``/``received``/``duplicates``
    count messages (loss = sent - received); ``duration_s`` is the wall time the messages
    took (throughput = received / duration); ``figures`` holds any other number by name.
    """

    latencies_s: list[float] = field(default_factory=list)
    sent: int = 0
    received: int = 0
    duplicates: int = 0
    duration_s: float = 0.0
    figures: dict[str, float] = field(default_factory=dict)


class MessageTracker:
    """Per-message timestamps: ``sent(key)`` when a message leaves, ``received(key)`` when it
    arrives (thread-safe enough for one sender and one receiver thread: dict writes are atomic).
    Keys must be unique per message; an unknown key counts as unexpected, a repeat as duplicate."""

    def __init__(self) -> None:
        self.sent_at: dict[Any, float] = {}
        self.received_at: dict[Any, float] = {}
        self.duplicates = 0
        self.unexpected = 0
        self.first_sent: float | None = None
        self.last_received: float | None = None

    def sent(self, key: Any, at: float | None = None) -> None:
        at = time.perf_counter() if at is None else at
        self.sent_at[key] = at
        if self.first_sent is None:
            self.first_sent = at

    def received(self, key: Any, at: float | None = None) -> None:
        at = time.perf_counter() if at is None else at
        if key in self.received_at:
            self.duplicates += 1
            return
        if key not in self.sent_at:
            self.unexpected += 1
            return
        self.received_at[key] = at
        self.last_received = at

    def has(self, key: Any) -> bool:
        return key in self.received_at

    @property
    def outstanding(self) -> int:
        return len(self.sent_at) - len(self.received_at)

    def sample(self, duration_s: float | None = None) -> Sample:
        latencies = [self.received_at[k] - self.sent_at[k] for k in self.received_at]
        if duration_s is None:
            if self.first_sent is not None and self.last_received is not None:
                duration_s = self.last_received - self.first_sent
            else:
                duration_s = 0.0
        return Sample(latencies_s=latencies, sent=len(self.sent_at), received=len(self.received_at),
                      duplicates=self.duplicates, duration_s=duration_s,
                      figures={"unexpected": float(self.unexpected)} if self.unexpected else {})


# --------------------------------------------------------------------------- processes


@dataclass
class ProcessUsage:
    cpu_s: float
    peak_rss_mib: float


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read().decode(errors="replace")
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after the last ")".
        fields = raw[raw.rfind(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn runs the app in a child worker)."""
    children = _children_map()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def read_usage(pid: int) -> ProcessUsage | None:
    """CPU seconds (user + system) and peak RSS (VmHWM) of one live process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS   # utime, stime (fields 14, 15)
    peak_kib = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            peak_kib = int(line.split()[1])
    return ProcessUsage(cpu, peak_kib / 1024)


def tree_usage(pid: int | list[int]) -> ProcessUsage:
    """Summed over the process(es) and their live descendants."""
    cpu, rss = 0.0, 0.0
    members = [m for p in ([pid] if isinstance(pid, int) else pid) for m in process_tree(p)]
    for member in members:
        usage = read_usage(member)
        if usage is not None:
            cpu += usage.cpu_s
            rss += usage.peak_rss_mib
    return ProcessUsage(cpu, rss)


def self_usage() -> ProcessUsage:
    """The bench process itself (the in-process part of a scenario: load generator, subscriber)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ProcessUsage(ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024)


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    """One benchmark: ``run(ctx, fixture) -> Sample`` is a round, after ``setup(ctx) -> fixture``.

    ``baseline`` names the ceiling scenario (run beside this one) or is a callable
    ``(ctx) -> dict[figure, value]``. Every figure is compared with the baseline's figure of the
    same name, unless ``baseline_figures`` is given: then only its figures are compared, each
    with the baseline figure it maps to (``{"max_zero_loss_per_s": "throughput_per_s"}``).
    ``quick``/``full`` are parameters ``ctx.params`` exposes for the mode in use; ``rounds``
    overrides the number of measured rounds per mode.
    """

    name: str
    run: Callable[[Context, Any], Sample]
    setup: Callable[[Context], Any] | None = None
    title: str = ""
    baseline: str | Callable[[Context], dict[str, float]] | None = None
    baseline_figures: dict[str, str] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    full: dict[str, Any] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=lambda: {"quick": 2, "full": 10})
    warmup: bool = True
    full_only: bool = False
    """Left out of ``--quick`` unless named with ``--only`` (a comparison, not a figure of the issue)."""
    figures: tuple[str, ...] = ()
    """Figures shown in the report table besides those with targets (default: a standard set)."""


class Context:
    """What a scenario gets: mode parameters, a scratch directory, cleanup, process tracking and
    fixtures shared across scenarios of one invocation (``ctx.shared(key, factory)``)."""

    def __init__(self, scenario: Scenario, mode: str, session: Session) -> None:
        self.scenario = scenario
        self.mode = mode
        self.params: dict[str, Any] = dict(scenario.quick if mode == "quick" else scenario.full)
        self.session = session
        self.cleanup = contextlib.ExitStack()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{scenario.name}-"))
        self.cleanup.callback(_rmtree, self.workdir)
        self.tracked: dict[str, list[int]] = {}
        self.notes: list[str] = []

    def track(self, name: str, pid: int) -> None:
        """Report CPU time and peak RSS of this process (and its children) under ``name``;
        processes tracked under the same name are one row (e.g. ``emulators``)."""
        pids = self.tracked.setdefault(name, [])
        if pid not in pids:
            pids.append(pid)

    def note(self, text: str) -> None:
        """A line printed under the scenario in the report (what was measured, caveats)."""
        self.notes.append(text)

    def shared(self, key: str, factory: Callable[[SharedScope], Any]) -> Any:
        """A fixture shared by the scenarios of this group in this invocation: ``factory(scope)``
        runs once; ``scope`` has ``cleanup``, ``workdir`` and ``track`` like a Context."""
        return self.session.shared(key, factory, group_of(self.scenario.name))

    @property
    def quick(self) -> bool:
        return self.mode == "quick"


class SharedScope:
    """Where a shared fixture lives: its own cleanup, scratch directory and tracked processes.

    A factory given to ``ctx.shared(key, factory)`` receives one of these (the same attributes
    the fixtures use on a Context). It is closed when the harness moves on to scenarios of
    another group (``ceiling``, ``serial``, ``aggregator``, ``mqtt``, ``e2e``: the name's first
    word), so idle rigs of one group do not run beside the next group's measurements."""

    def __init__(self, session: Session, key: str, group: str) -> None:
        self.session = session
        self.key = key
        self.group = group
        self.cleanup = contextlib.ExitStack()
        self.workdir = Path(tempfile.mkdtemp(prefix="shared-", dir=session.workdir))
        self.tracked: dict[str, list[int]] = {}

    def track(self, name: str, pid: int) -> None:
        pids = self.tracked.setdefault(name, [])
        if pid not in pids:
            pids.append(pid)

    def shared(self, key: str, factory: Callable[[Any], Any]) -> Any:
        return self.session.shared(key, factory, self.group)


class Session:
    """One invocation: holds the shared fixtures (each in its SharedScope) until they are
    released or ``close()``."""

    def __init__(self) -> None:
        self.cleanup = contextlib.ExitStack()
        self._shared: dict[str, tuple[Any, SharedScope]] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-session-"))
        self.cleanup.callback(_rmtree, self.workdir)

    def shared(self, key: str, factory: Callable[[Any], Any], group: str = "") -> Any:
        if key not in self._shared:
            scope = SharedScope(self, key, group)
            try:
                value = factory(scope)
            except BaseException:
                scope.cleanup.close()
                raise
            self._shared[key] = (value, scope)
        return self._shared[key][0]

    def release_groups_other_than(self, group: str) -> None:
        for key, (_, scope) in list(self._shared.items()):
            if scope.group != group:
                del self._shared[key]
                scope.cleanup.close()

    def close(self) -> None:
        for key in list(self._shared):
            _, scope = self._shared.pop(key)
            scope.cleanup.close()
        self.cleanup.close()


def group_of(name: str) -> str:
    return name.split("_", 1)[0]


def _rmtree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- results


DEFAULT_FIGURES = ("p50_ms", "p90_ms", "p99_ms", "max_ms", "throughput_per_s", "loss_pct")


@dataclass
class Result:
    name: str
    title: str
    status: str  # "ok", "not available", "error"
    reason: str = ""
    figures: dict[str, float] = field(default_factory=dict)
    shown: tuple[str, ...] = ()
    baseline: str | None = None
    baseline_figures: dict[str, float] = field(default_factory=dict)
    ceilings: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    verdicts: dict[str, bool] = field(default_factory=dict)
    processes: dict[str, dict[str, float]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    rounds: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    profile: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def missed(self) -> list[str]:
        return [name for name, ok in self.verdicts.items() if not ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "status": self.status, "reason": self.reason,
            "params": self.params, "rounds": self.rounds, "wall_s": round(self.wall_s, 3),
            "figures": {k: _round(v) for k, v in self.figures.items()},
            "baseline": self.baseline,
            "baseline_figures": {k: _round(v) for k, v in self.baseline_figures.items()},
            "ceilings": {k: _round(v) for k, v in self.ceilings.items()},
            "ratios": {k: _round(v) for k, v in self.ratios.items()},
            "targets": {k: {"op": t.op, "bound": t.bound, "met": self.verdicts.get(k)}
                        for k, t in self.targets.items()},
            "processes": {k: {f: _round(v) for f, v in d.items()} for k, d in self.processes.items()},
            "notes": self.notes, "profile": self.profile,
        }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise(samples: list[Sample]) -> tuple[dict[str, float], list[float]]:
    """Figures over all measured rounds: latency percentiles over every message, throughput
    as the median of the rounds, loss over all messages, other figures as round medians."""
    latencies = sorted(x * 1000 for s in samples for x in s.latencies_s)
    figures: dict[str, float] = {}
    if latencies:
        figures.update(p50_ms=percentile(latencies, 50), p90_ms=percentile(latencies, 90),
                       p99_ms=percentile(latencies, 99), max_ms=latencies[-1],
                       mean_ms=statistics.fmean(latencies))
    sent = sum(s.sent for s in samples)
    received = sum(s.received for s in samples)
    if sent:
        figures["messages"] = float(received)
        figures["loss_pct"] = 100.0 * max(0, sent - received) / sent
        figures["duplicates"] = float(sum(s.duplicates for s in samples))
    rates = [s.received / s.duration_s for s in samples if s.duration_s > 0 and s.received]
    if rates:
        figures["throughput_per_s"] = statistics.median(rates)
    names = {k for s in samples for k in s.figures}
    for name in sorted(names):
        values = [s.figures[name] for s in samples if name in s.figures]
        figures[name] = statistics.median(values)
    return figures, latencies


def _round(value: float) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(value, 4)


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


# --------------------------------------------------------------------------- running


@dataclass
class Options:
    mode: str = "quick"
    rounds: int | None = None
    profile: bool = False
    verbose: bool = True


class Harness:
    """Runs scenarios (each with its baseline, once per invocation) and collects ``Result``s."""

    def __init__(self, scenarios: dict[str, Scenario], options: Options) -> None:
        self.scenarios = scenarios
        self.options = options
        self.session = Session()
        self.results: dict[str, Result] = {}

    def log(self, text: str) -> None:
        if self.options.verbose:
            print(text, flush=True)

    def run(self, names: list[str]) -> list[Result]:
        """Results for ``names`` and their baselines. Baselines run first (so the groups do not
        interleave); the report lists each baseline before its first user."""
        shown: list[str] = []
        baselines: list[str] = []
        for name in names:
            baseline = self.scenarios[name].baseline if name in self.scenarios else None
            if isinstance(baseline, str) and baseline not in shown:
                shown.append(baseline)
                baselines.append(baseline)
            if name not in shown:
                shown.append(name)
        try:
            for name in baselines + [n for n in shown if n not in baselines]:
                self.session.release_groups_other_than(group_of(name))
                self.result(name)
        finally:
            self.session.close()
        return [self.results[n] for n in shown if n in self.results]

    def result(self, name: str) -> Result:
        if name not in self.results:
            scenario = self.scenarios.get(name)
            if scenario is None:
                self.results[name] = Result(name, name, "error", reason=f"unknown scenario {name!r}")
            else:
                self.results[name] = self._run_one(scenario)
        return self.results[name]

    def _run_one(self, scenario: Scenario) -> Result:
        mode = self.options.mode
        rounds = self.options.rounds or scenario.rounds.get(mode, 2)
        ctx = Context(scenario, mode, self.session)
        result = Result(scenario.name, scenario.title or scenario.name, "ok", targets=dict(scenario.targets),
                        params=dict(ctx.params))
        self.log(f"== {scenario.name} ({mode}, {rounds} round(s))")
        started = time.perf_counter()
        samples: list[Sample] = []
        try:
            with ctx.cleanup:
                fixture = scenario.setup(ctx) if scenario.setup else None
                if scenario.warmup:
                    scenario.run(ctx, fixture)
                before = {n: tree_usage(p) for n, p in ctx.tracked.items()}
                before_self = self_usage()
                measured_from = time.perf_counter()
                for index in range(rounds):
                    samples.append(scenario.run(ctx, fixture))
                    self.log(f"   round {index + 1}/{rounds} done")
                measured = time.perf_counter() - measured_from
                after = {n: tree_usage(p) for n, p in ctx.tracked.items()}
                after_self = self_usage()
                result.processes = {
                    (f"{n} ({len(pids)})" if len(pids) > 1 else n): {
                        "cpu_s": after[n].cpu_s - before[n].cpu_s,
                        "cpu_pct": 100 * (after[n].cpu_s - before[n].cpu_s) / measured if measured else 0.0,
                        "peak_rss_mib": after[n].peak_rss_mib}
                    for n, pids in ctx.tracked.items()}
                result.processes["bench (in-process)"] = {
                    "cpu_s": after_self.cpu_s - before_self.cpu_s,
                    "cpu_pct": 100 * (after_self.cpu_s - before_self.cpu_s) / measured if measured else 0.0,
                    "peak_rss_mib": after_self.peak_rss_mib}
                result.figures, result.latencies_ms = summarise(samples)
                result.rounds = rounds
                self._compare(scenario, ctx, result)
                if result.missed and self.options.profile:
                    busiest = sorted(ctx.tracked, key=lambda n: -(after[n].cpu_s - before[n].cpu_s))[:3]
                    result.profile = profile_round(scenario, ctx, fixture, busiest)
        except NotAvailable as exc:
            result.status, result.reason = "not available", f"not available yet: {exc}"
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
            result.status = "error"
            result.reason = f"{type(exc).__name__}: {exc}"
            self.log(traceback.format_exc())
        result.notes = ctx.notes
        result.wall_s = time.perf_counter() - started
        shown = scenario.figures or tuple(f for f in DEFAULT_FIGURES if f in result.figures)
        result.shown = tuple(dict.fromkeys(tuple(scenario.targets) + shown))
        self.log(f"   {result.status}{': ' + result.reason if result.reason else ''} ({result.wall_s:.1f} s)")
        return result

    def _compare(self, scenario: Scenario, ctx: Context, result: Result) -> None:
        baseline = scenario.baseline
        if isinstance(baseline, str):
            base = self.result(baseline)
            result.baseline = baseline
            result.baseline_figures = dict(base.figures) if base.status == "ok" else {}
        elif callable(baseline):
            result.baseline = getattr(baseline, "__name__", "baseline")
            result.baseline_figures = dict(baseline(ctx))
        # With an explicit mapping only the mapped figures are compared (e.g. a throughput
        # scenario's latencies under saturation mean something else than the ceiling's).
        compared = scenario.baseline_figures or {name: name for name in result.figures}
        for name, base_name in compared.items():
            base_value = result.baseline_figures.get(base_name)
            if name in result.figures and base_value is not None:
                result.ceilings[name] = base_value
                if base_value:
                    result.ratios[name] = result.figures[name] / base_value
        for name, target in scenario.targets.items():
            if name in result.figures and not math.isnan(result.figures[name]):
                result.verdicts[name] = target.met(result.figures[name])
            else:
                result.verdicts[name] = False


def profile_round(scenario: Scenario, ctx: Context, fixture: Any, busiest: list[str], top: int = 15) -> str:
    """One extra round, profiled, kept out of the measured rounds so it does not skew them.

    The in-process part (load generator, subscriber) under cProfile, top functions by
    cumulative time; and, when py-spy is installed, the ``busiest`` tracked processes (the
    services, in other processes and threads cProfile cannot see) sampled by ``py-spy record``,
    top functions by own and by total samples."""
    spies = start_spies(ctx, busiest)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        scenario.run(ctx, fixture)
    finally:
        profiler.disable()
        sampled = stop_spies(spies)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    parts = [f"== bench process (cProfile, cumulative)\n{out.getvalue().strip()}"]
    # --gil: only the thread holding the GIL is sampled, so the shares are of the CPU the process
    # spends in Python, not of threads waiting on a queue or a socket.
    parts += [f"== {name} (py-spy --gil, {total} samples of the thread running Python)\n{text}"
              for name, total, text in sampled]
    if not spies:
        parts.append("(py-spy is not installed: `pip install py-spy` to profile the services too)")
    return "\n\n".join(parts)


def _py_spy() -> str | None:
    import shutil
    import sys
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_spies(ctx: Context, names: list[str]) -> list[tuple[str, subprocess.Popen, Path]]:
    binary = _py_spy()
    if binary is None:
        return []
    spies = []
    for name in names:
        for pid in ctx.tracked.get(name, [])[:1]:   # one member of a group (e.g. one emulator) is enough
            out = ctx.workdir / f"py-spy-{pid}.txt"
            spy = subprocess.Popen([binary, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
                                    "--nonblocking", "--gil", "--rate", "250", "-o", str(out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            spies.append((name, spy, out))
    return spies


def stop_spies(spies: list[tuple[str, subprocess.Popen, Path]]) -> list[tuple[str, int, str]]:
    """Stop every py-spy (SIGINT makes it write its file) and summarise what each sampled."""
    for _, spy, _ in spies:
        spy.send_signal(signal.SIGINT)
    summaries = []
    for name, spy, out in spies:
        try:
            spy.wait(15)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)
        if out.exists():
            summaries.append((name, *summarise_stacks(out.read_text(errors="replace"))))
    return summaries


def summarise_stacks(raw: str, top: int = 12) -> tuple[int, str]:
    """py-spy's raw (collapsed) stacks → the functions with the most own and total samples."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        # The first frame names the process (its whole command line): not a function.
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    if not samples:
        return 0, "(no samples: the process was idle or could not be read)"
    lines = ["  own%  total%  function"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / samples:6.1f} {100 * total[frame] / samples:7.1f}  {frame}")
    lines.append("  (by total)")
    for frame, n in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        if frame not in own or own[frame] < n:
            lines.append(f"{100 * own.get(frame, 0) / samples:6.1f} {100 * n / samples:7.1f}  {frame}")
    return samples, "\n".join(lines)
