"""SerialLink: one board's serial port, kept open, read continuously, written one command at a time.

One reader thread per link owns the port's life: open (with backoff and jitter, capped at the
board's ``reconnect_max``), read with a short timeout (never a busy loop), split and validate
lines, notice a vanished port or a silent board, close, reopen. Commands are written under a
lock from the caller's thread and wait on their own ``threading.Event``: acks are matched by
``id``, so concurrent commands never get each other's answers.
"""
from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import serial

from shared.clock import iso
from shared.config import BoardSpec

from .commands import INVALID_VALUE, OFFLINE, REJECTED, TIMEOUT, UNSUPPORTED, CommandError
from .lines import PROTOCOL_VERSION, SEQ_LIMIT, LineSplitter, Message, Rejection, encode_command, parse_line

log = logging.getLogger(__name__)

READ_TIMEOUT = 0.5
"""Seconds a read waits for the first byte: bounds how late a silence or a vanished-path check is
(both on a scale of seconds). A stop does not wait for it: ``stop()`` cancels the read. It was
0.05 s, 20 wake-ups a second per board at idle for nothing (docs/architecture.md, "Memory")."""
WRITE_TIMEOUT = 2.0
PATH_CHECK_INTERVAL = 0.5
BACKOFF_START = 0.05

# Link states, as shown by GET /boards.
STOPPED, CONNECTING, OPEN, ONLINE, SILENT = "stopped", "connecting", "open", "online", "silent"


def is_device_path(port: str) -> bool:
    """A filesystem path (``/dev/ttyUSB0``, a symlink) rather than a pyserial URL."""
    return "://" not in port


@dataclass
class BoardCounters:
    """What ``GET /boards`` shows per board. Written by the reader thread only."""

    lines_ok: int = 0
    rejected: Counter = field(default_factory=Counter)
    lost: int = 0
    reboots: int = 0
    opens: int = 0
    reconnects: int = 0
    commands: int = 0
    command_errors: Counter = field(default_factory=Counter)
    last_seen: float | None = None
    last_seq: int | None = None
    board_id: str | None = None
    fw: str | None = None
    protocol: int | None = None
    caps: list[str] | None = None
    interval_ms: int | None = None
    deep_sleep: bool = False
    reset_cause: str | None = None


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: CommandError | None = None


OnMessage = Callable[["SerialLink", Message], None]
OnRejected = Callable[["SerialLink", Rejection], None]
OnState = Callable[["SerialLink", bool, "str | None"], None]
OnProblem = Callable[["SerialLink", str, str], None]


