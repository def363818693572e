"""``CorrectionStore``: a person's corrections to a window automation, the learning's data.

A correction is one labelled sample: the automation's inputs at that moment (as inputs.py
checks them), the position the person chose, the window, when, and where the command came
from (``mqtt``, ``ha``, ``rest``, ``occupant``). They live in SQLite in the data folder
(``DATA_DIR/learning/corrections.sqlite``), so they survive restarts, and the store is bounded
twice: at most ``max_rows`` samples (the oldest go first) and none older than ``retention``
seconds. It is someone's habits: ``forget`` deletes them (all, or one window's).

A sample whose inputs are missing or invalid is never stored: it is counted (``invalid``, by
field) and logged once per field, so a broken sensor does not flood the log.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.devices import is_number

from .inputs import InvalidInput, WindowInputs, parse_inputs

log = logging.getLogger(__name__)

MAX_ROWS = 5_000
RETENTION_S = 180 * 86_400.0
SOURCES = ("mqtt", "ha", "rest", "occupant", "aggregator")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    window TEXT NOT NULL,
    automation TEXT,
    at REAL NOT NULL,
    source TEXT NOT NULL,
    inputs TEXT NOT NULL,
    position REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS corrections_at ON corrections (at);
"""


@dataclass(frozen=True)
class Correction:
    id: int
    window: str
    automation: str | None
    at: float
    source: str
    inputs: WindowInputs
    position: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "window": self.window, "automation": self.automation, "at": self.at,
                "source": self.source, "inputs": self.inputs.to_dict(), "position": self.position}


