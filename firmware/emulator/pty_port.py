"""The board's end of a pseudo-terminal: what a USB-serial adapter looks like to the host.

The emulator keeps the slave side open itself, so the pty exists (and buffers) whether or not a
host has it open; the host opens the slave path (or the `--link` symlink) with pyserial.
"""
from __future__ import annotations

import asyncio
import os
import pty
import termios
import time
import tty
from collections.abc import Callable
from pathlib import Path

OUT_BUFFER_MAX = 64 * 1024   # like a UART TX buffer: beyond this, lines are lost (seq still used)
# Output nobody has read for this long is thrown away: a USB-serial adapter with no reader drops
# bytes, so a host that opens the port later must not be fed minutes-old readings.
STALE_AFTER_S = 5.0


class LinkInUse(Exception):
    """--link names something that is not a symlink (a real device or file): never replace it."""


class PtyPort:
    def __init__(self, link: Path | None, on_input: Callable[[bytes], None]) -> None:
        self.link = link
        self.on_input = on_input
        self.master: int | None = None
        self.slave: int | None = None
        self.path: str | None = None
        self.pending = bytearray()
        self.pending_since = 0.0
        self.dropped = 0
        self.writable = asyncio.Event()
        self.writable.set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_open(self) -> bool:
        return self.master is not None

    def open(self) -> str:
        if self.link is not None and os.path.lexists(self.link) and not self.link.is_symlink():
            raise LinkInUse(f"{self.link} exists and is not a symlink; refusing to replace it")
        self._loop = asyncio.get_running_loop()
        master, slave = pty.openpty()
        tty.setraw(slave)                 # no echo, no CR/LF translation, no line discipline
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        self.path = os.ttyname(slave)
        self.pending.clear()
        self.writable.set()
        self._loop.add_reader(master, self._readable)
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.link.with_name(self.link.name + ".tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.path)
            tmp.replace(self.link)       # atomic: a stale link is replaced, never missing
        return self.path

    def close(self) -> None:
        if self.master is None:
            return
        assert self._loop is not None
        self._loop.remove_reader(self.master)
        if self.pending:
            self._loop.remove_writer(self.master)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self.slave = None
        self.pending.clear()
        self.writable.set()
        self.remove_link()

    def remove_link(self) -> None:
        if self.link is not None and self.link.is_symlink():
            if self.path is None or os.readlink(self.link) == self.path:
                self.link.unlink(missing_ok=True)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return
        if data:
            self.on_input(data)

    def write(self, data: bytes) -> bool:
        """Queue bytes for the host; False when the line is lost (closed port or buffer full)."""
        if self.master is None:
            self.dropped += 1
            return False
        if self.pending and time.monotonic() - self.pending_since > STALE_AFTER_S:
            self.dropped += self.pending.count(b"\n")
            self.pending.clear()
        if self.pending:
            if len(self.pending) + len(data) > OUT_BUFFER_MAX:
                self.dropped += 1
                return False
            self.pending += data
            return True
        try:
            n = os.write(self.master, data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.dropped += 1
            return False
        if n < len(data):
            self.pending += data[n:]
            self.pending_since = time.monotonic()
            self.writable.clear()
            assert self._loop is not None
            self._loop.add_writer(self.master, self._flush)
        return True

    def _flush(self) -> None:
        try:
            n = os.write(self.master, bytes(self.pending))
        except BlockingIOError:
            return
        except OSError:
            n = len(self.pending)
        del self.pending[:n]
        if n:
            self.pending_since = time.monotonic()
        if not self.pending:
            assert self._loop is not None
            self._loop.remove_writer(self.master)
            self.writable.set()

    async def drain(self, high_water: int = 16 * 1024) -> None:
        """Wait until the output buffer is small again (used by bursts so they lose nothing)."""
        while self.master is not None and len(self.pending) > high_water:
            self.writable.clear()
            await self.writable.wait()
