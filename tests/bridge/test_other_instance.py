"""Two instances configured with the same aggregator port: the bridge refuses the other
instance's aggregator (never ``online``, its devices never published, the reason logged once)
and serves as soon as its own aggregator holds the port."""
from __future__ import annotations

import logging
from typing import Any

from services.state_aggregator.aggregator import StateAggregator
from services.state_aggregator.app import create_app
from shared.config import Settings
from shared.server import ThreadedServer, run_in_thread
from testkit.helpers import free_port, wait_for
from tests.bridge.conftest import BASE

STATUS = f"{BASE}/status"


class RealAggregator:
    """The state aggregator of ``settings`` on loopback ``port`` (its handlers need not run)."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.aggregator = StateAggregator(settings, follower_backoff=(0.05, 0.5))
        self.server: ThreadedServer | None = run_in_thread(create_app(settings, self.aggregator), port=port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.aggregator.stop()
            self.server = None


def test_the_bridge_refuses_another_instances_aggregator_until_its_own_appears(
        make_settings, bridge_settings, agg_port, start_bridge, watcher, cleanup, caplog):
    caplog.set_level(logging.WARNING)
    # Handlers of both instances on ports nobody uses: only the aggregators matter here.
    handlers: dict[str, Any] = {name: {"port": free_port()} for name in ("serial_handler", "http_poller",
                                                                        "ml_inference")}
    services = {"state_aggregator": {"port": agg_port}, **handlers}
    other = make_settings({"instance_id": "other_hub", "config": {"services": services}})
    theirs = cleanup.add(RealAggregator(other, agg_port))
    bridge = start_bridge(overrides={"config": {"services": handlers}})
    follower = bridge.state._follower
    wait_for(lambda: follower.failures >= 3, 15, message="several refused attempts at the stream")
    watcher.wait(STATUS, lambda p: p == b"offline")  # connected to MQTT, nothing of ours to serve
    reason = (f"http://127.0.0.1:{agg_port} belongs to instance 'other_hub', not 'sensor_hub_01' "
              "(two instances configured with the same port?)")
    wait_for(lambda: any(reason in r.getMessage() and r.name == "bridge.state" for r in caplog.records), 15,
             message="the refusal in the bridge's log")
    assert follower.refused == reason and not bridge.ctx.aggregator_ready
    assert b"online" not in watcher.on(STATUS)
    assert not [t for t, _, _ in watcher.messages if t.startswith(f"{BASE}/devices/")]  # nothing of theirs
    logged = sorted(r.getMessage() for r in caplog.records if reason in r.getMessage())
    assert logged == [f"aggregator unreachable: {reason}", f"event stream aggregator refused: {reason}"]  # once each
    # The other instance goes away, ours takes the port: online.
    theirs.stop()
    cleanup.add(RealAggregator(bridge_settings(overrides={"config": {"services": handlers}}), agg_port))
    watcher.wait(STATUS, lambda p: p == b"online", timeout=20)
    wait_for(lambda: follower.connected, 15, message="the bridge following its own aggregator")
    assert follower.refused is None
