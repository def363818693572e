"""Ceiling: a raw pty write → pyserial read, the floor under every serial reading.

The bench writes a protocol-sized JSON line to the master side of a pseudo-terminal (where the
emulator writes) and a pyserial ``Serial`` on the slave path reads it in chunks and splits
the lines. One line at a time for latency; a paced stream for the throughput.
"""
from __future__ import annotations

import os
import pty
import threading
import time
import tty

import serial

from bench.harness import Context, MessageTracker, Sample, Scenario

LINE = ('{"type":"sensor","seq":%d,"uptime_s":60.0,"temperature":21.5,"humidity":40.2,"motion":false,'
        '"battery_v":3.92,"battery_pct":78,"sound_dbfs":-52.3}\n')


class PtyPair:
    def __init__(self, ctx: Context) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)
        self.master = master
        self.slave = slave
        self.port = serial.Serial(os.ttyname(slave), 115200, timeout=0.5)
        self.tracker = MessageTracker()
        self.arrived = threading.Event()
        self.running = True
        self.reader = threading.Thread(target=self._read, name="pty reader", daemon=True)
        self.reader.start()
        ctx.cleanup.callback(self.close)
        ctx.note("pyserial chunked reads (read(in_waiting)) split into lines on the slave side of a raw pty, "
                 "the writer on the master side, in one process")

    def _read(self) -> None:
        # Chunked reads split into lines: pyserial's readline() reads one byte per system call,
        # which caps it near 1,000 lines/s; a ceiling is what a careful reader can get.
        buffer = b""
        while self.running:
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError, TypeError):
                return
            if not data:
                continue
            at = time.perf_counter()
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self.tracker.received(int(line.split(b'"seq":', 1)[1].split(b",", 1)[0]), at)
            if lines:   # a chunk can end mid-line: only a whole line has arrived
                self.arrived.set()

    def write(self, key: int) -> None:
        self.tracker.sent(key)
        os.write(self.master, (LINE % key).encode())

    def close(self) -> None:
        self.running = False
        self.port.cancel_read()
        self.reader.join(2)
        self.port.close()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def latency_round(ctx: Context, pair: PtyPair) -> Sample:
    pair.tracker = MessageTracker()
    for key in range(ctx.params["lines"]):
        pair.arrived.clear()
        pair.write(key)
        pair.arrived.wait(2.0)
    return pair.tracker.sample()


def throughput_round(ctx: Context, pair: PtyPair) -> Sample:
    """As fast as the writer can go, waiting only when the pty buffer is full."""
    pair.tracker = MessageTracker()
    count = ctx.params["lines"]
    for key in range(count):
        while True:
            try:
                pair.write(key)
                break
            except BlockingIOError:
                time.sleep(0.0005)
    deadline = time.monotonic() + 30
    while pair.tracker.outstanding and time.monotonic() < deadline:
        pair.arrived.wait(1.0)
        pair.arrived.clear()
    return pair.tracker.sample()


SCENARIOS = [
    Scenario("ceiling_serial_latency", title="raw pty write → pyserial read, one line at a time",
             setup=PtyPair, run=latency_round, quick={"lines": 1000}, full={"lines": 10_000},
             figures=("p50_ms", "p90_ms", "p99_ms", "max_ms", "loss_pct")),
    Scenario("ceiling_serial_throughput", title="raw pty write → pyserial read, as fast as possible",
             setup=PtyPair, run=throughput_round, quick={"lines": 20_000}, full={"lines": 200_000},
             figures=("throughput_per_s", "loss_pct", "p50_ms", "p99_ms")),
]
