"""The outbox when its file fails: an unreadable file is set aside, a disk that refuses writes
turns it into a bounded memory queue until the file can be written again. Real SQLite errors
throughout: SQLite's own page limit answers SQLITE_FULL exactly as a full disk does, through the
same code path (testkit/full_disk.py); a directory where SQLite needs a file makes it
unable to open one. tests/chaos/test_bridge_faults.py does the same to a running bridge."""
from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from bridge.outbox import CORRUPT, DISK_FULL, KEEP, NOT_WRITABLE, Outbox
from testkit.full_disk import outbox_disk_full


class Reports:
    """What the outbox said through its callbacks."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def problem(self, code: str, message: str) -> None:
        self.said.append(code)

    def recovered(self) -> None:
        self.said.append("recovered")


def open_box(path: Path, reports: Reports, **kwargs) -> Outbox:
    return Outbox(path, on_problem=reports.problem, on_recovered=reports.recovered, **kwargs)


def rows_in_file(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [topic for (topic,) in db.execute("SELECT topic FROM outbox ORDER BY seq")]


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_random_bytes_are_set_aside_and_a_fresh_outbox_starts(tmp_path, caplog):
    path = tmp_path / "o.sqlite3"
    garbage = os.urandom(64 * 1024)
    path.write_bytes(garbage)
    reports = Reports()
    box = open_box(path, reports)
    [aside] = box.set_aside
    assert aside.name.startswith("o.sqlite3.corrupt-") and aside.read_bytes() == garbage  # kept as it was
    assert reports.said == [CORRUPT] and len(box) == 0 and box.problem is None
    assert errors(caplog) == [f"outbox: {path} was unreadable (file is not a database); set aside as {aside.name} "
                              "(kept), 0 message(s) recovered from it; starting a fresh outbox"]
    box.put("e", b"1", 1, False, KEEP)
    box.close()
    assert rows_in_file(path) == ["e"]


def test_what_can_still_be_read_is_kept(tmp_path):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    for n in range(400):
        box.put(f"t/{n}", bytes(300), 1, False, KEEP)
    box.close()
    data = bytearray(path.read_bytes())
    data[19 * 4096:20 * 4096] = b"\xff" * 4096  # one leaf page of the table in the middle destroyed
    path.write_bytes(bytes(data))
    box = Outbox(path)
    salvaged = [m.topic for m in box.pending(limit=1000)]
    assert 0 < len(salvaged) < 400 and salvaged == [f"t/{n}" for n in range(len(salvaged))]
    assert len(box.set_aside) == 1 and box.set_aside[0].read_bytes() == bytes(data)
    assert box.put("new", b"", 1, False, KEEP) > len(salvaged)  # numbering goes on after them
    box.close()
    assert rows_in_file(path) == [*salvaged, "new"]  # the fresh file holds them


def test_a_database_that_is_not_an_outbox_is_set_aside(tmp_path):
    path = tmp_path / "o.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE outbox (what TEXT)")
    box = Outbox(path)
    assert len(box.set_aside) == 1 and len(box) == 0
    box.close()


def test_a_full_disk_keeps_messages_in_memory_and_the_file_catches_up(tmp_path, caplog):
    path = tmp_path / "o.sqlite3"
    reports = Reports()
    box = open_box(path, reports, max_messages=30, retry_s=0.0)
    box.put("e/0", b"x", 1, False, KEEP)
    assert len(box) == 1
    outbox_disk_full(box)
    for n in range(1, 40):  # more than the bound while the disk is full: still bounded, oldest out first
        box.put(f"e/{n}", b"x" * 2000, 1, False, KEEP)
    held = box.pending(limit=100)
    assert box.problem == "data disk full (database or disk is full)"
    assert [m.topic for m in held] == [f"e/{n}" for n in range(10, 40)]
    assert box.stats()["dropped_keep"] == 10 and box.stats()["on_disk"] is False
    box.ack([m.seq for m in held[:10]])  # delivering from memory goes on
    assert len(box) == 20
    assert reports.said == [DISK_FULL]
    assert errors(caplog)[-1] == ("outbox: data disk full (database or disk is full); keeping messages in "
                                  "memory until space returns")  # the real error, not a failed ROLLBACK
    assert rows_in_file(path) == ["e/0"]  # untouched meanwhile

    outbox_disk_full(box, False)
    assert len(box) == 20  # the next flush retries (retry_s=0) and rewrites the file
    assert reports.said == [DISK_FULL, "recovered"] and box.problem is None
    assert rows_in_file(path) == [m.topic for m in box.pending(limit=100)]
    box.put("after", b"", 1, False, KEEP)
    box.flush()
    assert rows_in_file(path)[-1] == "after"  # written to the file again
    assert not any(r.exc_info for r in caplog.records)
    box.close()


def test_an_outbox_emptied_by_delivery_on_a_still_full_disk_does_not_flap(tmp_path, caplog):
    reports = Reports()
    box = open_box(tmp_path / "o.sqlite3", reports, retry_s=0.0)
    outbox_disk_full(box)
    box.put("e", b"x" * 5000, 1, False, KEEP)
    box.ack([m.seq for m in box.pending()])
    for _ in range(3):  # every flush retries (retry_s=0): the empty rewrite would fit, the disk has no room
        box.flush()
    assert box.problem is not None and reports.said == [DISK_FULL]
    box.close()


def test_retries_wait_and_stay_quiet(tmp_path, caplog):
    box = Outbox(tmp_path / "o.sqlite3", retry_s=3600.0)
    outbox_disk_full(box)
    for n in range(20):
        box.put(f"e/{n}", b"x" * 5000, 1, False, KEEP)
        box.flush()
    outbox_disk_full(box, False)
    box.put("more", b"", 1, False, KEEP)
    box.flush()
    assert box.problem is not None  # not before retry_s has passed
    assert len(errors(caplog)) == 1
    box._retry_at = 0.0  # the hour has passed
    box.flush()
    assert box.problem is None
    box.close()


def test_a_file_that_cannot_be_opened_at_start_is_opened_later_with_the_rows_it_held(tmp_path, caplog):
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    for n in range(3):
        box.put(f"old/{n}", b"", 1, False, KEEP)
    box.close()
    (tmp_path / "o.sqlite3-wal").mkdir()  # SQLite cannot open the WAL: the file cannot be opened at all
    reports = Reports()
    box = open_box(path, reports, retry_s=0.0)
    assert reports.said == [NOT_WRITABLE] and "unable to open database file" in box.problem
    box.put("new", b"", 1, False, KEEP)
    assert [m.topic for m in box.pending()] == ["new"]  # delivered meanwhile from memory
    (tmp_path / "o.sqlite3-wal").rmdir()
    held = box.pending()
    assert [m.topic for m in held] == ["new", "old/0", "old/1", "old/2"]  # the older rows after, none lost
    assert len({m.seq for m in held}) == 4 and reports.said == [NOT_WRITABLE, "recovered"]
    box.close()
    assert rows_in_file(path) == ["new", "old/0", "old/1", "old/2"]


def test_stopping_while_the_disk_is_full_says_what_is_lost(tmp_path, caplog):
    box = Outbox(tmp_path / "o.sqlite3", retry_s=3600.0)
    outbox_disk_full(box)
    box.put("e", b"x" * 5000, 1, False, KEEP)
    box.flush()
    box.close()
    assert errors(caplog)[-1].startswith("outbox: stopping while data disk full")


@pytest.mark.parametrize("max_messages", [0, -1])
def test_a_bound_below_one_is_refused(tmp_path, max_messages):
    with pytest.raises(ValueError, match="max_messages"):
        Outbox(tmp_path / "o.sqlite3", max_messages=max_messages)
