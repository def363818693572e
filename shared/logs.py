"""Logging for every program: one stderr handler (supervisord collects it), the service name
and the current command id on every line, and secrets redacted before anything is written.

    setup_logging("serial_handler", level=settings.log_level, fmt=settings.log_format,
                  secrets=[settings.mqtt.password])
    with command_context(cmd_id):
        log.info("sending to board")   # ... [cmd 42] sending to board
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from shared.clock import iso_at

_command_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("command_id",
                                                                        default=None)

REDACTED = "***"
SECRET_KEY_WORDS = ("password", "passwd", "secret", "token", "credentials")
# key=value, key: value, "key": "value", 'key': 'value' where the key contains a secret word
# (so MQTT_PASSWORD, access_token and client_secret count too).
_KEY_WORDS = "|".join(SECRET_KEY_WORDS)
_SECRET_PAIR = re.compile(
    r"""(?P<key>["']?[\w.-]*(?:""" + _KEY_WORDS + r""")[\w.-]*["']?\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,;&}\]]+)""",
    re.IGNORECASE,
)
MIN_SECRET_LENGTH = 3
"""Shorter literal secrets are not searched for: replacing every "a" would wreck the logs."""
MAX_CMD_TAG = 64
"""Characters of a command id shown on a log line (the longest id a command may carry)."""


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out: what comes from outside
    (a payload, an id, a topic) must not make a log line or an error message as long as it is."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def excerpt(value: object, limit: int = 60) -> str:
    """``repr(value)``, clipped: how a message quotes a value it refuses."""
    return clip(repr(value), limit)


@contextmanager
def command_context(cmd_id: str | None) -> Iterator[None]:
    """Tag every log line written inside the block (this thread/context) with ``cmd_id``."""
    token = _command_id.set(str(cmd_id) if cmd_id is not None else None)
    try:
        yield
    finally:
        _command_id.reset(token)


def current_command_id() -> str | None:
    return _command_id.get()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secret values (by key name, and the given literal values) replaced."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)

    def _hide(match: re.Match[str]) -> str:
        value = match.group("value")
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{match.group('key')}{quote}{REDACTED}{quote}"

    return _SECRET_PAIR.sub(_hide, text)


class ContextFilter(logging.Filter):
    """Adds ``service`` and ``cmd_id`` (None when outside a command) to every record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        cmd_id = _command_id.get()
        record.cmd_id = None if cmd_id is None else clip(cmd_id, MAX_CMD_TAG)
        record.cmd_tag = f" [cmd {record.cmd_id}]" if record.cmd_id else ""
        return True


class RedactingFilter(logging.Filter):
    """Renders the message (and traceback) once and redacts secrets in it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message, self.secrets), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, service, logger, message, cmd_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": iso_at(record.created),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "cmd_id", None):
            line["cmd_id"] = record.cmd_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(service)s%(cmd_tag)s %(name)s: %(message)s"


def setup_logging(service: str, level: str = "INFO", fmt: str = "human",
                  secrets: Iterable[str] = ()) -> logging.Handler:
    """Send the root logger to stderr in the chosen format. Safe to call again: the previous
    handler installed by this function is replaced, never duplicated.

    ``fmt`` is ``"human"`` or ``"json"``; ``secrets`` are literal values (the MQTT password)
    to redact wherever they appear.
    """
    if fmt not in ("human", "json"):
        raise ValueError(f"log format must be 'human' or 'json', not {fmt!r}")
    numeric = logging.getLevelName(str(level).upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_shared_logs", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler._shared_logs = True  # type: ignore[attr-defined] - marks ours for idempotence
    handler.addFilter(ContextFilter(service))
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(HUMAN_FORMAT))
    root.addHandler(handler)
    root.setLevel(numeric)
    # Chatty libraries: their per-request lines add nothing at INFO.
    for name in ("urllib3", "werkzeug"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    return handler
