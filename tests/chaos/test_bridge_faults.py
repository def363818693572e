"""Chaos: the bridge's broker link and its outbox file under attack (docs/reliability.md rows
"tls", "outbox" and "disk"). A real Mosquitto, the real bridge following a real HTTP aggregator
stand-in, real files, real TLS handshakes. Every case counts what the aggregator emitted by a
unique mark and asserts that each mark reached MQTT, that the bridge recovered without a human
within a stated time, and that it said so in one clear line per change of state."""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.health import bridge_notes, bridge_problems
from bridge.outbox import KEEP, Outbox
from testkit.broker import MosquittoBroker
from testkit.certs import issue_server_cert, make_ca
from testkit.full_disk import fill, outbox_disk_full, tiny_filesystem
from testkit.helpers import free_port, wait_for
from testkit.mqtt_watch import Watcher
from tests.bridge.conftest import BASE
from tests.bridge.test_outage import spawn_bridge

STATUS = f"{BASE}/status"
EVENTS = f"{BASE}/devices/living_motion/events"
ERRORS = f"{BASE}/error"
LINK_RECOVERY_S = 10.0
"""The broker fixed -> ``online`` and every held event on MQTT. The tests' reconnect backoff tops
out at 2 s (production: 5 s); measured 1.1-2.6 s."""
OUTBOX_RECOVERY_S = 10.0
"""Bridge started on an unreadable outbox -> ``online``; measured well under 1 s."""
DISK_RECOVERY_S = 5.0
"""Space back -> the outbox writes its file again: one retry period (2 s) and a wake of the
sender; measured 1.9-2.5 s."""


def marks_on(watcher: Watcher) -> list[str]:
    return [json.loads(p)["data"]["mark"] for p in watcher.on(EVENTS)]


def emit(aggregator, marks: list[str], pad: int = 0) -> None:
    for mark in marks:
        aggregator.emit_event("living_motion", "motion_started", {"mark": mark, "pad": "x" * pad})


def all_arrived(watcher: Watcher, marks: list[str]) -> bool:
    return set(marks) <= set(marks_on(watcher))


def lines(caplog, logger: str = "bridge", level: int = logging.ERROR) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith(logger) and r.levelno >= level]


def no_tracebacks(caplog) -> None:
    assert not [r.getMessage() for r in caplog.records if r.exc_info], "a traceback in the log"


def following(aggregator) -> None:
    """Events reach the bridge only once it follows the stream (it waits up to 2 s for the broker first)."""
    wait_for(lambda: aggregator.publisher.stats()["clients"] >= 1, timeout=20, message="the bridge following events")


# ------------------------------------------------------------------ tls: the broker link


@dataclass(frozen=True)
class LinkCase:
    name: str
    bridge_tls: bool
    broken: str   # the broker's listener while broken: "plain", "tls" or "tls-other-ca"
    fixed: str
    reason: str   # what the log line and the health report must say


