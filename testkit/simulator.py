"""``python -m firmware.emulator.network`` as a subprocess: simulated network sensors on loopback."""
from __future__ import annotations

import subprocess
import sys
from typing import Any

import requests

from testkit.example import ROOT


class SimulatorProcess:
    """``SimulatorProcess("esphome", "--no-drift")``: ``.url`` (``.urls`` with ``--count``), ``set()``,
    ``fault()``, ``state()``, ``stop()``."""

    def __init__(self, profile: str, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "firmware.emulator.network", "--profile", profile, *args],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.urls: list[str] = []
        self.base = ""
        while True:
            line = self.proc.stdout.readline().strip()
            if not line:
                self.proc.wait(10)
                raise RuntimeError(f"the simulator exited with {self.proc.returncode}")
            if line.startswith("HTTP "):
                self.base = line.split(" ", 1)[1]
            elif line.startswith("DEVICE "):
                self.urls.append(line.split(" ")[2])
            elif line == "READY":
                break
        self.urls = self.urls or [self.base]

    @property
    def url(self) -> str:
        return self.urls[0]

    def _control(self, what: str, body: dict[str, Any] | None = None, url: str | None = None) -> dict[str, Any]:
        target = f"{url or self.url}/_sim/{what}"
        if body is None:
            response = requests.get(target, timeout=10)
        else:
            response = requests.post(target, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def set(self, values: dict[str, Any], url: str | None = None) -> dict[str, Any]:
        return self._control("set", values, url)

    def fault(self, kind: str, url: str | None = None, **extra: Any) -> dict[str, Any]:
        return self._control("fault", {"fault": kind, **extra}, url)

    def state(self, url: str | None = None) -> dict[str, Any]:
        return self._control("state", None, url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()
