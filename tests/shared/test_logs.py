"""Logging setup: formats, service name and command id on every line, redaction, idempotence."""
from __future__ import annotations

import json
import logging
import threading

import pytest

from shared.logs import command_context, current_command_id, redact, setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_carry_service_and_command_id(capsys):
    setup_logging("serial_handler", fmt="json")
    log = logging.getLogger("services.serial_handler.link")
    log.info("opened %s", "/dev/ttyUSB0")
    with command_context("cmd-42"):
        log.warning("sending to board")
    first, second = json_lines(capsys.readouterr().err)
    assert first["service"] == "serial_handler" and first["message"] == "opened /dev/ttyUSB0"
    assert "cmd_id" not in first and first["level"] == "INFO"
    assert second["cmd_id"] == "cmd-42" and second["logger"] == "services.serial_handler.link"
    assert "+" in first["timestamp"] or "-" in first["timestamp"][19:]  # timezone offset


def test_human_format_shows_service_and_command(capsys):
    setup_logging("http_poller")
    with command_context("abc"):
        logging.getLogger("x").info("hello")
    line = capsys.readouterr().err.strip()
    assert "http_poller [cmd abc] x: hello" in line and "INFO" in line


def test_json_log_includes_exception(capsys):
    setup_logging("svc", fmt="json")
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (line,) = json_lines(capsys.readouterr().err)
    assert "ValueError: bad value" in line["exc"]


def test_setup_twice_does_not_duplicate_lines(capsys):
    setup_logging("svc")
    setup_logging("svc", fmt="json")
    logging.getLogger("x").warning("once")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["message"] == "once"


def test_level_is_applied(capsys):
    setup_logging("svc", level="WARNING")
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    assert "hidden" not in capsys.readouterr().err


def test_bad_level_or_format_is_a_clear_error():
    with pytest.raises(ValueError, match="log level"):
        setup_logging("svc", level="LOUD")
    with pytest.raises(ValueError, match="log format"):
        setup_logging("svc", fmt="xml")


def test_secrets_are_redacted_in_messages_args_and_tracebacks(capsys):
    setup_logging("bridge", fmt="json", secrets=["s3cr3t-pass"])
    log = logging.getLogger("bridge")
    log.info("connecting with password=%s token: abc123", "hunter2")
    log.info("config %s", {"client_secret": "xyz789", "mqtt_passwd": "p4ss", "host": "localhost"})
    log.info("broker said s3cr3t-pass is wrong")
    try:
        raise RuntimeError("auth failed for credentials=topsecret")
    except RuntimeError:
        log.exception("login")
    text = capsys.readouterr().err
    for secret in ("hunter2", "abc123", "xyz789", "p4ss", "s3cr3t-pass", "topsecret"):
        assert secret not in text
    assert "localhost" in text and "***" in text


@pytest.mark.parametrize("text, expected", [
    ("MQTT_PASSWORD=abc user=bob", "MQTT_PASSWORD=*** user=bob"),
    ('{"token": "a b c", "n": 1}', '{"token": "***", "n": 1}'),
    ("passwd: 'x y'", "passwd: '***'"),
    ("nothing to hide here", "nothing to hide here"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_short_literal_secrets_are_not_searched():
    assert redact("a cat", ["a"]) == "a cat"


def test_command_context_is_per_thread_and_nested():
    seen = {}
    with command_context("outer"):
        with command_context("inner"):
            assert current_command_id() == "inner"
        assert current_command_id() == "outer"
        thread = threading.Thread(target=lambda: seen.update(other=current_command_id()))
        thread.start()
        thread.join()
    assert current_command_id() is None
    assert seen["other"] is None  # a new thread starts without the caller's command