class SerialLink:
    """A board's serial connection. ``start()`` once, ``stop()`` once; thread-safe otherwise."""

    def __init__(self, board: BoardSpec, on_message: OnMessage, on_state: OnState,
                 on_rejected: OnRejected | None = None, on_problem: OnProblem | None = None) -> None:
        self.board = board
        self.board_id = board.board_id
        self.counters = BoardCounters()
        self.state = STOPPED
        self.reason: str | None = "not started"
        self._on_message, self._on_state = on_message, on_state
        self._on_rejected, self._on_problem = on_rejected, on_problem
        self._splitter = LineSplitter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: serial.SerialBase | None = None
        self._write_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._last_line = 0.0  # monotonic time of the last valid line

    # ------------------------------------------------------------------ life cycle

    def start(self) -> SerialLink:
        if self._thread is None:
            self._set_state(CONNECTING, "opening the port")
            self._thread = threading.Thread(target=self._run, name=f"serial {self.board_id}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        with self._write_lock:
            port = self._port
        cancel = getattr(port, "cancel_read", None)  # pyserial's POSIX ports; a URL's waits READ_TIMEOUT
        if cancel is not None:
            try:
                cancel()
            except (OSError, ValueError):
                pass  # closed meanwhile: the reader is leaving anyway
        if self._thread is not None:
            self._thread.join(timeout)
        self._fail_pending(OFFLINE, "the serial handler is stopping")

    @property
    def online(self) -> bool:
        return self.state == ONLINE

    def snapshot(self) -> dict[str, Any]:
        c = self.counters
        rejected = dict(c.rejected)  # one atomic copy: the reader thread may add a reason meanwhile
        return {
            "board_id": self.board_id,
            "name": self.board.name,
            "port": self.board.port,
            "link": self.state,
            "online": self.online,
            "reason": None if self.online else self.reason,
            "reported_board_id": c.board_id,
            "fw": c.fw,
            "protocol": c.protocol,
            "caps": c.caps,
            "reset_cause": c.reset_cause,
            "interval_ms": c.interval_ms,
            "last_seen": iso(c.last_seen),
            "last_seq": c.last_seq,
            "counters": {
                "lines_ok": c.lines_ok,
                "rejected": sum(rejected.values()),
                "rejected_by_reason": rejected,
                "lost": c.lost,
                "reboots": c.reboots,
                "opens": c.opens,
                "reconnects": c.reconnects,
                "commands": c.commands,
                "command_errors": dict(c.command_errors),
            },
        }

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        while not self._stop.is_set():
            port = self._open()
            if port is None:
                break
            reason = self._serve(port)
            try:
                port.close()
            except Exception:  # noqa: BLE001 - a vanished port may fail to close; it is gone anyway
                pass
            with self._write_lock:
                self._port = None
            if self._stop.is_set():
                break
            self._lost(CONNECTING, reason, "BOARD_OFFLINE", f"board {self.board_id} offline: {reason}",
                       f"board {self.board_id} went offline: {reason}")
        self._set_state(STOPPED, "stopped")

    def _open(self) -> serial.SerialBase | None:
        """Open the port, retrying until it works or the link stops (then None)."""
        attempt = 0
        reported = False
        path = self.board.port if is_device_path(self.board.port) else None
        while not self._stop.is_set():
            if path is not None and not os.path.exists(path):
                # Waiting for a device to appear costs one stat per poll; retry the moment it does.
                self._note_open_failure(f"port {path} is not present", reported)
                reported = True
                self._stop.wait(0.1)
                continue
            try:
                port = serial.serial_for_url(self.board.port, baudrate=self.board.baudrate,
                                             timeout=READ_TIMEOUT, write_timeout=WRITE_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - SerialException, OSError, ValueError (bad URL)...
                self._note_open_failure(f"cannot open {self.board.port}: {exc}", reported)
                reported = True
                delay = min(self.board.reconnect_max, BACKOFF_START * 2 ** attempt)
                attempt += 1
                self._stop.wait(delay * random.uniform(0.5, 1.0))  # jitter: boards do not retry in lockstep
                continue
            self.counters.opens += 1
            if self.counters.opens > 1:
                self.counters.reconnects += 1
            log.info("board %s: opened %s", self.board_id, self.board.port)
            return port
        return None

    def _note_open_failure(self, reason: str, reported: bool) -> None:
        self.reason = reason
        if not reported:
            log.warning("board %s: %s (retrying)", self.board_id, reason)
            # After a vanish the offline error was already reported; only a first open is news.
            if self._on_problem and self.counters.opens == 0:
                self._on_problem(self, "PORT_UNAVAILABLE", f"board {self.board_id}: {reason}")
            self._on_state(self, False, reason)

    def _serve(self, port: serial.SerialBase) -> str:
        """Read until the port fails or the link stops; returns why it ended."""
        with self._write_lock:
            self._port = port
        self._splitter.reset()  # the start of an unfinished line is gone with the old port
        self._set_state(OPEN, "port open, waiting for the board")
        self._last_line = time.monotonic()
        # Learn who is there and what it reads now, instead of waiting for a boot or an interval.
        self._send_quiet({"type": "hello", "id": f"host-hello-{next(self._ids)}"})
        self._send_quiet({"type": "read", "id": f"host-read-{next(self._ids)}"})
        path = self.board.port if is_device_path(self.board.port) else None
        next_path_check = time.monotonic() + PATH_CHECK_INTERVAL
        while not self._stop.is_set():
            try:
                data = port.read(1)
                if data:
                    waiting = port.in_waiting
                    if waiting:
                        data += port.read(waiting)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's fd already closed under it by another thread.
                return f"port vanished ({exc})"
            now = time.monotonic()
            if data:
                for item in self._splitter.feed(data):
                    try:
                        self._line(item)
                    except Exception:  # noqa: BLE001 - a bug handling one line must not end the link
                        log.exception("board %s: error handling a line %r", self.board_id, item)
            elif path is not None and now >= next_path_check:
                next_path_check = now + PATH_CHECK_INTERVAL
                if not os.path.exists(path):
                    return f"port {path} disappeared"
            self._check_silence(now)
        return "stopped"

    def _check_silence(self, now: float) -> None:
        limit = self.board.silence_timeout
        if self.counters.deep_sleep and self.counters.interval_ms:
            limit = max(limit, 3 * self.counters.interval_ms / 1000)  # deep sleepers are quiet by design
        if self.state in (ONLINE, OPEN) and now - self._last_line > limit:
            reason = f"silent for more than {limit:g} s"
            self._lost(SILENT, reason, "BOARD_SILENT", f"board {self.board_id}: {reason}",
                       f"board {self.board_id} is {reason}")

    def _lost(self, state: str, reason: str, code: str, problem: str, pending: str) -> None:
        """The board stopped answering (its port closed, or it fell silent): commands waiting for
        it fail ``OFFLINE`` with ``pending``, the problem is logged and recorded as ``code``, and
        its devices go offline if it was online."""
        was_online = self.state == ONLINE
        self._set_state(state, reason)
        self._fail_pending(OFFLINE, pending)
        log.warning("%s", problem)
        if self._on_problem:
            self._on_problem(self, code, problem)
        if was_online:
            self._on_state(self, False, reason)

    def _line(self, item: bytes | Rejection) -> None:
        parsed = item if isinstance(item, Rejection) else parse_line(item)
        if isinstance(parsed, Rejection):
            self.counters.rejected[parsed.reason] += 1
            if self._on_rejected:
                self._on_rejected(self, parsed)
            return
        self._message(parsed)

    def _message(self, message: Message) -> None:
        c = self.counters
        c.lines_ok += 1
        c.last_seen = time.time()
        self._last_line = time.monotonic()
        self._account_seq(message)
        if message.type == "hello":
            c.board_id, c.fw = message.get("board_id"), message.get("fw")
            c.protocol, c.caps = message.get("protocol"), message.get("caps")
            c.interval_ms = message.get("interval_ms", c.interval_ms)
            c.reset_cause = message.get("reset_cause")
            if (c.protocol or 0) > PROTOCOL_VERSION:
                log.warning("board %s speaks protocol %s (we speak %d); carrying on",
                            self.board_id, c.protocol, PROTOCOL_VERSION)
        elif message.type == "status":
            c.interval_ms = message.get("interval_ms", c.interval_ms)
            c.deep_sleep = bool(message.get("deep_sleep", c.deep_sleep))
        if self.state != ONLINE:
            self._set_state(ONLINE, None)
            log.info("board %s online", self.board_id)
            self._on_state(self, True, None)
        self._on_message(self, message)
        if message.type in ("ack", "error") and message.id is not None:
            self._resolve(message)

    def _account_seq(self, message: Message) -> None:
        c = self.counters
        seq, last = message.seq, c.last_seq
        c.last_seq = seq
        if last is None:
            return
        reboot = seq <= last or (message.type == "hello" and seq == 0)
        if reboot:
            # seq restarts at every boot (and wraps at 2**30): not a loss.
            c.reboots += 1
            if last == SEQ_LIMIT - 1 and seq == 0:
                c.reboots -= 1
            return
        c.lost += seq - last - 1

    def _set_state(self, state: str, reason: str | None) -> None:
        self.state, self.reason = state, reason

    # ------------------------------------------------------------------ commands

    def request(self, command: dict[str, Any], timeout: float | None = None,
                cmd_id: str | None = None) -> dict[str, Any]:
        """Send ``command`` with an id and wait for its ack: ``{"cmd_id", "result"?}`` or CommandError."""
        timeout = self.board.command_timeout if timeout is None else timeout
        if self.state not in (OPEN, ONLINE):
            raise CommandError(OFFLINE, f"board {self.board_id} is offline: {self.reason}")
        cmd_id = cmd_id or f"{self.board_id}-{next(self._ids)}"
        try:
            line = encode_command({**command, "id": cmd_id})
        except ValueError as exc:
            raise CommandError(INVALID_VALUE, str(exc)) from None
        pending = _Pending()
        with self._pending_lock:
            if cmd_id in self._pending:
                raise CommandError(INVALID_VALUE, f"command id {cmd_id!r} is already waiting for its ack")
            self._pending[cmd_id] = pending
            self.counters.commands += 1  # under the lock: many request threads count here
        try:
            self._write(line)
            log.debug("board %s <- %s", self.board_id, line[:200])
            if not pending.done.wait(timeout):
                raise CommandError(TIMEOUT, f"board {self.board_id} did not acknowledge {command.get('type')} "
                                            f"within {timeout:g} s")
            if pending.error is not None:
                raise pending.error
            return {"cmd_id": cmd_id, **({"result": pending.result} if pending.result is not None else {})}
        except CommandError as exc:
            with self._pending_lock:
                self.counters.command_errors[exc.code] += 1
            raise
        finally:
            with self._pending_lock:
                self._pending.pop(cmd_id, None)

    def _write(self, line: bytes) -> None:
        with self._write_lock:
            port = self._port
            if port is None:
                raise CommandError(OFFLINE, f"board {self.board_id} is offline: {self.reason}")
            try:
                port.write(line)
            except serial.SerialTimeoutException:
                raise CommandError(TIMEOUT, f"board {self.board_id} is not reading its port") from None
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                raise CommandError(OFFLINE, f"board {self.board_id}: write failed ({exc})") from None

    def _send_quiet(self, command: dict[str, Any]) -> None:
        """Fire-and-forget (the host's hello after opening): failure shows up in the reader."""
        try:
            self._write(encode_command(command))
        except CommandError as exc:
            log.debug("board %s: %s", self.board_id, exc.message)

    def _resolve(self, message: Message) -> None:
        with self._pending_lock:
            pending = self._pending.get(message.id or "")
        if pending is None:
            return  # a late ack (after TIMEOUT) or our own hello
        if message.type == "ack" and message.get("ok"):
            pending.result = message.get("result")
        elif message.type == "ack":
            pending.error = CommandError(REJECTED, message.get("error") or "the board refused the command")
        else:
            code = UNSUPPORTED if message.get("error") == "unknown_type" else REJECTED
            pending.error = CommandError(code, message.get("message") or message.get("error"),
                                         board_error=message.get("error"))
        pending.done.set()

    def _fail_pending(self, code: str, message: str) -> None:
        with self._pending_lock:
            waiting = list(self._pending.values())
        for pending in waiting:
            if not pending.done.is_set():
                pending.error = CommandError(code, message)
                pending.done.set()
