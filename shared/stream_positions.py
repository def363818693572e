"""Where each followed event stream resumes after a restart: a small JSON file in the data dir.

A follower (shared/sse.py ``EventFollower``) remembers its last event id in memory, which a
kill -9 loses; the next start would then begin at the publisher's current position and miss
what happened meanwhile. :class:`StreamPositions` keeps ``{stream: last event id}`` on disk so
the next start resumes with ``Last-Event-ID`` (the bridge: the aggregator's stream; the
aggregator: each handler's).

The owner says what may be saved through ``collect()``, called by a writer thread every
``interval_s``: it returns the ids that are safe to save *now* and makes durable whatever they
stand for first (the bridge flushes its outbox). A saved id is therefore never ahead of what
its owner holds: a kill -9 costs at most one interval of events delivered twice, never one lost.

One write is a few hundred bytes to a temporary file and a rename (readers see the old file or
the new one, never half of one), at most once an interval and only when something changed:
nothing per event. No fsync, like the outbox's SQLite (``synchronous=NORMAL``): it survives a
process crash, which is what it is for; after a power cut it may be a little older, which only
means more events replayed.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class StreamPositions:
    def __init__(self, path: Path, collect: Callable[[], dict[str, str]], interval_s: float = 0.1,
                 name: str = "stream positions") -> None:
        self.path = Path(path)
        self.name = name
        self._collect = collect
        self._interval = interval_s
        self._lock = threading.Lock()  # one save at a time: the writer thread's and a final one
        self._saved = self._read()
        self._written = dict(self._saved)
        self._problem: str | None = None  # what the log last said about a failed save
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0

    def get(self, stream: str) -> str | None:
        """The id saved for ``stream`` (by this run or a previous one), or None."""
        return self._saved.get(stream)

    def start(self) -> StreamPositions:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self, final: bool = True) -> None:
        """Stop the writer; with ``final``, save once more (what was collected since the last write)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if final:
            self.save()

    def save(self) -> bool:
        """Collect and write now if anything changed; True when the file is up to date."""
        with self._lock:
            try:
                ids = self._collect()
            except Exception as exc:  # noqa: BLE001 - nothing safe to save now: the file keeps the older ids
                self._say(f"not saved: {exc}")
                return False
            merged = {**self._saved, **{k: v for k, v in ids.items() if isinstance(v, str)}}
            if merged == self._written:
                return True
            try:
                self._write(merged)
            except OSError as exc:
                self._say(f"cannot write {self.path}: {exc}")
                return False
            self._saved = self._written = merged
            self.writes += 1
            if self._problem is not None:
                log.info("%s saved again in %s", self.name, self.path)
                self._problem = None
            return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.save()

    def _say(self, problem: str) -> None:
        # Once per kind of problem, not once per interval: a full disk would flood the log.
        if problem != self._problem:
            log.warning("%s %s (a restart will replay from the last saved position)", self.name, problem)
            self._problem = problem

    def _read(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("%s: cannot read %s (%s); starting from the streams' current positions",
                        self.name, self.path, exc)
            return {}
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            log.warning("%s: %s is not a JSON object; starting from the streams' current positions",
                        self.name, self.path)
            return {}
        return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)}

    def _write(self, ids: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(ids, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)  # readers never see half a file
