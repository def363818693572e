"""A bounded, persistent outbox for QoS >= 1 publishes (SQLite in ``settings.data_dir``).

Every durable message is committed here before it is handed to paho and deleted only when
paho's ``on_publish`` confirms the broker has it (PUBACK). So a broker outage, and a crash
or restart of the bridge itself, lose nothing that was committed: the sender delivers what
is left in order (by ``seq``) after the next CONNACK.

Writes are batched (group commit): :meth:`Outbox.put` numbers the message and appends it to
an in-memory buffer; :meth:`Outbox.flush` writes everything buffered in one transaction.
Reading (:meth:`pending`, ``len``, :meth:`stats`) and :meth:`close` flush first, and the
sender only publishes what :meth:`pending` returned, so a message reaches paho only after it
is on disk. The sender flushes on every wake-up (a put wakes it), so a message waits in
memory for well under a millisecond, no longer than it already waited on the bridge's bus.
One transaction per wake-up instead of one per message is what makes thousands of messages
a second possible; acks are deleted in one transaction per batch too. The database is only
written, never read back while running: what is pending is also held in memory (at most
``max_messages`` rows), which is what :meth:`pending` serves; the file is read once, at start.

Two kinds of rows:

* ``keep`` (events, errors, command responses): every one matters and keeps its place.
* ``state``: while the broker is connected and the outbox is not backlogged, every state
  change is kept and published in order (a controller sees each reading). While the broker
  is *away* (:meth:`set_connected`), or once more than ``coalesce_backlog`` rows are waiting,
  only the newest value per topic matters: a new state for a topic replaces the pending one
  (it goes to the end of the queue, which is also where it belongs).

When the bound is hit the oldest *state* row is dropped first (and counted); only when the
outbox holds nothing but ``keep`` rows is the oldest of those dropped (counted apart and
logged as an error): a bound that cannot be kept would just move the loss to the disk.
"""
from __future__ import annotations

import bisect
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

