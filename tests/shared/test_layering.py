"""No Flask below app.py: the domain cores import in a fresh interpreter without flask or werkzeug.

Each service is a thin ``app.py`` over plain-Python domain objects (docs/architecture.md, "Where
the code lives"); a core that imported the web layer (say ``shared.web`` for an error class)
would pull Flask in again. The list is explicit, and every service module that is not a route
module is on it, so a new core is checked from the day it is added.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB_PACKAGES = ("flask", "werkzeug")
ROUTE_MODULES = {"app", "page", "__main__", "__init__"}
"""A service's route layer (``app.py``, the aggregator's status page) and launcher: the only service
modules that may import Flask."""

CORE_MODULES = (
    # the shared plain-Python parts the cores stand on
    "shared.clock", "shared.commands", "shared.config", "shared.device_table", "shared.devices",
    "shared.error_log", "shared.errors", "shared.metrics", "shared.sse", "shared.logs",
    "shared.stream_positions", "shared.bridge_report", "shared.identity", "shared.handler_core",
    # serial_handler
    "services.serial_handler.handler", "services.serial_handler.link", "services.serial_handler.lines",
    "services.serial_handler.devices", "services.serial_handler.commands",
    # http_poller
    "services.http_poller.poller", "services.http_poller.fetch", "services.http_poller.schedule",
    "services.http_poller.values", "services.http_poller.profiles",
    # state_aggregator
    "services.state_aggregator.aggregator", "services.state_aggregator.automation",
    "services.state_aggregator.automation_core",
    "services.state_aggregator.cache", "services.state_aggregator.commands",
    "services.state_aggregator.handlers", "services.state_aggregator.history", "services.state_aggregator.registry",
    "services.state_aggregator.routing",
    # ml_inference
    "services.ml_inference.service", "services.ml_inference.automations", "services.ml_inference.inputs",
    "services.ml_inference.model", "services.ml_inference.policy", "services.ml_inference.recommender",
    "services.ml_inference.rule", "services.ml_inference.train",
    "services.ml_inference.corrections", "services.ml_inference.versions", "services.ml_inference.learning",
    "services.ml_inference.learner", "services.ml_inference.learning_metrics", "services.ml_inference.occupant",
    # the bridge has no web layer at all
    "bridge.bridge",
)

# Imports each module in turn and names the first one after which a web package is loaded.
_PROBE = """
import importlib, json, sys
web = {web!r}
for name in {modules!r}:
    importlib.import_module(name)
    loaded = sorted(k for k in sys.modules if k.split(".")[0] in web)
    if loaded:
        print(json.dumps({{"module": name, "loaded": loaded[:5]}}))
        break
else:
    print(json.dumps(None))
"""


def test_the_cores_import_without_flask_or_werkzeug():
    probe = _PROBE.format(web=WEB_PACKAGES, modules=CORE_MODULES)
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    culprit = json.loads(done.stdout.strip().splitlines()[-1])
    assert culprit is None, f"{culprit['module']} pulls in {culprit['loaded']}: no Flask below app.py"


def test_the_probe_would_notice_flask():
    """The check itself can fail: a route module does load Flask."""
    probe = _PROBE.format(web=WEB_PACKAGES, modules=("services.serial_handler.app",))
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert json.loads(done.stdout.strip().splitlines()[-1])["module"] == "services.serial_handler.app"


def test_every_service_module_below_the_routes_is_listed():
    found = set()
    for path in (ROOT / "services").glob("*/*.py"):
        if path.stem not in ROUTE_MODULES:
            found.add(f"services.{path.parent.name}.{path.stem}")
    for package in (ROOT / "services").glob("*/*/__init__.py"):  # sub-packages (http_poller/profiles)
        found.add(f"services.{package.parent.parent.name}.{package.parent.name}")
    assert found - set(CORE_MODULES) == set(), "add the new core module to CORE_MODULES"
