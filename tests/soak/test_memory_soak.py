"""Memory soak: the connector under steady readings for ``SOAK_MEMORY_SECONDS`` (default 600, the
issue's ten minutes) must not grow.

Every program's memory is sampled every few seconds from ``/proc/<pid>/smaps_rollup``: PSS (what
the budget counts) and its anonymous memory (heap, Python's objects: where a leak grows), which
does not move when other processes on the machine start or stop sharing library pages with ours. The first half is
warm-up: the event streams' replay histories fill (10,000 events) and the caches see every
device. Over the rest, the least-squares slope of each program's anonymous memory, times the
window, must stay under ``GROWTH_LIMIT_MIB``: a leak of one event's bytes per reading would be
several MiB. Not part of `make test` (marker ``soak``); `make soak` runs it.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from bench.footprint import anonymous_kib, pss_kib
from testkit.connector import ConnectorStack

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("SOAK_MEMORY_SECONDS", "600"))
SAMPLE_EVERY_S = 5.0
WARM_UP_SHARE = 0.5
"""The replay history of each event stream holds its last 10,000 events (shared/sse.py): at this
soak's 40-80 events a second it takes up to four minutes to fill, and until then it grows by
design (about 4 MiB; a run that measured from 150 s saw the serial handler and the aggregator
"grow" 2.2-2.4 MiB; tracemalloc of the serial handler found nothing else growing)."""
GROWTH_LIMIT_MIB = 3.0


def slope_per_s(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (time, value) samples."""
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / spread if spread else 0.0


def test_slope_per_s_reads_a_steady_growth():
    assert slope_per_s([(0, 10.0), (1, 12.0), (2, 14.0), (3, 16.0)]) == pytest.approx(2.0)
    assert slope_per_s([(0, 5.0), (1, 7.0), (2, 5.0), (3, 7.0), (4, 5.0), (5, 7.0)]) == pytest.approx(0.0, abs=0.3)


def test_no_program_grows_over_a_long_run(tmp_path: Path):
    stack = ConnectorStack(tmp_path, interval_ms=50, http=True, poll_interval=0.5)  # 20 lines/s, 2 sensors polled
    try:
        programs = {" ".join(p.args[1:]): p.pid for p in stack.processes}
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in programs}
        began = time.monotonic()
        pace = threading.Event()
        while (now := time.monotonic() - began) < SECONDS:
            for name, pid in programs.items():
                anonymous, pss = anonymous_kib(pid), pss_kib(pid)
                assert anonymous is not None and pss is not None, f"{name} is gone"
                samples[name].append((now, anonymous / 1024, pss / 1024))
            pace.wait(SAMPLE_EVERY_S)  # the sampling period, not a synchronisation
        lines, grown = [], {}
        for name, series in samples.items():
            measured = [s for s in series if s[0] >= SECONDS * WARM_UP_SHARE]
            window = measured[-1][0] - measured[0][0]
            growth = slope_per_s([(t, anonymous) for t, anonymous, _ in measured]) * window
            lines.append(f"{name}: anonymous {measured[0][1]:.1f} -> {measured[-1][1]:.1f} MiB, "
                         f"PSS {measured[0][2]:.1f} -> {measured[-1][2]:.1f} MiB, "
                         f"trend {growth:+.2f} MiB over {window:.0f} s")
            if growth > GROWTH_LIMIT_MIB:
                grown[name] = round(growth, 2)
        print("\n" + "\n".join(lines))
        assert not grown, f"grew over the soak (MiB by the trend of anonymous memory): {grown}\n" + "\n".join(lines)
        log = stack.log_path.read_text(errors="replace")
        assert "Traceback" not in log
    finally:
        stack.close()