KEEP = "keep"
STATE = "state"
INSERT = "INSERT INTO outbox(seq, topic, payload, qos, retain, kind, created) VALUES (?,?,?,?,?,?,?)"


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
    """Thread-safe: puts go to a buffer under a short lock; SQLite work happens under another
    lock, one transaction per flush."""

    def __init__(self, path: Path, max_messages: int = 10_000, coalesce_backlog: int = 2_000,
                 checkpoint_s: float = 1.0) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self.coalesce_backlog = coalesce_backlog
        self._lock = threading.Lock()        # the SQLite connection, the pending rows, the counters
        self._buffer_lock = threading.Lock()  # the write buffer and seq numbering
        self._buffer: list[tuple[int, str, bytes, int, int, str, float]] = []
        self._connected = False              # until the link says so: coalesce states
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        # WAL + synchronous=NORMAL: durable across a process crash (what we need), fast enough
        # for thousands of writes a second on an SD card once they are batched.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints (WAL -> database file, with an fsync) run in a thread of their own on its
        # own connection, never inside a commit on the publishing path: there they cost several
        # milliseconds every few hundred messages (the push path's latency tail). The WAL keeps
        # every commit durable in between, as before.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.execute("""CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
            qos INTEGER NOT NULL, retain INTEGER NOT NULL, kind TEXT NOT NULL, created REAL NOT NULL)""")
        self._db.execute("DROP INDEX IF EXISTS outbox_state_topic")  # older files: nothing reads by topic now
        self.dropped_state = 0
        self.dropped_keep = 0
        self.replaced_state = 0
        # The pending rows in memory, oldest first: ``_rows`` by seq (insertion order is seq
        # order), ``_order`` the same seqs as a sorted list for :meth:`pending`'s ``after``
        # (removed seqs stay in it until the next compaction), and the seqs of each topic's
        # pending states, so a replacement finds them without a scan.
        self._rows: dict[int, OutboxMessage] = {}
        self._order: list[int] = []
        self._state_seqs: dict[str, set[int]] = {}
        for row in self._db.execute("SELECT seq, topic, payload, qos, retain, kind, created FROM outbox ORDER BY seq"):
            self._remember(OutboxMessage(row[0], row[1], bytes(row[2]), row[3], bool(row[4]), row[5], row[6]))
        # Sequence numbers are handed out by put() (before the row is written), continuing
        # after anything a previous run used (AUTOINCREMENT never reuses a number either).
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        self._next_seq = max(self._order[-1] if self._order else 0, row[0] if row else 0) + 1
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(checkpoint_s,),
                                              name="outbox checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self, period_s: float) -> None:
        db = sqlite3.connect(str(self.path), isolation_level=None)
        try:
            while not self._closed.wait(period_s):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits for the writer
                except sqlite3.Error as exc:  # busy or the disk hiccuped: the next round catches up
                    log.debug("outbox checkpoint skipped: %s", exc)
        finally:
            db.close()

    def set_connected(self, connected: bool) -> None:
        """The link's view of the broker: states are coalesced only while it is away."""
        self._connected = connected

    def put(self, topic: str, payload: bytes, qos: int, retain: bool, kind: str = KEEP) -> int:
        """Take one message (written by the next :meth:`flush`); returns its sequence number."""
        if kind not in (KEEP, STATE):
            raise ValueError(f"unknown outbox kind {kind!r}")
        created = time.time()
        with self._buffer_lock:
            seq = self._next_seq
            self._next_seq += 1
            self._buffer.append((seq, topic, payload, qos, int(retain), kind, created))
        return seq

    def flush(self) -> None:
        """Write everything put so far, in one transaction."""
        with self._lock:
            self._flush_locked()

    # -- the in-memory rows (called with ``_lock`` held)

    def _remember(self, message: OutboxMessage) -> None:
        self._rows[message.seq] = message
        self._order.append(message.seq)
        if message.kind == STATE:
            self._state_seqs.setdefault(message.topic, set()).add(message.seq)

    def _forget(self, seq: int) -> bool:
        message = self._rows.pop(seq, None)
        if message is None:
            return False
        if message.kind == STATE:
            seqs = self._state_seqs.get(message.topic)
            if seqs is not None:
                seqs.discard(seq)
                if not seqs:
                    del self._state_seqs[message.topic]
        return True

    def _compact(self) -> None:
        if len(self._order) > 2 * len(self._rows) + 1024:
            self._order = list(self._rows)

    def _flush_locked(self) -> None:
        with self._buffer_lock:
            rows, self._buffer = self._buffer, []
        if not rows:
            return
        removed: list[int] = []
        replaced = 0
        for row in rows:
            seq, topic, payload, qos, retain, kind, created = row
            if kind == STATE and (not self._connected or len(self._rows) > self.coalesce_backlog):
                for old in list(self._state_seqs.get(topic, ())):
                    if self._forget(old):
                        removed.append(old)
                        replaced += 1
            self._remember(OutboxMessage(seq, topic, payload, qos, bool(retain), kind, created))
        removed += self._enforce_bound()
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(INSERT, rows)
            if removed:
                cur.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in removed])
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self.replaced_state += replaced
        self._compact()

    def _enforce_bound(self) -> list[int]:
        """Drop the oldest states (then the oldest of anything) beyond ``max_messages``."""
        excess = len(self._rows) - self.max_messages
        if excess <= 0:
            return []
        victims = [seq for seq, m in self._rows.items() if m.kind == STATE][:excess]
        self.dropped_state += len(victims)
        if len(victims) < excess:
            chosen = set(victims)
            keep = [seq for seq in self._rows if seq not in chosen][:excess - len(victims)]
            self.dropped_keep += len(keep)
            log.error("outbox full of events and responses (%d): dropped the %d oldest",
                      self.max_messages, len(keep))
            victims += keep
        for seq in victims:
            self._forget(seq)
        return victims

    def pending(self, after: int = 0, limit: int = 100) -> list[OutboxMessage]:
        """Messages with ``seq > after``, oldest first (written to disk before they are returned)."""
        with self._lock:
            self._flush_locked()
            out: list[OutboxMessage] = []
            order, rows = self._order, self._rows
            index = bisect.bisect_right(order, after)
            while index < len(order) and len(out) < limit:
                message = rows.get(order[index])
                if message is not None:
                    out.append(message)
                index += 1
            return out

    def ack(self, seqs: list[int]) -> None:
        """The broker has these: forget them (one transaction)."""
        if not seqs:
            return
        with self._lock:
            self._flush_locked()  # normally a no-op: only what pending() returned gets acked
            # Rows already replaced or dropped are not counted or deleted twice.
            gone = [(s,) for s in seqs if self._forget(s)]
            if not gone:
                return
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany("DELETE FROM outbox WHERE seq = ?", gone)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            self._compact()

    def __len__(self) -> int:
        with self._lock:
            self._flush_locked()
            return len(self._rows)

    def stats(self) -> dict[str, int]:
        pending = len(self)
        return {"pending": pending, "dropped_state": self.dropped_state, "dropped_keep": self.dropped_keep,
                "replaced_state": self.replaced_state, "max_messages": self.max_messages}

    def close(self) -> None:
        self._closed.set()
        self._checkpointer.join(5)
        with self._lock:
            self._flush_locked()
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave a compact file behind
            except sqlite3.Error as exc:  # the WAL is as durable; the next open checkpoints it
                log.debug("outbox checkpoint at close skipped: %s", exc)
            self._db.close()
