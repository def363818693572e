"""What a program builds at start is frozen out of the collector's way, once (shared/heap.py)."""
from __future__ import annotations

import subprocess
import sys

from testkit.example import ROOT


def test_settle_freezes_what_exists_once_and_leaves_later_objects_to_the_collector():
    # In a fresh process: freezing is for the whole interpreter, so never in the test runner's.
    code = """
import gc
from shared.heap import settle_after_start
kept = ["built at start", []]  # a list is always tracked by the collector
assert gc.get_freeze_count() == 0
assert settle_after_start() is True
frozen = gc.get_freeze_count()
assert frozen > 0
assert not any(o is kept for o in gc.get_objects())      # frozen: the collector never walks it
assert settle_after_start() is False                      # a second call does nothing
assert gc.get_freeze_count() == frozen
later = ["built after", []]
assert any(o is later for o in gc.get_objects())          # later objects are collected as ever
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
