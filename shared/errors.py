"""The refusals a domain core raises: what went wrong in the domain's words, never in HTTP's.

A core (a handler, the aggregator, the model service) raises one of these with a ``code`` (the
``error`` of the JSON answer, e.g. ``UNKNOWN_BOARD``), a ``message`` (one human sentence) and
any further fields of the answer (``known``, ``field``...). Which HTTP status each kind gets is
decided in one place, shared/web.py ``install_error_handlers``; the cores stay free of Flask and
of HTTP, and the same refusal reads the same wherever it is shown.
"""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal: ``code``, ``message`` and ``extra`` fields; the subclass says what kind."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra

    def to_dict(self) -> dict[str, Any]:
        """The one error shape: ``{"error": "<CODE>", "message": "<sentence>", ...extra}``."""
        return {"error": self.code, "message": self.message, **self.extra}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidRequest(DomainError):
    """What was asked is malformed or out of range (a value, a body, a query parameter)."""


class NotFound(DomainError):
    """What was asked about does not exist here (a board, an endpoint, an automation...)."""


class Conflict(DomainError):
    """The request is well formed but the current state refuses it."""


class Unavailable(DomainError):
    """What is needed to answer is not there right now (no model loaded...); try again later."""
