"""Scenario files: each module exposes ``SCENARIO`` (or ``SCENARIOS``, a list) — see bench/README.md."""
from __future__ import annotations

import importlib
import pkgutil

from bench.harness import Scenario

ORDER = ("ceiling_", "serial_", "aggregator_", "mqtt_", "ml_", "e2e_", "container_")


def _rank(name: str) -> tuple[int, str]:
    for index, prefix in enumerate(ORDER):
        if name.startswith(prefix):
            return index, name
    return len(ORDER), name


def discover(package: str = __name__) -> tuple[dict[str, Scenario], dict[str, str]]:
    """Every scenario of every module in the package (ceilings first), and the modules that
    failed to import with their error (reported, so one broken file does not hide the rest)."""
    found: dict[str, Scenario] = {}
    broken: dict[str, str] = {}
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: _rank(i.name)):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{package}.{info.name}")
        except Exception as exc:  # noqa: BLE001 - reported in the bench output
            broken[info.name] = f"{type(exc).__name__}: {exc}"
            continue
        items = list(getattr(module, "SCENARIOS", []))
        if hasattr(module, "SCENARIO"):
            items.insert(0, module.SCENARIO)
        for scenario in items:
            if not isinstance(scenario, Scenario):
                broken[info.name] = f"{scenario!r} is not a bench.harness.Scenario"
                continue
            if scenario.name in found:
                broken[info.name] = f"scenario name {scenario.name!r} is used twice"
                continue
            found[scenario.name] = scenario
    ordered = dict(sorted(found.items(), key=lambda kv: _rank(kv[0])))
    return ordered, broken
