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

The file must never stop the bridge (docs/reliability.md):

* A file SQLite cannot read (random bytes, a truncated database) is set aside at start, renamed
  ``<name>.corrupt-<time>`` with its ``-wal``/``-shm`` (kept for a post-mortem, never deleted);
  the rows that could still be read go into a fresh file.
* A write the disk refuses (full, read-only, the file cannot be opened) turns the outbox into a
  memory-only queue with the same bound and the same order; the file is tried again every
  ``retry_s`` and, once a write works, rewritten to hold exactly what memory holds. Each change is
  one log line and one call of ``on_problem`` / ``on_recovered``; the retries are quiet.
"""
from __future__ import annotations

import bisect
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)

KEEP = "keep"
STATE = "state"
INSERT = "INSERT INTO outbox(seq, topic, payload, qos, retain, kind, created) VALUES (?,?,?,?,?,?,?)"
DELETE = "DELETE FROM outbox WHERE seq = ?"

CORRUPT = "OUTBOX_CORRUPT"
DISK_FULL = "OUTBOX_DISK_FULL"
NOT_WRITABLE = "OUTBOX_NOT_WRITABLE"
"""Error codes of the outbox's problems, as said on the instance's error topic."""
ROOM_AFTER_FULL = 512 * 1024
"""Free bytes wanted before a full disk counts as writable again. Without it, a file with a few
free pages takes the rewrite of an outbox that delivery just emptied while the disk is still at
100 %, and the outbox would flap between "full" and "writable" at every burst."""


class UnreadableFile(sqlite3.DatabaseError):
    """The file opens but is not an outbox SQLite can read back (a failed integrity check, foreign tables)."""


def is_unreadable(exc: sqlite3.Error) -> bool:
    """The file's fault (set it aside), as opposed to the disk's (wait for it)."""
    return isinstance(exc, UnreadableFile) or \
        getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def describe_disk_error(exc: sqlite3.Error, path: Path) -> tuple[str, str, str]:
    """(error code, what is wrong, what the outbox waits for) of a write the disk refused."""
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return DISK_FULL, f"data disk full ({exc})", "space returns"
    return NOT_WRITABLE, f"cannot write {path} ({exc})", "it is writable again"


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
                 checkpoint_s: float = 1.0, retry_s: float = 2.0,
                 on_problem: Callable[[str, str], None] | None = None,
                 on_recovered: Callable[[], None] | None = None) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self.coalesce_backlog = coalesce_backlog
        self.retry_s = retry_s
        self._on_problem = on_problem or (lambda code, message: None)  # (error code, message), once per problem
        self._on_recovered = on_recovered or (lambda: None)
        self._lock = threading.Lock()        # the SQLite connection, the pending rows, the counters
        self._buffer_lock = threading.Lock()  # the write buffer and seq numbering
        self._buffer: list[tuple[int, str, bytes, int, int, str, float]] = []
        self._connected = False              # until the link says so: coalesce states
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
        # Sequence numbers are handed out by put() (before the row is written), continuing
        # after anything a previous run used (AUTOINCREMENT never reuses a number either).
        self._next_seq = 1
        self._db: sqlite3.Connection | None = None  # None until the file is open (again)
        self._generation = 0                 # bumped when _db is replaced: the checkpointer reconnects
        self._loaded = False                 # the file's rows were taken once; after that memory is the truth
        self.problem: str | None = None      # why messages are held only in memory; None: the file has them
        self.set_aside: list[Path] = []      # unreadable files moved out of the way by this run
        self._retry_at = 0.0
        self._problem_code: str | None = None
        try:
            if self._load():
                self._rewrite()
        except sqlite3.Error as exc:
            self._cannot_write(exc)
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(checkpoint_s,),
                                              name="outbox checkpoint", daemon=True)
        self._checkpointer.start()

    # -- the file (called with ``_lock`` held, or from __init__)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            # WAL + synchronous=NORMAL: durable across a process crash (what we need), fast enough
            # for thousands of writes a second on an SD card once they are batched.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints (WAL -> database file, with an fsync) run in a thread of their own on its
            # own connection, never inside a commit on the publishing path: there they cost several
            # milliseconds every few hundred messages (the push path's latency tail). The WAL keeps
            # every commit durable in between, as before.
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute("""CREATE TABLE IF NOT EXISTS outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
                qos INTEGER NOT NULL, retain INTEGER NOT NULL, kind TEXT NOT NULL, created REAL NOT NULL)""")
            db.execute("DROP INDEX IF EXISTS outbox_state_topic")  # older files: nothing reads by topic now
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _read(db: sqlite3.Connection, found: list[OutboxMessage]) -> int:
        """Append the file's rows to ``found`` (so that what was read before an error is kept)
        and return the last sequence number the file used."""
        try:
            rows = db.execute("SELECT seq, topic, payload, qos, retain, kind, created FROM outbox ORDER BY seq")
            for seq, topic, payload, qos, retain, kind, created in rows:
                if isinstance(seq, int) and isinstance(topic, str) and isinstance(payload, bytes) \
                        and qos in (0, 1, 2) and kind in (KEEP, STATE) and isinstance(created, (int, float)):
                    found.append(OutboxMessage(seq, topic, payload, qos, bool(retain), kind, float(created)))
            check = db.execute("PRAGMA quick_check(1)").fetchone()
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_ERROR:  # "no such column": somebody else's table
                raise UnreadableFile(f"not an outbox ({exc})") from None
            raise
        if check is None or check[0] != "ok":
            raise UnreadableFile(f"integrity check: {check[0] if check else 'no answer'}")
        return max(found[-1].seq if found else 0, row[0] if row else 0)

    def _open(self) -> tuple[list[OutboxMessage], int, bool]:
        """Connect and read what the file holds: (rows, last seq used, whether the file can stay
        as it is). A file SQLite cannot read is set aside (left unconnected: the caller starts the
        fresh one), with the rows that could be read. What the disk refuses is raised."""
        found: list[OutboxMessage] = []
        db = None
        try:
            db = self._connect()
            last_seq = self._read(db, found)
            self._use(db)
            return found, last_seq, True
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            if not is_unreadable(exc):
                raise
            reason = str(exc)
        try:
            aside = self._set_aside()
        except OSError as exc:  # the disk's fault now: wait for it like any refused write
            raise sqlite3.OperationalError(f"cannot set the unreadable {self.path.name} aside: {exc}") from None
        message = (f"outbox: {self.path} was unreadable ({reason}); set aside as {aside.name} (kept), "
                   f"{len(found)} message(s) recovered from it; starting a fresh outbox")
        log.error("%s", message)
        self._on_problem(CORRUPT, message)
        return found, max((m.seq for m in found), default=0), False

    def _set_aside(self) -> Path:
        """Rename the file to ``<name>.corrupt-<time>``, its WAL and shared memory with it: left in
        place, a WAL would be replayed into the fresh file."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        for suffix in ("-wal", "-shm", ""):  # the database last: never a fresh file beside an old WAL
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, f"{target}{suffix}")
        self.set_aside.append(target)
        return target

    def _use(self, db: sqlite3.Connection | None) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error as exc:
                log.debug("outbox: closing the old connection: %s", exc)
        self._db = db
        self._generation += 1

    def _load(self) -> bool:
        """Open the file and take the rows a previous run left (the first time only: after that,
        memory is the truth); True when the file must then be rewritten to hold what memory holds."""
        found, last_seq, clean = self._open()
        if self._loaded:
            if self._db is None:
                self._use(self._connect())
            return True
        self._loaded = True
        with self._buffer_lock:
            late = self._next_seq > 1  # numbers were handed out before the file could be read
            if late:  # the disk refused at start: older rows go after what was numbered since
                self._take(self._buffer)  # first, so that memory stays in the order of seqs
                self._buffer = []
                found = [replace(m, seq=self._next_seq + i) for i, m in enumerate(found)]
                self._next_seq += len(found)
            else:
                self._next_seq = max(self._next_seq, last_seq + 1)
        for message in found:
            self._remember(message)
        if late:
            self._enforce_bound()
        if self._db is None:  # the unreadable file was set aside: a fresh one (the disk may refuse it)
            self._use(self._connect())
        return late or not clean

    def _write(self, statements: Callable[[sqlite3.Cursor], object]) -> None:
        """One transaction. When it fails, the error that made it fail is raised: SQLite has often
        rolled back by itself already (a full disk does that), and the ROLLBACK's own complaint
        ("no transaction is active") must not hide it."""
        if self._db is None:
            raise sqlite3.OperationalError("unable to open database file")
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            statements(cur)
            cur.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                try:
                    cur.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    log.debug("outbox: rollback after a failed write: %s", exc)
            raise

    def _rewrite(self) -> None:
        """Make the file hold exactly what memory holds (a fresh file, or after a stretch in memory)."""
        rows = [(m.seq, m.topic, m.payload, m.qos, int(m.retain), m.kind, m.created) for m in self._rows.values()]

        def statements(cur: sqlite3.Cursor) -> None:
            cur.execute("DELETE FROM outbox")
            cur.executemany(INSERT, rows)
        self._write(statements)

    def _cannot_write(self, exc: sqlite3.Error) -> None:
        """Carry on from memory; the file is tried again in ``retry_s``. Said once per problem."""
        self._retry_at = time.monotonic() + self.retry_s
        if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
            # The retry opens the file afresh: a connection that once failed to open its WAL index
            # stays read-only after the cause is gone, and a file gone bad is set aside on opening.
            # After a full disk the connection is fine and is kept.
            self._use(None)
        code, problem, until = describe_disk_error(exc, self.path)
        if self.problem is not None:
            log.debug("outbox: still in memory (%s)", exc)
            return
        self.problem, self._problem_code = problem, code
        message = f"outbox: {problem}; keeping messages in memory until {until}"
        log.error("%s", message)
        self._on_problem(code, message)

    def _room(self) -> int:
        """Bytes the file can still grow by: the disk's free space, or SQLite's own page limit
        (``max_page_count``) if that is nearer; free pages inside the file count too."""
        assert self._db is not None
        disk = os.statvfs(self.path.parent)
        page_size, pages, max_pages, free_pages = (
            self._db.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_size", "page_count", "max_page_count", "freelist_count"))
        return min(disk.f_bavail * disk.f_frsize, (max_pages - pages + free_pages) * page_size)

    def _retry_disk(self) -> None:
        try:
            if self._db is None:
                self._load()
            if self._problem_code == DISK_FULL and self._room() < ROOM_AFTER_FULL:
                self._retry_at = time.monotonic() + self.retry_s  # still full: quietly, later
                return
            self._rewrite()
        except (sqlite3.Error, OSError) as exc:  # OSError: statvfs of a directory gone
            self._cannot_write(exc if isinstance(exc, sqlite3.Error) else sqlite3.OperationalError(str(exc)))
            return
        self.problem = self._problem_code = None
        log.info("outbox: disk writable again; the %d message(s) held in memory are in %s", len(self._rows),
                 self.path)
        self._on_recovered()

    def _checkpoint_loop(self, period_s: float) -> None:
        db, generation = None, -1
        try:
            while not self._closed.wait(period_s):
                if generation != self._generation and db is not None:  # the file was reopened or set aside
                    db.close()
                    db = None
                if self._db is None:  # the file is not open: nothing to checkpoint
                    continue
                try:
                    if db is None:
                        generation = self._generation
                        db = sqlite3.connect(str(self.path), isolation_level=None)
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits for the writer
                except sqlite3.Error as exc:  # busy or the disk hiccuped: the next round catches up
                    log.debug("outbox checkpoint skipped: %s", exc)
        finally:
            if db is not None:
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
        removed = self._take(rows)
        if self.problem is not None:  # memory only: the file catches up in one rewrite when it can
            if time.monotonic() >= self._retry_at:
                self._retry_disk()
            return
        if not rows:
            return

        def statements(cur: sqlite3.Cursor) -> None:
            cur.executemany(INSERT, rows)
            if removed:
                cur.executemany(DELETE, [(s,) for s in removed])
        try:
            self._write(statements)
        except sqlite3.Error as exc:
            self._cannot_write(exc)

    def _take(self, rows: list[tuple[int, str, bytes, int, int, str, float]]) -> list[int]:
        """Into memory, replacing and bounding as the docstring says; returns the seqs removed."""
        removed: list[int] = []
        for row in rows:
            seq, topic, payload, qos, retain, kind, created = row
            if kind == STATE and (not self._connected or len(self._rows) > self.coalesce_backlog):
                for old in list(self._state_seqs.get(topic, ())):
                    if self._forget(old):
                        removed.append(old)
                        self.replaced_state += 1
            self._remember(OutboxMessage(seq, topic, payload, qos, bool(retain), kind, created))
        if rows:
            removed += self._enforce_bound()
            self._compact()
        return removed

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
            self._compact()
            if self.problem is not None:  # memory only: the next rewrite leaves them out
                return
            try:
                self._write(lambda cur: cur.executemany(DELETE, gone))
            except sqlite3.Error as exc:
                self._cannot_write(exc)

    def __len__(self) -> int:
        with self._lock:
            self._flush_locked()
            return len(self._rows)

    def stats(self) -> dict[str, int | bool | str | None]:
        pending = len(self)
        return {"pending": pending, "dropped_state": self.dropped_state, "dropped_keep": self.dropped_keep,
                "replaced_state": self.replaced_state, "max_messages": self.max_messages,
                "on_disk": self.problem is None, "outbox_problem": self.problem}

    def health(self) -> dict[str, object]:
        """For the health report: where the messages are kept, and files set aside by this run."""
        # No flush here: the health thread only looks (a count that misses this instant's puts is fine).
        return {"on_disk": self.problem is None, "problem": self.problem, "pending": len(self._rows),
                "set_aside": [str(path) for path in self.set_aside]}

    def close(self) -> None:
        self._closed.set()
        self._checkpointer.join(5)
        with self._lock:
            self._flush_locked()
            if self.problem is not None:
                self._retry_disk()  # a last try: what is only in memory ends with the process
            if self.problem is not None and self._rows:
                log.error("outbox: stopping while %s: what only memory held is lost (%d message(s) pending)",
                          self.problem, len(self._rows))
            if self._db is None:
                return
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave a compact file behind
            except sqlite3.Error as exc:  # the WAL is as durable; the next open checkpoints it
                log.debug("outbox checkpoint at close skipped: %s", exc)
            self._db.close()
