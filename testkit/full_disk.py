"""Full disks for tests, two ways.

* ``outbox_disk_full(box)``: SQLite's own page limit (``PRAGMA max_page_count``) on the outbox's
  connection. Every write that needs a new page then fails with SQLITE_FULL, "database or disk
  is full": the same error code and the same code path as a full filesystem, on any machine and
  without privileges. The limit also shows in the room the outbox sees (bridge/outbox.py).
* ``tiny_filesystem(path)``: a real tmpfs of a few hundred KiB, mounted there and filled with a
  file of zeros; only as root with the right to mount (a CI container may lack it): the test
  skips otherwise.
"""
from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.outbox import Outbox

SQLITE_DEFAULT_MAX_PAGES = 1_073_741_823


def outbox_disk_full(box: Outbox, full: bool = True) -> None:
    """No page beyond those the file has now (full), or SQLite's default limit again (space returns)."""
    with box._lock:  # the limit is per connection: the outbox's own, under its own lock
        assert box._db is not None, "the outbox has no open file"
        pages = box._db.execute("PRAGMA page_count").fetchone()[0] if full else SQLITE_DEFAULT_MAX_PAGES
        box._db.execute(f"PRAGMA max_page_count={pages}")


@contextlib.contextmanager
def tiny_filesystem(path: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` at ``path``, unmounted (lazily, if still busy) afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Write zeros into ``directory/filler`` until the filesystem says ENOSPC; returns the file."""
    filler = directory / "filler"
    block = bytes(4096)
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler
