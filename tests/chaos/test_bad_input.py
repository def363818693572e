"""Bad input, from an attacker or a broken controller, against the whole connector as real
processes (testkit/connector.py: an emulated board, the four services under gunicorn, the
bridge, Mosquitto): over MQTT through the bridge, and over REST to every service.

Each bad command must get its exact error answer and cost nothing else: the valid command sent
right after it is carried out (counted by its unique id), no part of the bad one gets past the
first program that read it (its id never shows on a line of another program), and the logs stay
bounded (no traceback, every line short). docs/reliability.md, row "bad input".
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit.connector import AUTOMATION_SWITCH, ConnectorStack
from testkit.helpers import authorization, wait_for
from testkit.mqtt_watch import Watcher
from tests.bridge.conftest import BASE

MAX_LOG_LINE = 1_000
DEEP = "[" * 10_000 + "]" * 10_000  # Python's JSON parser raises RecursionError near 1,000 levels
LONG_ID = "i" * 10_000
LED = "living_led"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, default_model: Path) -> Iterator[ConnectorStack]:
    stack = ConnectorStack(tmp_path_factory.mktemp("bad-input"), http=True, automation=default_model)
    try:
        for url in stack.urls.values():
            wait_for(lambda u=url: requests.get(u + "/health", timeout=2), 60, interval=0.1,
                     message=f"{url} answering")
        # The automation would move the window on its own; suggest-only keeps the board to our commands.
        switch_off = requests.post(f"{stack.aggregator_url}/device/{AUTOMATION_SWITCH}/cmd",
                                   json={"state": "off"}, timeout=30, headers=authorization(stack.env["DATA_DIR"]))
        assert switch_off.status_code == 200, switch_off.text
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def watch(stack: ConnectorStack) -> Iterator[Watcher]:
    watcher = Watcher(stack.broker.port, [f"{BASE}/#"]).start()
    watcher.wait(f"{BASE}/status", lambda p: p == b"online", timeout=60)
    yield watcher
    watcher.stop()


def log_lines(stack: ConnectorStack) -> list[str]:
    return stack.log_path.read_text(errors="replace").splitlines()


class LogCheck:
    """Checks each whole line the programs wrote exactly once: the lines a test caused are
    blamed on it, and the module's teardown checks what came after the last test."""

    def __init__(self, path: Path) -> None:
        self.path, self.checked = path, 0

    def assert_bounded(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # a line still being written is checked next time
        lines = data[self.checked:end].decode(errors="replace").splitlines()
        self.checked = max(self.checked, end)
        tracebacks = [n for n, line in enumerate(lines) if "Traceback" in line]
        assert not tracebacks, "\n".join(lines[tracebacks[0]:tracebacks[0] + 30])
        long = [line[:300] for line in lines if len(line) >= MAX_LOG_LINE]
        assert not long, f"{len(long)} log line(s) of {MAX_LOG_LINE}+ characters, e.g. {long[0]}"


@pytest.fixture(scope="module")
def logs(stack: ConnectorStack) -> Iterator[LogCheck]:
    check = LogCheck(stack.log_path)
    yield check
    check.assert_bounded()


def assert_went_no_further(stack: ConnectorStack, cmd_id: str, first: str | None) -> None:
    """No program after ``first`` (the one that refused it; None: nobody may log it) logged the id."""
    tag = f"[cmd {cmd_id}]"
    further = [line for line in log_lines(stack) if tag in line and (first is None or f" {first} " not in line)]
    assert not further, further[:3]


def raw_json(**fields: str) -> bytes:
    """A JSON object from raw JSON tokens, so NaN, Infinity, 1e400 and 10,000 brackets go out as written."""
    return ("{" + ", ".join(f"{json.dumps(name)}: {token}" for name, token in fields.items()) + "}").encode()


# -- over MQTT, through the real bridge to the real aggregator and serial handler

MQTT_CASES = [
    # (case, id, payload, error code); answered on cmd/response when the id can be read, else on the
    # device's error topic
    ("nested-10000", None, raw_json(id='"m-deep"', values='{"state": ' + DEEP + "}"), "INVALID_JSON"),
    ("nested-100", "m-deep-100", raw_json(id='"m-deep-100"', values='{"state": ' + "[" * 100 + "]" * 100 + "}"),
     "INVALID_JSON"),
    ("nan-value", "m-nan", raw_json(id='"m-nan"', values='{"brightness": NaN}'), "INVALID_VALUE"),
    ("infinity-value", "m-inf", raw_json(id='"m-inf"', values='{"brightness": -Infinity}'), "INVALID_VALUE"),
    ("1e400-value", "m-1e400", raw_json(id='"m-1e400"', values='{"brightness": 1e400}'), "INVALID_VALUE"),
    ("nan-timestamp", "m-ts-nan", raw_json(id='"m-ts-nan"', timestamp="NaN", values='{"state": "on"}'),
     "INVALID_PAYLOAD"),
    ("1e300-timestamp", "m-ts-1e300", raw_json(id='"m-ts-1e300"', timestamp="1e300", values='{"state": "on"}'),
     "INVALID_PAYLOAD"),
    ("long-id", None, raw_json(id=json.dumps(LONG_ID), values='{"state": "on"}'), "INVALID_PAYLOAD"),
]


@pytest.mark.parametrize(("case", "cmd_id", "payload", "code"), MQTT_CASES, ids=[c[0] for c in MQTT_CASES])
def test_bad_command_over_mqtt(stack, watch, logs, case, cmd_id, payload, code):
    response_topic, error_topic = f"{BASE}/devices/{LED}/cmd/response", f"{BASE}/devices/{LED}/error"
    errors_before = len(watch.on(error_topic))
    watch.publish(f"{BASE}/devices/{LED}/cmd", payload)
    if cmd_id is not None:
        answer = watch.wait_json(response_topic, lambda d, i=cmd_id: d["cmd_id"] == i, timeout=30)
        assert (answer["status"], answer["error"]) == ("error", code), answer
        assert_went_no_further(stack, cmd_id, first="mqtt_bridge")
    else:
        answer = wait_for(lambda: [d for d in watch.json_on(error_topic)[errors_before:] if d["error_code"] == code],
                          30, message=f"{code} on {error_topic}")[0]
    assert len(answer["message"]) < 500, answer["message"][:600]
    # Nothing else lost: the next command is carried out, answered once.
    ok_id = f"m-ok-{case}"
    watch.publish(f"{BASE}/devices/{LED}/cmd", {"id": ok_id, "values": {"state": "on", "brightness": 40}})
    done = watch.wait_json(response_topic, lambda d: d["cmd_id"] == ok_id, timeout=30)
    assert done["status"] == "success", done
    assert [d["cmd_id"] for d in watch.json_on(response_topic)].count(ok_id) == 1
    assert any(f"[cmd {ok_id}]" in line and " serial_handler " in line for line in log_lines(stack))
    logs.assert_bounded()


HA_CASES = [
    # (case, device, Home Assistant command topic, payload); no id: answered on the device's error topic
    ("cover-position-inf", "living_window", "position", b"inf"),
    ("cover-position-1e400", "living_window", "position", b"1e400"),
    ("light-nested-10000", LED, "set", DEEP.encode()),
    ("light-color-infinity", LED, "set", b'{"state": "ON", "color": {"r": Infinity, "g": 0, "b": 0}}'),
]


@pytest.mark.parametrize(("case", "device", "command", "payload"), HA_CASES, ids=[c[0] for c in HA_CASES])
def test_bad_home_assistant_command(stack, watch, logs, case, device, command, payload):
    error_topic = f"{BASE}/devices/{device}/error"
    errors_before = len(watch.on(error_topic))
    watch.publish(f"{BASE}/ha/{device}/{command}", payload)
    answer = wait_for(lambda: [d for d in watch.json_on(error_topic)[errors_before:]
                               if d["error_code"] == "INVALID_PAYLOAD"], 30, message=f"the refusal on {error_topic}")[0]
    assert len(answer["message"]) < 500, answer["message"][:600]
    ok_id = f"m-ok-{case}"
    watch.publish(f"{BASE}/devices/{LED}/cmd", {"id": ok_id, "values": {"state": "on"}})
    done = watch.wait_json(f"{BASE}/devices/{LED}/cmd/response", lambda d: d["cmd_id"] == ok_id, timeout=30)
    assert done["status"] == "success", done
    logs.assert_bounded()


# -- over REST, to every service

REST_TARGETS = [
    # (target, service, path, fields of a valid command as raw JSON, a numeric field to spoil)
    ("serial-sensor", "serial_handler", f"/sensor/{LED}/cmd", {"state": '"on"'}, "brightness"),
    ("serial-board", "serial_handler", "/boards/living_room_esp32/cmd", {"type": '"ping"'}, "interval_ms"),
    ("http-sensor", "http_poller", "/sensor/balcony_temperature/cmd", {}, "interval"),
    ("ml-switch", "ml_inference", f"/sensor/{AUTOMATION_SWITCH}/cmd", {"state": '"off"'}, "state"),
    ("aggregator-device", "state_aggregator", f"/device/{LED}/cmd", {"state": '"off"'}, "brightness"),
    ("aggregator-group", "state_aggregator", "/group/living_room/cmd", {"state": '"off"'}, "brightness"),
]
REST_BAD = [
    # (case, extra raw fields given the numeric field's name, error code)
    ("nested-10000", lambda number: {"deep": DEEP}, "INVALID_JSON"),
    ("nan-value", lambda number: {number: "NaN"}, "INVALID_VALUE"),
    ("infinity-value", lambda number: {number: "Infinity"}, "INVALID_VALUE"),
    ("1e400-value", lambda number: {number: "1e400"}, "INVALID_VALUE"),
    ("nan-timestamp", lambda number: {"timestamp": "NaN"}, "INVALID_PAYLOAD"),
    ("1e300-timestamp", lambda number: {"timestamp": "1e300"}, "INVALID_PAYLOAD"),
    ("long-id", lambda number: {"id": json.dumps(LONG_ID)}, "INVALID_PAYLOAD"),
]


@pytest.mark.parametrize(("case", "spoil", "code"), REST_BAD, ids=[c[0] for c in REST_BAD])
@pytest.mark.parametrize(("target", "service", "path", "valid", "number"), REST_TARGETS,
                         ids=[t[0] for t in REST_TARGETS])
def test_bad_command_over_rest(stack, logs, target, service, path, valid, number, case, spoil, code):
    url = stack.urls[service] + path
    bad_id = f"r-bad-{target}-{case}"
    fields = {"id": json.dumps(bad_id), **valid, **spoil(number)}
    auth = authorization(stack.env["DATA_DIR"])
    answer = requests.post(url, data=raw_json(**fields), timeout=30, headers=auth)
    assert answer.status_code == 400 and answer.headers["Content-Type"].startswith("application/json"), answer.text
    body = answer.json()
    assert body["error"] == code, body
    assert len(body["message"]) < 500, body["message"][:600]
    # Nothing else lost: the next command is carried out.
    ok_id = f"r-ok-{target}-{case}"
    done = requests.post(url, data=raw_json(id=json.dumps(ok_id), **valid), timeout=30, headers=auth)
    assert done.status_code == 200 and done.json()["status"] == "success", done.text
    assert_went_no_further(stack, bad_id, first=None)
    logs.assert_bounded()


def test_deep_json_to_the_model_is_a_json_400(stack, logs):
    answer = requests.post(stack.urls["ml_inference"] + "/predict", data=DEEP, timeout=30,
                           headers=authorization(stack.env["DATA_DIR"]))
    assert answer.status_code == 400 and answer.json()["error"] == "INVALID_JSON", answer.text
    logs.assert_bounded()
