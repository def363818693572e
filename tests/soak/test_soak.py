"""Soak: the whole connector for minutes under steady readings, motion, a broker restart and a
pulled USB cable. Nothing is lost, nothing leaks, nobody has to step in.

Not part of `make test` (marker ``soak``); `make soak` runs it. ``SOAK_SECONDS`` sets the length
(default 300).
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

from testkit.connector import ConnectorStack
from testkit.helpers import wait_for
from testkit.mqtt_watch import Watcher

pytestmark = pytest.mark.soak

BASE = "IoT2mqtt/v1/instances/sensor_hub_01"
SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
RSS_GROWTH_LIMIT_KB = 60_000
MOTION_STATE = f"{BASE}/devices/living_motion/state"


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def test_connector_runs_for_minutes_without_loss_leaks_or_help(tmp_path: Path):
    stack = ConnectorStack(tmp_path, interval_ms=50)  # 20 readings/s from the board, all the time
    watcher = Watcher(stack.broker.port, [f"{BASE}/#"], client_id="soak-watcher", persistent=True).start()
    try:
        watcher.wait(f"{BASE}/status", lambda p: p == b"online", timeout=60)
        pids = [p.pid for p in stack.processes]
        start_rss = {pid: rss_kb(pid) for pid in pids}
        events_topic = f"{BASE}/devices/living_motion/events"
        toggles = 0
        deadline = time.monotonic() + SECONDS
        pace = threading.Event()
        outage_at, unplug_at = SECONDS * 0.3, SECONDS * 0.6
        began = time.monotonic()
        did_outage = did_unplug = False
        while time.monotonic() < deadline:
            elapsed = time.monotonic() - began
            if not did_outage and elapsed >= outage_at:
                stack.broker.stop()
                pace.wait(5)  # the outage lasts five seconds of board time
                stack.broker.start()
                did_outage = True
            if not did_unplug and elapsed >= unplug_at:
                # A pulled cable powers the board off: what it senses meanwhile is gone with it.
                # The host must notice and take it back by itself; only then does motion resume.
                assert stack.emulator.control({"fault": "unplug", "seconds": 2})["ok"]
                wait_for(lambda: watcher.last_json(MOTION_STATE)["state"].get("online") is False, timeout=30,
                         message="the unplugged board's devices offline on MQTT")
                wait_for(lambda: watcher.last_json(MOTION_STATE)["state"].get("online") is True, timeout=60,
                         message="the board back online by itself")
                did_unplug = True
            assert stack.emulator.control({"motion": toggles % 2 == 0})["ok"]
            toggles += 1
            pace.wait(0.5)  # the board's pace, not a synchronisation
        assert stack.emulator.control({"motion": False})["ok"]
        assert stack.emulator.control({"set": {"temperature": 23.5}})["ok"]

        watcher.wait(f"{BASE}/status", lambda p: p == b"online", timeout=60)
        watcher.wait(f"{BASE}/devices/living_temperature/state/temperature", lambda p: p == b"23.5", timeout=60)

        def motion_events() -> list[str]:
            return [json.loads(p)["event"] for p in watcher.on(events_topic)]

        # Every PIR change became an event on MQTT, the outage and the unplug included (at least once).
        expected = (toggles + 1) // 2
        try:
            wait_for(lambda: motion_events().count("motion_started") >= expected, timeout=60)
        except AssertionError:
            pytest.fail(f"{motion_events().count('motion_started')} motion_started on MQTT, {expected} expected")
        online = watcher.last_json(MOTION_STATE)
        assert online["state"].get("online", True) is True

        growth = {pid: rss_kb(pid) - start_rss[pid] for pid in pids}
        assert all(g < RSS_GROWTH_LIMIT_KB for g in growth.values()), f"RSS growth (kB) by process: {growth}"
        log = (tmp_path / "stack.log").read_text(errors="replace")
        assert "Traceback" not in log, log[log.index("Traceback") - 2000: log.index("Traceback") + 3000]
    finally:
        watcher.stop()
        stack.close()
