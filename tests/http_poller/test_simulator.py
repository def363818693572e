"""The network simulator's command line: several devices on one port, each on its own."""
from __future__ import annotations

import subprocess
import sys

import requests

from testkit.example import ROOT
from testkit.simulator import SimulatorProcess


def test_several_devices_under_one_port_each_with_its_own_state(cleanup):
    sim = cleanup.add(SimulatorProcess("json", "--count", "3", "--no-drift"))
    assert [u.rsplit("/", 1)[1] for u in sim.urls] == ["d0", "d1", "d2"]
    sim.set({"temperature": 30.0}, url=sim.urls[1])
    readings = [requests.get(u, timeout=5).json()["temperature"] for u in sim.urls]
    assert readings == [21.0, 30.0, 21.0]
    sim.fault("error", url=sim.urls[2])
    assert requests.get(sim.urls[2], timeout=5).status_code == 500
    assert sim.state(url=sim.urls[0])["requests"] == 1


def test_only_loopback_is_served():
    result = subprocess.run([sys.executable, "-m", "firmware.emulator.network", "--profile", "json",
                             "--host", "192.0.2.1"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "must be a loopback address" in result.stderr
