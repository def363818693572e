"""Two malloc arenas per program (shared/malloc.py), set in the code so every way of starting one gets it."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from testkit.example import ROOT


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")
def test_limit_arenas_bounds_the_arenas_of_many_threads():
    # Threads that allocate at the same moment each get an arena of their own, up to 8 per core;
    # glibc's malloc_info lists them. In a fresh process, as the programs call it first thing.
    code = """
import ctypes, os, sys, tempfile, threading
from shared.malloc import limit_arenas
assert limit_arenas(2)
barrier = threading.Barrier(16)
def churn():
    barrier.wait()
    for _ in range(2000):
        bytearray(4096 * 8)
threads = [threading.Thread(target=churn) for _ in range(16)]
[t.start() for t in threads]; [t.join() for t in threads]
libc = ctypes.CDLL(None)
libc.fdopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.TemporaryFile() as f:
    stream = libc.fdopen(os.dup(f.fileno()), b"w")
    libc.malloc_info(0, stream); libc.fclose(stream)
    f.seek(0)
    print(f.read().decode().count("<heap nr="))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 1 <= int(out.stdout) <= 2
