"""The recent errors of a service, the record behind ``GET /errors`` and the ``error`` events.

Plain Python: a domain core keeps one and records into it; the service's routes serve it.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any

from shared.clock import now_iso


class ErrorLog:
    """The recent errors of a service (``GET /errors``), newest last, bounded, thread-safe."""

    def __init__(self, source: str, maxlen: int = 200) -> None:
        self.source = source
        self._records: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.total = 0

    def add(self, error_code: str, message: str, severity: str = "error",
            device_id: str | None = None, **extra: Any) -> dict[str, Any]:
        record = {
            "timestamp": now_iso(),
            "source": self.source,
            "error_code": error_code,
            "message": message,
            "severity": severity,
            **({"device_id": device_id} if device_id is not None else {}),
            **extra,
        }
        with self._lock:
            self._records.append(record)
            self.total += 1
        return record

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)

    def to_dict(self) -> dict[str, Any]:
        """The body of ``GET /errors``: ``{"errors": [...], "total": <ever recorded>}``."""
        with self._lock:
            return {"errors": list(self._records), "total": self.total}
