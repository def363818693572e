"""A bounded, persistent outbox for QoS >= 1 publishes (SQLite in ``settings.data_dir``).

Every durable message is written here before it is handed to paho and deleted only when
paho's ``on_publish`` confirms the broker has it (PUBACK). So a broker outage, and a crash
or restart of the bridge itself, lose nothing that was accepted: the sender delivers what
is left in order (by ``seq``) after the next CONNACK.

Two kinds of rows:

* ``keep`` (events, errors, command responses): every one matters and keeps its place.
* ``state``: only the newest value per topic matters; a new state for a topic replaces
  the pending one (it goes to the end of the queue, which is also where it belongs).

When the bound is hit the oldest *state* row is dropped first (and counted); only when the
outbox holds nothing but ``keep`` rows is the oldest of those dropped (counted apart and
logged as an error): a bound that cannot be kept would just move the loss to the disk.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

KEEP = "keep"
STATE = "state"


@dataclass(frozen=True)
class OutboxMessage:
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str
    created: float


class Outbox:
    """Thread-safe; one SQLite connection guarded by a lock (calls are short)."""

    def __init__(self, path: Path, max_messages: int = 10_000) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        # WAL + synchronous=NORMAL: durable across a process crash (what we need), fast enough
        # for hundreds of writes a second on an SD card.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
            qos INTEGER NOT NULL, retain INTEGER NOT NULL, kind TEXT NOT NULL, created REAL NOT NULL)""")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_state_topic ON outbox(kind, topic)")
        self.dropped_state = 0
        self.dropped_keep = 0
        self.replaced_state = 0
        # Kept in memory: COUNT(*) walks the whole table, too slow to run on every put.
        self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def put(self, topic: str, payload: bytes, qos: int, retain: bool, kind: str = KEEP) -> int:
        """Store one message; returns its sequence number."""
        if kind not in (KEEP, STATE):
            raise ValueError(f"unknown outbox kind {kind!r}")
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                count = self._count
                if kind == STATE:
                    cur.execute("DELETE FROM outbox WHERE kind = ? AND topic = ?", (STATE, topic))
                    self.replaced_state += cur.rowcount
                    count -= cur.rowcount
                cur.execute("INSERT INTO outbox(topic, payload, qos, retain, kind, created) VALUES (?,?,?,?,?,?)",
                            (topic, payload, qos, int(retain), kind, time.time()))
                seq = cur.lastrowid
                count = self._enforce_bound(cur, count + 1)
                cur.execute("COMMIT")
                self._count = count
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return int(seq)

    def _enforce_bound(self, cur: sqlite3.Cursor, count: int) -> int:
        excess = count - self.max_messages
        if excess <= 0:
            return count
        count -= excess
        cur.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE kind = ? ORDER BY seq LIMIT ?)",
                    (STATE, excess))
        self.dropped_state += cur.rowcount
        excess -= cur.rowcount
        if excess > 0:
            cur.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,))
            self.dropped_keep += cur.rowcount
            log.error("outbox full of events and responses (%d): dropped the %d oldest",
                      self.max_messages, cur.rowcount)
        return count

    def pending(self, after: int = 0, limit: int = 100) -> list[OutboxMessage]:
        """Messages with ``seq > after``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, qos, retain, kind, created FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit)).fetchall()
        return [OutboxMessage(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5], r[6]) for r in rows]

    def ack(self, seqs: list[int]) -> None:
        """The broker has these: forget them."""
        if not seqs:
            return
        with self._lock:
            cur = self._db.cursor()
            cur.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
            self._count -= cur.rowcount  # rows already replaced or dropped are not counted twice

    def __len__(self) -> int:
        return self._count

    def stats(self) -> dict[str, int]:
        return {"pending": len(self), "dropped_state": self.dropped_state, "dropped_keep": self.dropped_keep,
                "replaced_state": self.replaced_state, "max_messages": self.max_messages}

    def close(self) -> None:
        with self._lock:
            self._db.close()
