"""The hardware-free firmware modules under real MicroPython (WebAssembly port on Node.js).

firmware/wasm/exchange.py drives protocol handling, command handling, scheduling (across the
tick wrap) and window motion planning through a scripted exchange. It runs once under CPython
and once under MicroPython; the outputs must match line by line. This is what catches
CPython-only code in the firmware. MicroPython's dicts do not keep insertion order and its float
repr may differ in the last digit, so lines are compared as parsed JSON with a float tolerance.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "firmware" / "esp32" / "sensorhub"
SCRIPT = ROOT / "firmware" / "wasm" / "exchange.py"
RUNNER = ROOT / "firmware" / "wasm" / "run_micropython.mjs"
NPM_PACKAGE = ROOT / ".node" / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed: MicroPython (WebAssembly) cannot run")


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9,
                                                                                              abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


def run_cpython() -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    out = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def run_micropython() -> list[dict]:
    if not NPM_PACKAGE.is_dir():
        pytest.fail("MicroPython WebAssembly is not installed under .node/: run `make micropython` "
                    "(npm install --prefix .node @micropython/micropython-webassembly-pyscript)")
    proc = subprocess.run([NODE, str(RUNNER), str(PACKAGE), str(SCRIPT)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"MicroPython failed:\n{proc.stderr}\n--- stdout ---\n{proc.stdout[-2000:]}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_scripted_exchange_gives_the_same_lines_under_micropython_and_cpython():
    expected = run_cpython()
    got = run_micropython()
    kinds = {m["type"] for m in expected}
    assert {"hello", "status", "sensor", "ack", "error", "alert", "window", "event", "trace"} <= kinds
    assert len(expected) > 60
    for i, (want, have) in enumerate(zip(expected, got, strict=False)):
        assert same(want, have), f"line {i} differs:\n CPython:     {want}\n MicroPython: {have}"
    assert len(got) == len(expected)


def test_runner_reports_python_errors_with_a_nonzero_exit(tmp_path):
    if not NPM_PACKAGE.is_dir():
        pytest.fail("MicroPython WebAssembly is not installed under .node/: run `make micropython`")
    script = tmp_path / "boom.py"
    script.write_text("from sensorhub.protocol import encode\nprint(encode({'a': 1}))\nraise ValueError('boom')\n")
    proc = subprocess.run([NODE, str(RUNNER), str(PACKAGE), str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "boom" in proc.stderr
    assert "{\"a\":1}" in proc.stdout or "{\"a\": 1}" in proc.stdout