LINK_CASES = [
    LinkCase("a certificate from an authority the bridge does not trust", True, "tls-other-ca", "tls",
             "TLS handshake failed: certificate verify failed"),
    LinkCase("plain MQTT sent to the TLS port", False, "tls", "plain",
             "the broker closed the connection before accepting it"),
    LinkCase("TLS sent to a plain port", True, "plain", "tls",
             "TLS handshake failed: the broker closed the connection"),
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    make_ca(directory, "ca")
    make_ca(directory, "other-ca")
    issue_server_cert(directory, "ca", "server")
    issue_server_cert(directory, "other-ca", "impostor")
    return directory


class SwitchedBroker(MosquittoBroker):
    """The bridge's port is plain or TLS (with a certificate of either authority) as the test
    says at each restart; a plain port of the watcher's own stays the same. Sessions and queued
    messages survive restarts (persistence), so the watcher misses nothing."""

    def __init__(self, certs: Path) -> None:
        super().__init__(persistence=True)
        self.certs = certs
        self.watch_port = free_port()

    def serve(self, listener: str) -> None:
        server = {"tls": "server", "tls-other-ca": "impostor"}.get(listener)
        tls = [f"cafile {self.certs / 'ca.crt'}", f"certfile {self.certs / server}.crt",
               f"keyfile {self.certs / server}.key"] if server else []
        self.config_path.write_text("\n".join([
            # started as root, mosquitto would switch to its own user, who cannot read pytest's tmp dir
            "user root" if os.geteuid() == 0 else "", "per_listener_settings false", "allow_anonymous true",
            f"listener {self.watch_port} 127.0.0.1", f"listener {self.port} 127.0.0.1", *tls,
            "log_dest stderr", "log_type error", "persistence true", f"persistence_location {self.workdir}/",
            "max_queued_messages 100000", "set_tcp_nodelay true"]) + "\n")
        self.restart() if self.running else self.start()


@pytest.mark.parametrize("case", LINK_CASES, ids=lambda c: c.name.replace(" ", "_"))
def test_a_broken_broker_link_is_said_once_reported_and_recovers_by_itself(case, certs, aggregator, start_bridge,
                                                                          caplog):
    caplog.set_level(logging.INFO, logger="bridge")
    switched = SwitchedBroker(certs)
    switched.serve(case.broken)
    watcher = Watcher(switched.watch_port, "IoT2mqtt/#", client_id=f"faults-{uuid.uuid4().hex[:8]}",
                      persistent=True).start()
    try:
        env = {"MQTT_PORT": str(switched.port)}
        if case.bridge_tls:
            env |= {"MQTT_TLS": "true", "MQTT_TLS_CA": str(certs / "ca.crt")}
        bridge = start_bridge(env=env, broker=switched)
        following(aggregator)
        held = [f"tls-{n}" for n in range(10)]
        emit(aggregator, held)  # while the link is down: they wait in the outbox
        wait_for(lambda: bridge.ctx.link.state.report()["failed_attempts"] >= 2, timeout=20,
                 message="a failed attempt and its retry")

        errors = lines(caplog)
        assert len(errors) == 1, errors  # the retries were quiet
        assert case.reason in errors[0] and f"127.0.0.1:{switched.port}" in errors[0]
        if case.bridge_tls and "certificate" in case.reason:
            assert f"MQTT_TLS_CA={certs / 'ca.crt'}" in errors[0]  # the setting to check
        run_dir = bridge.ctx.settings.run_dir
        problem = f"mqtt_bridge: not connected to the broker 127.0.0.1:{switched.port}: {case.reason}"
        wait_for(lambda: any(p.startswith(problem) for p in bridge_problems(run_dir)), timeout=10,
                 message="the health report to name the reason")
        assert bridge.stats()["link"]["broker_link"] == "down"
        assert case.reason in bridge.stats()["link"]["broker_link_reason"]

        switched.serve(case.fixed)  # what an operator would fix on the broker; the bridge is left alone
        fixed = time.monotonic()
        wait_for(lambda: watcher.last(STATUS) == b"online" and all_arrived(watcher, held), timeout=30,
                 message="online and every held event")
        recovery = time.monotonic() - fixed
        print(f"\nmeasured: {case.name}: online with every held event {recovery:.1f} s after the broker was fixed")
        assert recovery < LINK_RECOVERY_S
        assert any(line.startswith("broker link up") for line in lines(caplog, level=logging.INFO))
        wait_for(lambda: bridge_problems(run_dir) == [], timeout=10, message="a healthy report")
        assert len(lines(caplog)) == 1
        no_tracebacks(caplog)
        bridge.stop()  # while its broker is there: a clean stop
    finally:
        watcher.stop()
        switched.close()


# ------------------------------------------------------------------ outbox: an unreadable file


def damage(path: Path, how: str) -> int:
    """Leave an outbox file damaged ``how``; returns how many of its messages can still be read."""
    if how == "random bytes":
        path.write_bytes(os.urandom(64 * 1024))
        return 0
    box = Outbox(path)
    for n in range(400):  # a table over several pages, each row a message the bridge could deliver
        payload = {"timestamp": "2026-01-01T00:00:00+00:00", "event": "motion_started",
                   "data": {"mark": f"old-{n}", "pad": "x" * 200}}
        box.put(EVENTS, json.dumps(payload).encode(), 1, False, KEEP)
    box.close()
    data = bytearray(path.read_bytes())
    if how == "truncated":  # a WAL-format database cut short: SQLite reads nothing of it
        path.write_bytes(bytes(data[:len(data) // 2]))
        return 0
    data[19 * 4096:20 * 4096] = os.urandom(4096)  # "a destroyed page": the rows before it still read
    path.write_bytes(bytes(data))
    return -1  # some: the bridge says how many


@pytest.mark.parametrize("how", ["random bytes", "truncated", "a destroyed page"])
def test_an_unreadable_outbox_is_set_aside_and_the_bridge_carries_on(how, bridge_settings, aggregator,
                                                                     start_bridge, watcher, caplog):
    data_dir = bridge_settings().data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "mqtt_outbox.sqlite3"
    readable = damage(path, how)
    original = path.read_bytes()
    started = time.monotonic()
    bridge = start_bridge()
    watcher.wait(STATUS, lambda p: p == b"online", timeout=OUTBOX_RECOVERY_S)
    recovery = time.monotonic() - started
    print(f"\nmeasured: outbox {how}: online {recovery:.2f} s after the start")

    [aside] = bridge.ctx.link.outbox.set_aside
    assert aside.name.startswith("mqtt_outbox.sqlite3.corrupt-") and aside.read_bytes() == original  # kept
    [error] = lines(caplog)
    assert f"set aside as {aside.name} (kept)" in error and "starting a fresh outbox" in error
    report = watcher.wait_json(ERRORS, lambda e: e["error_code"] == "OUTBOX_CORRUPT")
    assert report["severity"] == "error" and aside.name in report["message"]
    recovered = int(error.split(" message(s) recovered")[0].rsplit(" ", 1)[1])
    if readable >= 0:
        assert recovered == readable
    else:  # what could be read is delivered, in order
        assert recovered > 0
        wait_for(lambda: len([m for m in marks_on(watcher) if m.startswith("old-")]) >= recovered, timeout=20)
        assert [m for m in marks_on(watcher) if m.startswith("old-")][:recovered] == \
            [f"old-{n}" for n in range(recovered)]

    following(aggregator)
    fresh = [f"fresh-{n}" for n in range(20)]
    emit(aggregator, fresh)
    wait_for(lambda: all_arrived(watcher, fresh), timeout=20, message="every event after the start")
    run_dir = bridge.ctx.settings.run_dir
    wait_for(lambda: bridge_problems(run_dir) == [], timeout=10, message="a healthy report")
    assert bridge_notes(run_dir) == [f"mqtt_bridge: an unreadable outbox file was set aside as {aside} "
                                     "(kept for inspection)"]
    no_tracebacks(caplog)


def test_the_bridge_process_no_longer_dies_of_a_corrupt_outbox(tmp_path, broker, watcher, aggregator, agg_port):
    """What the attack did to the container: random bytes where the outbox was, then a start."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mqtt_outbox.sqlite3").write_bytes(os.urandom(64 * 1024))
    proc = spawn_bridge(tmp_path, broker, agg_port)
    try:
        watcher.wait(STATUS, lambda p: p == b"online", timeout=30)
        watcher.wait_json(ERRORS, lambda e: e["error_code"] == "OUTBOX_CORRUPT", timeout=10)
        assert proc.poll() is None  # running, not crash-looping towards FATAL
        assert len(list((tmp_path / "data").glob("mqtt_outbox.sqlite3.corrupt-*"))) == 1
    finally:
        proc.kill()
        proc.wait(10)
    log = (tmp_path / "bridge.log").read_text()
    assert "Traceback" not in log and log.count("was unreadable") == 1


# ------------------------------------------------------------------ disk: the data disk full


def rows_with_marks(path: Path, prefix: str) -> int:
    """What the outbox file holds, read by another connection as a restart would read it."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return sum(1 for (payload,) in db.execute("SELECT payload FROM outbox")
                   if f'"mark":"{prefix}' in bytes(payload).decode().replace(" ", ""))


def test_a_full_disk_keeps_messages_in_memory_and_the_outbox_recovers_by_itself(persistent_broker, aggregator,
                                                                                start_bridge, caplog):
    caplog.set_level(logging.INFO, logger="bridge")
    watcher = Watcher(persistent_broker.port, "IoT2mqtt/#", client_id=f"disk-{uuid.uuid4().hex[:8]}",
                      persistent=True).start()
    try:
        bridge = start_bridge(broker=persistent_broker)
        outbox = bridge.ctx.link.outbox
        watcher.wait(STATUS, lambda p: p == b"online", timeout=20)
        following(aggregator)

        outbox_disk_full(outbox)
        connected = [f"full-{n}" for n in range(10)]
        emit(aggregator, connected, pad=4000)  # bigger than any free page: the next write fails
        wait_for(lambda: all_arrived(watcher, connected), timeout=20, message="delivery from memory")
        assert outbox.problem == "data disk full (database or disk is full)"
        assert lines(caplog, "bridge.outbox") == ["outbox: data disk full (database or disk is full); keeping "
                                                  "messages in memory until space returns"]
        watcher.wait_json(ERRORS, lambda e: e["error_code"] == "OUTBOX_DISK_FULL", timeout=10)
        run_dir = bridge.ctx.settings.run_dir
        wait_for(lambda: any(p.startswith("mqtt_bridge: outbox: data disk full") for p in bridge_problems(run_dir)),
                 timeout=10, message="the health report to say the disk is full")

        persistent_broker.stop()  # the broker away as well: messages pile up in memory only
        wait_for(lambda: not bridge.ctx.link.connected, timeout=10)
        away = [f"away-{n}" for n in range(10)]
        emit(aggregator, away, pad=4000)
        wait_for(lambda: bridge.ctx.bus.idle() and len(outbox) >= 2 * len(away), timeout=20,
                 message="the events held by the outbox")
        assert outbox.problem is not None and rows_with_marks(outbox.path, "away-") == 0

        outbox_disk_full(outbox, full=False)  # space returns
        freed = time.monotonic()
        wait_for(lambda: outbox.problem is None, timeout=DISK_RECOVERY_S * 2, message="the disk writable again")
        recovery = time.monotonic() - freed
        print(f"\nmeasured: full disk (SQLite's page limit): file written again {recovery:.1f} s after space returned")
        assert recovery < DISK_RECOVERY_S
        assert rows_with_marks(outbox.path, "away-") == 2 * len(away)  # events and global events, on disk again
        assert lines(caplog, "bridge.outbox", logging.INFO)[-1].startswith("outbox: disk writable again")

        persistent_broker.start()
        wait_for(lambda: all_arrived(watcher, connected + away), timeout=30, message="every event")
        wait_for(lambda: bridge_problems(run_dir) == [], timeout=10, message="a healthy report")
        assert len(lines(caplog, "bridge.outbox")) == 1  # one error for the whole episode
        no_tracebacks(caplog)
    finally:
        watcher.stop()


def test_a_really_full_filesystem(tmp_path, aggregator, start_bridge, watcher, caplog):
    """The same on a real tmpfs filled to the last byte (root only; skipped where mounting is refused)."""
    caplog.set_level(logging.INFO, logger="bridge")
    with tiny_filesystem(tmp_path / "small", size_kib=2048) as data_dir:
        bridge = start_bridge(env={"DATA_DIR": str(data_dir), "SENSOR_HUB_RUN_DIR": str(tmp_path / "run")})
        outbox = bridge.ctx.link.outbox
        watcher.wait(STATUS, lambda p: p == b"online", timeout=20)
        following(aggregator)
        filler = fill(data_dir)

        full = [f"fs-{n}" for n in range(20)]
        emit(aggregator, full, pad=30_000)  # the WAL must grow: the filesystem says ENOSPC
        wait_for(lambda: all_arrived(watcher, full), timeout=20, message="delivery from memory")
        wait_for(lambda: outbox.problem is not None, timeout=10, message="the outbox to notice the full disk")
        assert outbox.problem.startswith("data disk full")

        filler.unlink()
        freed = time.monotonic()
        wait_for(lambda: outbox.problem is None, timeout=DISK_RECOVERY_S * 2, message="the disk writable again")
        print(f"\nmeasured: full tmpfs: file written again {time.monotonic() - freed:.1f} s after space returned")
        assert time.monotonic() - freed < DISK_RECOVERY_S
        after = [f"after-{n}" for n in range(5)]
        emit(aggregator, after)
        wait_for(lambda: all_arrived(watcher, after), timeout=20)
        assert len(lines(caplog, "bridge.outbox")) == 1
        no_tracebacks(caplog)
        bridge.stop()  # before the filesystem goes
