"""A service as a real process (``python -m services.<name>``), in a session of its own so a kill
takes the program and anything it started alike (a crash, an OOM kill)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from testkit.example import ROOT
from testkit.helpers import wait_for


class ServiceProcess:
    def __init__(self, module: str, url: str, env: dict[str, str], log: Path) -> None:
        self.module, self.url, self.env, self.log_path = module, url, env, log
        self.proc: subprocess.Popen | None = None

    def start(self, ready: str = "/health", timeout: float = 60.0) -> ServiceProcess:
        """Start and wait until ``ready`` answers at all (any status: a degraded service is up)."""
        return self.launch().wait_answering(ready, timeout)

    def launch(self) -> ServiceProcess:
        """Start, without waiting for anything (several programs started at once)."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module], cwd=ROOT, env=self.env, stdout=log,
                                         stderr=log, start_new_session=True)
        return self

    def wait_answering(self, ready: str = "/health", timeout: float = 60.0) -> ServiceProcess:
        wait_for(lambda: self._answers(ready), timeout, interval=0.05, message=f"{self.module} answering {ready}")
        return self

    def _answers(self, path: str) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.module} exited with {self.proc.returncode}: {self.log()[-2000:]}")
        requests.get(self.url + path, timeout=2)
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode
