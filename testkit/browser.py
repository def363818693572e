"""A real browser for tests and the bench: Debian's ``chromium`` driven by ``playwright-core``
(npm, installed under ``.browser/`` by ``scripts/ensure-chromium``, which ``make test`` runs)
through a small Node program, testkit/browser_driver.mjs, one JSON line each way.

    with Browser() as browser:
        browser.open("http://127.0.0.1:5003/")
        browser.wait("document.body.dataset.ready === 'true'")
        browser.eval("document.querySelectorAll('.row').length")

Every request the page makes is recorded (``log()``), and one to anything but loopback is
aborted and listed under ``blocked``; console messages and uncaught page errors are recorded too.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from testkit.example import ROOT

PLAYWRIGHT = ROOT / ".browser" / "node_modules" / "playwright-core"
DRIVER = Path(__file__).resolve().parent / "browser_driver.mjs"


class BrowserMissing(Exception):
    """What is not installed, and the command that installs it."""


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def missing() -> str | None:
    """Why a browser cannot be driven here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if chromium_path() is None:
        return "chromium is not installed: run `make browser` (scripts/ensure-chromium)"
    if not (PLAYWRIGHT / "index.mjs").is_file():
        return "playwright-core is not installed under .browser/: run `make browser` (scripts/ensure-chromium)"
    return None


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, stderr_path: Path | None = None) -> None:
        if problem := missing():
            raise BrowserMissing(problem)
        self._stderr = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(["node", str(DRIVER), str(PLAYWRIGHT), chromium_path()], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._next = 0
        self._lock = threading.Lock()

    def call(self, op: str, timeout: float = 60.0, **params: Any) -> Any:
        """One request to the driver; its value, or BrowserError with the browser's message."""
        with self._lock:
            self._next += 1
            request = {"id": self._next, "op": op, **params}
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            line = _readline(self.proc, timeout)
        answer = json.loads(line)
        if not answer.get("ok"):
            raise BrowserError(f"{op}: {answer.get('error')}")
        return answer.get("value")

    def open(self, url: str, **options: Any) -> str:
        return self.call("open", url=url, **options)

    def eval(self, expr: str) -> Any:
        return self.call("eval", expr=expr)

    def wait(self, expr: str, timeout: float = 10.0) -> Any:
        """Wait (the page asked every 20 ms) until ``expr`` is truthy; its value."""
        return self.call("wait", timeout=timeout + 10, expr=expr, timeout_ms=int(timeout * 1000))

    def log(self) -> dict[str, list[Any]]:
        return self.call("log")

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        self.call("screenshot", path=str(path), full_page=full_page)
        return path

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("close", timeout=20)
            except (BrowserError, OSError, TimeoutError, ValueError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._stderr is not subprocess.DEVNULL:
            self._stderr.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _readline(proc: subprocess.Popen, timeout: float) -> bytes:
    """A line from the driver within ``timeout`` s (a hung browser must not hang the test run)."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        proc.kill()
        raise TimeoutError(f"the browser driver did not answer within {timeout:.0f} s")
    if not result or not result[0]:
        raise BrowserError(f"the browser driver exited (status {proc.wait(5)})")
    return result[0]
