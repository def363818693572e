"""`python -m bench --quick|--full [--only NAME ...] [--profile]`: run the scenarios, write the report.

`make bench` is the quick form (about two minutes); `make bench-full` the long one. The report goes
to bench/results/ (latest.md, latest.json, one latency histogram PNG per scenario).
"""
from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from pathlib import Path

from bench import report
from bench.harness import Harness, Options
from bench.scenarios import discover

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick", help="short runs (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="the long form")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="scenario names or shell patterns (e.g. 'ceiling_*'); their baselines run too")
    p.add_argument("--rounds", type=int, help="measured rounds per scenario (default: the scenario's own)")
    p.add_argument("--profile", action="store_true",
                   help="when a target is missed, attach a cProfile summary of one extra round")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"report directory (default {RESULTS})")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG histograms")
    args = p.parse_args(argv)
    args.mode = args.mode or "quick"
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def select(names: list[str], patterns: list[str] | None) -> tuple[list[str], list[str]]:
    """Scenario names matching the patterns, and the patterns that matched nothing."""
    if not patterns:
        return names, []
    chosen, unmatched = [], []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern) or n == pattern]
        if not hits:
            unmatched.append(pattern)
        chosen += [n for n in hits if n not in chosen]
    return chosen, unmatched


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios, broken = discover()
    if args.list:
        for name, scenario in scenarios.items():
            print(f"{name:40} {scenario.title}")
        for module, error in broken.items():
            print(f"{module:40} (cannot be loaded: {error})")
        return 0
    names, unmatched = select(list(scenarios), args.only)
    if args.mode == "quick" and not args.only:
        names = [n for n in names if not scenarios[n].full_only]
    if unmatched:
        print(f"error: no scenario matches {', '.join(unmatched)}; known: {', '.join(scenarios)}", file=sys.stderr)
        return 2
    machine = report.machine()
    started = time.perf_counter()
    harness = Harness(scenarios, Options(mode=args.mode, rounds=args.rounds, profile=args.profile))
    results = harness.run(names)
    results += report.broken_results(broken)
    written = report.write(results, args.out, args.mode, plots=not args.no_plots, machine_info=machine)
    print(f"\n{len(results)} scenario(s) in {time.perf_counter() - started:.0f} s; report: {written['md']}")
    for r in results:
        if r.status != "ok":
            print(f"  {r.name}: {r.reason or r.status}")
        elif r.missed:
            print(f"  {r.name}: MISSED {', '.join(r.missed)}")
    # A missed target is a finding, not a crash: the exit status says only whether the bench ran.
    return 1 if any(r.status == "error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