class InvalidSample(ValueError):
    """A sample that cannot be learnt from; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_sample(data: Mapping[str, Any]) -> tuple[str, str | None, float, str, WindowInputs, float]:
    """``(window, automation, at, source, inputs, position)`` of a sample, or :class:`InvalidSample`."""
    window = data.get("window")
    if not isinstance(window, str) or not window:
        raise InvalidSample("window", "the window's device id is required")
    automation = data.get("automation")
    if automation is not None and not isinstance(automation, str):
        raise InvalidSample("automation", f"must be an automation id or null, got {automation!r}")
    position = data.get("position")
    if not is_number(position) or not 0 <= position <= 100:
        raise InvalidSample("position", f"must be a number 0..100, got {position!r}")
    at = data.get("at", time.time())
    if not is_number(at) or at <= 0:
        raise InvalidSample("at", f"must be epoch seconds, got {at!r}")
    source = data.get("source", "rest")
    if source not in SOURCES:
        raise InvalidSample("source", f"must be one of {', '.join(SOURCES)}, got {source!r}")
    try:
        inputs = parse_inputs(data.get("inputs"), "inputs")
    except InvalidInput as exc:
        raise InvalidSample(exc.field or "inputs", exc.message) from None
    return window, automation, float(at), source, inputs, float(position)


class CorrectionStore:
    """The samples, thread-safe (one connection, one lock: writes are rare and tiny)."""

    def __init__(self, path: Path, max_rows: int = MAX_ROWS, retention: float = RETENTION_S) -> None:
        self.path = path
        self.max_rows = max_rows
        self.retention = retention
        self.invalid: Counter[str] = Counter()
        self._logged: set[str] = set()
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, data: Mapping[str, Any]) -> Correction | None:
        """Store a sample; ``None`` (counted, logged once per field) when it is invalid."""
        try:
            window, automation, at, source, inputs, position = check_sample(data)
        except InvalidSample as exc:
            self._count_invalid(exc)
            return None
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO corrections (window, automation, at, source, inputs, position) VALUES (?, ?, ?, ?, ?, ?)",
                (window, automation, at, source, json.dumps(inputs.to_dict()), position))
            row_id = int(cursor.lastrowid or 0)
            self._prune(time.time())
        return Correction(row_id, window, automation, at, source, inputs, position)

    def _count_invalid(self, exc: InvalidSample) -> None:
        field = exc.field.split(".")[-1]
        with self._lock:
            self.invalid[field] += 1
            first = field not in self._logged
            self._logged.add(field)
        if first:  # once per field: a sensor that stays broken would otherwise log every command
            log.warning("correction ignored, not learnt from (%s); further ones for %s are only counted", exc, field)

    def _prune(self, now: float) -> None:
        self._db.execute("DELETE FROM corrections WHERE at < ?", (now - self.retention,))
        self._db.execute("DELETE FROM corrections WHERE id NOT IN "
                         "(SELECT id FROM corrections ORDER BY id DESC LIMIT ?)", (self.max_rows,))

    def list(self, offset: int = 0, limit: int = 100, window: str | None = None) -> list[Correction]:
        """Newest first."""
        where, args = ("WHERE window = ?", [window]) if window else ("", [])
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM corrections {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                                    (*args, limit, offset)).fetchall()
        return [_row(r) for r in rows]

    def all(self) -> list[Correction]:
        """Oldest first (training order)."""
        with self._lock:
            self._prune(time.time())
            rows = self._db.execute("SELECT * FROM corrections ORDER BY id").fetchall()
        return [_row(r) for r in rows]

    def count(self, window: str | None = None) -> int:
        where, args = ("WHERE window = ?", (window,)) if window else ("", ())
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM corrections {where}", args).fetchone()[0])

    def counts_by_window(self) -> dict[str, int]:
        with self._lock:
            return {w: int(n) for w, n in self._db.execute("SELECT window, COUNT(*) FROM corrections GROUP BY window")}

    def last_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM corrections").fetchone()[0])

    def forget(self, window: str | None = None) -> int:
        """Delete the samples (one window's, or all); the number deleted."""
        with self._lock:
            if window:
                cursor = self._db.execute("DELETE FROM corrections WHERE window = ?", (window,))
            else:
                cursor = self._db.execute("DELETE FROM corrections")
            deleted = cursor.rowcount
        # The deleted rows leave the file too, not just the index (privacy).
        with self._lock:
            self._db.execute("VACUUM")
        return int(deleted)


def _row(row: tuple[Any, ...]) -> Correction:
    row_id, window, automation, at, source, inputs, position = row
    return Correction(int(row_id), window, automation, float(at), source, parse_inputs(json.loads(inputs)),
                      float(position))


CORRECTION_WINDOW_S = 1800.0
"""A person's command this soon after an automatic move corrects that move."""
FRESH_INPUTS_S = 900.0
"""The automation's inputs are the situation of a command only if it evaluated this recently."""


def why_not_a_correction(mode: str, moment: tuple[float, str, WindowInputs] | None, last_move_at: float,
                         now: float) -> str | None:
    """The rule for what counts (docs/automation.md, "Learning"): ``None`` when a person's
    command to the automation's window is a correction, else why it is not.

    It counts when the automation evaluated within ``FRESH_INPUTS_S`` (so its inputs are the
    situation the person answered) and either moved the window itself within
    ``CORRECTION_WINDOW_S`` (the person undid or adjusted it) or was only suggesting (its mode is
    suggest, or its last answer was a suggestion: the person chose instead of it). A command
    long after any automatic move, to an automation in charge, says nothing about the model."""
    if moment is None:
        return "the automation has not evaluated yet: no inputs to learn from"
    evaluated_at, action, _ = moment
    if now - evaluated_at > FRESH_INPUTS_S:
        return f"the automation's inputs are {now - evaluated_at:.0f} s old (more than {FRESH_INPUTS_S:g} s)"
    if mode == "suggest" or action == "suggest":
        return None
    if last_move_at and now - last_move_at <= CORRECTION_WINDOW_S:
        return None
    return (f"no automatic move in the last {CORRECTION_WINDOW_S:g} s and the automation was not suggesting: "
            "the command does not correct the model")
