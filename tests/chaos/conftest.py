"""The chaos suite attacks the bridge with the bridge suite's own parts: a broker of the test's
own, settings pointing at it, the fake aggregator, an in-process bridge and a watching subscriber
(tests/bridge/conftest.py). Re-exported here so that pytest finds them by name."""
from __future__ import annotations

from tests.bridge.conftest import (
    agg_port,
    aggregator,
    bridge_settings,
    broker,
    persistent_broker,
    start_bridge,
    watcher,
)

__all__ = ["agg_port", "aggregator", "bridge_settings", "broker", "persistent_broker", "start_bridge", "watcher"]
