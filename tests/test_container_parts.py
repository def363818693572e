"""The container's small parts, without a container: the FATAL listener's reading of events,
and the bridge's health report as the health check reads it."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from scripts.stop_on_fatal import fatal_program
from shared.bridge_report import STALE_AFTER_S, bridge_notes, bridge_problems, broker_link, health_file
from testkit.example import ROOT


def test_a_fatal_event_names_the_program_and_others_are_ignored():
    payload = "processname:ml_inference groupname:services from_state:BACKOFF"
    assert fatal_program({"eventname": "PROCESS_STATE_FATAL"}, payload) == "ml_inference"
    assert fatal_program({"eventname": "PROCESS_STATE_RUNNING"}, payload) is None


def test_the_listener_stops_its_supervisord_on_fatal():
    """The real listener protocol over pipes, with a stand-in parent that records the SIGTERM."""
    parent = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                               "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
                               "time.sleep(30)"])
    try:
        payload = "processname:http_poller groupname:services from_state:BACKOFF tries:3"
        header = (f"ver:3.0 server:supervisor serial:1 pool:stop_on_fatal poolserial:1 "
                  f"eventname:PROCESS_STATE_FATAL len:{len(payload)}\n")
        script = ("import sys; from scripts.stop_on_fatal import run; "
                  f"run(sys.stdin, sys.stdout, supervisord_pid={parent.pid})")
        listener = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert listener.stdout.readline() == "READY\n"
        listener.stdin.write(header + payload)
        listener.stdin.flush()
        assert parent.wait(10) == 7  # supervisord got its SIGTERM
        assert listener.stdout.readline().startswith("RESULT 2")  # the event acknowledged
        listener.kill()
        assert "http_poller could not start (FATAL" in listener.communicate()[1]
    finally:
        parent.kill()
        parent.wait()


def _write(run_dir: Path, **report) -> None:
    health_file(run_dir).write_text(json.dumps({"written": time.time(), **report}))


def test_a_connected_bridge_is_healthy(tmp_path: Path):
    _write(tmp_path, mqtt_connected=True, aggregator_ready=True)
    assert bridge_problems(tmp_path) == []


def test_the_health_report_says_what_is_wrong(tmp_path: Path):
    assert "no health report yet" in bridge_problems(tmp_path)[0]
    _write(tmp_path, mqtt_connected=False, aggregator_ready=False, broker="127.0.0.1:1883")
    problems = bridge_problems(tmp_path)
    assert problems == ["mqtt_bridge: not connected to the broker 127.0.0.1:1883",
                        "mqtt_bridge: the state aggregator has not answered"]
    _write(tmp_path, mqtt_connected=True, aggregator_ready=True)
    assert "hung or stopped" in bridge_problems(tmp_path, now=time.time() + STALE_AFTER_S + 1)[0]
    health_file(tmp_path).write_text("{not json")
    assert "unreadable" in bridge_problems(tmp_path)[0]


def test_the_health_report_says_why_the_link_is_down_and_where_the_outbox_keeps_messages(tmp_path: Path):
    reason = "TLS handshake failed: certificate verify failed: unable to get local issuer certificate " \
             "(MQTT_TLS_CA=/certs/ca.crt)"
    _write(tmp_path, mqtt_connected=False, aggregator_ready=True, broker="127.0.0.1:8883",
           broker_link={"up": False, "reason": reason, "since": time.time(), "failed_attempts": 4},
           outbox={"on_disk": False, "problem": "data disk full (database or disk is full)", "pending": 12,
                   "set_aside": ["/data/mqtt_outbox.sqlite3.corrupt-20260101-120000"]})
    assert bridge_problems(tmp_path) == [
        f"mqtt_bridge: not connected to the broker 127.0.0.1:8883: {reason}",
        "mqtt_bridge: outbox: data disk full (database or disk is full); 12 message(s) held in memory only"]
    assert bridge_notes(tmp_path) == ["mqtt_bridge: an unreadable outbox file was set aside as "
                                      "/data/mqtt_outbox.sqlite3.corrupt-20260101-120000 (kept for inspection)"]
    _write(tmp_path, mqtt_connected=True, aggregator_ready=True,
           outbox={"on_disk": True, "problem": None, "pending": 0, "set_aside": []})
    assert bridge_problems(tmp_path) == [] and bridge_notes(tmp_path) == []


def test_the_broker_link_as_the_aggregator_shows_it(tmp_path: Path):
    assert broker_link(tmp_path)["connected"] is None  # no bridge running
    _write(tmp_path, mqtt_connected=False, broker="127.0.0.1:8883",
           broker_link={"reason": "TLS handshake failed: certificate verify failed"})
    link = broker_link(tmp_path)
    assert link["connected"] is False and link["reason"].startswith("TLS handshake failed")
    _write(tmp_path, mqtt_connected=True, broker="127.0.0.1:8883")
    assert broker_link(tmp_path)["connected"] is True and "reason" not in broker_link(tmp_path)
    assert broker_link(tmp_path, now=time.time() + STALE_AFTER_S + 1)["connected"] is None
