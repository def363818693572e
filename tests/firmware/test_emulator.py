"""The emulator as the serial handler sees it: a pty opened with pyserial, plus the control socket."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from testkit.emulator_process import EmulatorProcess, HostPort
from testkit.example import ROOT
from testkit.helpers import wait_for


@pytest.fixture(scope="module")
def emu():
    proc = EmulatorProcess("--board-id", "board-7", "--seed", "3", "--interval-ms", "200", "--motor-speed", "400",
                           "--motion-rate", "0", "--timestamps", "--http", "0")
    yield proc
    assert proc.stop() == 0
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.fixture
def host(emu):
    port = HostPort(emu.link)
    yield port
    port.close()


def sensor_after(host: HostPort, mark: int, pred=lambda m: True, timeout: float = 10.0) -> dict:
    return host.wait_line(lambda m: m["type"] == "sensor" and "id" not in m and pred(m), timeout, start=mark,
                          message="a sensor line")


def test_banner_link_and_several_boards_at_once(emu):
    assert emu.banner[0].startswith("PTY /dev/")
    assert os.path.realpath(emu.link) == emu.pty
    other = EmulatorProcess("--board-id", "board-8", "--motion-rate", "0")
    try:
        assert other.pty != emu.pty
        port = HostPort(other.link)
        try:
            hello = port.command({"type": "hello", "id": "h-8"})
            assert hello == {"type": "ack", "seq": hello["seq"], "id": "h-8", "ok": True}
            assert port.wait_line(lambda m: m["type"] == "hello")["board_id"] == "board-8"
        finally:
            port.close()
    finally:
        assert other.stop() == 0
    assert not other.link.exists() and not other.control_path.exists()


def test_sensor_lines_arrive_at_the_interval_with_consecutive_seq(host):
    first = sensor_after(host, 0)
    start = host.lines.index(first)
    wait_for(lambda: sum(1 for m in host.lines[start:] if m["type"] == "sensor") >= 5, timeout=15)
    sensors = [m for m in host.lines[start:] if m["type"] == "sensor"][:5]
    for msg in sensors:
        assert {"temperature", "humidity", "motion", "battery_v", "battery_pct", "sound_dbfs", "uptime_s",
                "ts"} <= set(msg)
        assert -40 < msg["temperature"] < 80 and 0 <= msg["humidity"] <= 100
        assert msg["sound_dbfs"] is None or -120 <= msg["sound_dbfs"] <= 0
    seqs = [m["seq"] for m in host.lines[start:]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))   # one counter across all types
    uptimes = [m["uptime_s"] for m in sensors]
    assert uptimes == sorted(uptimes) and uptimes[-1] > uptimes[0]


@pytest.mark.parametrize("cmd, result", [
    ({"type": "ping", "id": "p-1"}, {"pong": True}),
    ({"type": "config", "id": "c-1", "thresholds": {"high_temperature": 40.0}}, {"interval_ms": 200}),
    ({"type": "led", "id": "l-1", "state": "on", "color": "#FF8800", "brightness": 128},
     {"state": "on", "color": "#ff8800", "brightness": 128, "blink": 0}),
    ({"type": "calibrate", "id": "k-1", "min_us": 600, "max_us": 2400}, {"min_us": 600, "max_us": 2400}),
    ({"type": "window", "id": "w-1", "stop": True}, {"moving": False}),
])
def test_each_command_is_acked_with_its_result(host, cmd, result):
    answer = host.command(cmd)
    assert answer["type"] == "ack" and answer["ok"] is True, answer
    for key, value in result.items():
        assert answer["result"][key] == value


def test_hello_and_read_answer_with_a_line_then_the_ack(host):
    mark = len(host.lines)
    assert host.command({"type": "hello", "id": "h-1"})["ok"] is True
    hello = host.wait_line(lambda m: m["type"] == "hello" and m.get("id") == "h-1", start=mark)
    assert hello["board_id"] == "board-7" and hello["protocol"] == 1 and "window" in hello["caps"]
    mark = len(host.lines)
    ack = host.command({"type": "read", "id": "r-1"})
    reading = host.wait_line(lambda m: m["type"] == "sensor" and m.get("id") == "r-1", start=mark)
    assert ack["ok"] is True and reading["seq"] < ack["seq"]


@pytest.mark.parametrize("cmd, reason", [
    ({"type": "window", "id": "w-9", "position": 140}, "140"),
    ({"type": "window", "id": "w-10", "position": "half"}, "position"),
    ({"type": "led", "id": "l-9", "brightness": 300}, "brightness"),
    ({"type": "led", "id": "l-10", "color": "orange"}, "color"),
    ({"type": "config", "id": "c-9", "interval_ms": 0}, "interval_ms"),
    ({"type": "calibrate", "id": "k-9", "min_us": 2000, "max_us": 1000}, "min_us"),
])
def test_refused_commands_are_acked_not_ok_with_the_reason(host, cmd, reason):
    answer = host.command(cmd)
    assert answer["type"] == "ack" and answer["ok"] is False
    assert reason in answer["error"]


def test_malformed_commands_get_errors(host):
    cases = [(b"this is not json\n", "bad_json"), (b"[1,2]\n", "not_object"), (b'{"id":"x"}\n', "missing_type"),
             (b'{"type":"dance","id":"d-1"}\n', "unknown_type"), (b'{"type":"ping","pad":"' + b"x" * 2000 + b'"}\n',
                                                                   "too_long")]
    for raw, code in cases:
        mark = len(host.lines)
        host.send(raw)
        err = host.wait_line(lambda m: m["type"] == "error", start=mark, message=code)
        assert err["error"] == code, (raw[:40], err)
    assert err.get("id") is None
    unknown = [m for m in host.lines if m["type"] == "error" and m["error"] == "unknown_type"][-1]
    assert unknown["id"] == "d-1"
    assert host.command({"type": "ping", "id": "after"})["ok"] is True   # and the board carries on


def test_control_set_shows_in_the_next_sensor_line(emu, host):
    sensor_after(host, 0)
    values = {"temperature": 31.5, "humidity": 55.0, "battery_v": 3.7, "sound_dbfs": -20.0}
    assert emu.control({"set": values})["ok"] is True
    mark = len(host.lines)
    msg = sensor_after(host, mark)
    assert msg["temperature"] == 31.5 and msg["humidity"] == 55.0
    assert abs(msg["battery_v"] - 3.7) < 0.03 and abs(msg["sound_dbfs"] + 20.0) < 1.0
    assert emu.control({"set": dict.fromkeys(values)})["ok"] is True
    assert emu.control({"set": {"colour": 3}})["ok"] is False


def test_ctl_command_line_sends_requests_and_reports_refusals(emu):
    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "firmware.emulator.ctl", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)

    done = ctl(str(emu.control_path), '{"set": {"temperature": 22.5}}', '{"get": "state"}')
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == 2 and all(a["ok"] for a in answers)
    assert ctl(str(emu.control_path), '{"set": {"colour": 3}}').returncode == 1  # refused by the emulator
    assert "not JSON" in ctl(str(emu.control_path), "{set").stderr
    assert "cannot talk" in ctl(str(emu.control_path) + ".missing", "{}").stderr


def test_motion_event_does_not_wait_for_the_interval(emu, host):
    assert host.command({"type": "config", "id": "slow", "interval_ms": 600000, "motion_hold_ms": 0})["ok"]
    try:
        mark = len(host.lines)
        assert emu.control({"motion": True})["ok"] is True
        started = host.wait_line(lambda m: m["type"] == "event", start=mark)
        assert started["event"] == "motion_started"
        mark = len(host.lines)
        assert emu.control({"motion": False})["ok"] is True
        stopped = host.wait_line(lambda m: m["type"] == "event", start=mark)
        assert stopped["event"] == "motion_stopped"
        assert not [m for m in host.lines[mark:] if m["type"] == "sensor"]   # no reading came in between
    finally:
        host.command({"type": "config", "id": "fast", "interval_ms": 200, "motion_hold_ms": 30000})
        emu.control({"motion": None})


def test_window_moves_over_time_and_reports_progress(emu, host):
    mark = len(host.lines)
    ack = host.command({"type": "window", "id": "open", "position": 100})
    assert ack["ok"] and ack["result"]["target"] == 100
    done = host.wait_line(lambda m: m["type"] == "window" and not m["moving"], start=mark, timeout=15)
    assert done["position"] == 100
    moving = [m for m in host.lines[mark:] if m["type"] == "window" and m["moving"]]
    assert moving and moving[0]["target"] == 100
    state = emu.control({"get": "state"})["state"]
    assert state["board"]["window"] == {"position": 100, "target": 100, "moving": False}
    host.command({"type": "window", "id": "close", "position": 0})


def test_faults_drop_garbage_noack_and_emit(emu, host):
    sensor_after(host, 0)
    assert emu.control({"fault": "drop"})["ok"]
    mark = len(host.lines)
    sensor_after(host, mark)
    sensor_after(host, len(host.lines))
    seqs = [m["seq"] for m in host.lines[mark - 1:]]
    gaps = [b - a for a, b in zip(seqs, seqs[1:], strict=False)]
    assert 2 in gaps and all(g >= 1 for g in gaps)   # one line lost, its seq used

    before = len(host.garbage)
    assert emu.control({"fault": "garbage", "count": 3})["ok"]
    wait_for(lambda: len(host.garbage) >= before + 3, message="garbage lines")
    assert emu.control({"fault": "oversize", "bytes": 3000})["ok"]
    wait_for(lambda: any(len(g) >= 2990 for g in host.garbage), message="an oversized line")

    assert emu.control({"fault": "noack"})["ok"]
    mark = len(host.lines)
    host.send({"type": "ping", "id": "unanswered"})
    sensor_after(host, mark)
    sensor_after(host, len(host.lines))
    assert not [m for m in host.lines[mark:] if m.get("id") == "unanswered"]
    assert emu.control({"fault": "clear"})["ok"]
    assert host.command({"type": "ping", "id": "answered"})["ok"] is True

    emitted = emu.control({"emit": {"type": "alert", "alert": "low_battery", "active": True, "value": 9}})
    assert emitted["ok"]
    alert = host.wait_line(lambda m: m["type"] == "alert" and m.get("value") == 9)
    assert alert["seq"] == emitted["line"]["seq"]


def test_stall_silences_the_board_then_it_resumes(emu, host):
    sensor_after(host, 0)
    assert emu.control({"fault": "stall", "seconds": 1.0})["ok"]
    mark = len(host.lines)
    after = sensor_after(host, mark, timeout=15)
    state = emu.control({"get": "state"})["state"]
    assert state["lost_lines"] >= 1 and after["seq"] > host.lines[mark - 1]["seq"] + 1


def test_burst_emits_n_lines_with_increasing_seq(emu, host):
    reply = emu.control({"burst": 2000}, timeout=30)
    assert reply == {"ok": True, "sent": 2000, "seconds": reply["seconds"]}
    wait_for(lambda: sum(1 for m in host.lines if m["type"] == "sensor") >= 2000, timeout=20)
    seqs = [m["seq"] for m in host.lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_sensor_failure_gives_null_and_an_alert(emu, host):
    mark = len(host.lines)
    assert emu.control({"fault": "sensor", "sensor": "temperature", "count": 3})["ok"]
    alert = host.wait_line(lambda m: m["type"] == "alert" and m["alert"] == "sensor_failure", start=mark)
    assert alert["active"] is True and "DHT22" in alert["message"]
    assert any(m["type"] == "sensor" and m["temperature"] is None for m in host.lines[mark:])
    cleared = host.wait_line(lambda m: m["type"] == "alert" and m["alert"] == "sensor_failure" and not m["active"],
                             start=mark)
    assert cleared["sensor"] == "temperature"


def test_http_mode_serves_the_same_state(emu):
    base = f"http://127.0.0.1:{emu.http_port}"
    with urllib.request.urlopen(base + "/sensor/temperature", timeout=5) as r:
        body = json.load(r)
    assert body["id"] == "sensor-temperature" and isinstance(body["value"], float)
    with urllib.request.urlopen(base + "/binary_sensor/motion", timeout=5) as r:
        assert json.load(r)["state"] in ("ON", "OFF")
    req = urllib.request.Request(base + "/cover/window/set?position=30", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.load(r)["target"] == 30
    wait_for(lambda: emu.control({"get": "state"})["state"]["board"]["window"]["position"] == 30, timeout=15)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(base + "/cover/window/set?position=140", method="POST"),
                               timeout=5)
    assert err.value.code == 400 and json.load(err.value)["error"] == "INVALID_VALUE"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(base + "/sensor/nope", timeout=5)
    assert err.value.code == 404


def test_boot_noise_reset_and_unplug():
    emu = EmulatorProcess("--boot-noise", "--interval-ms", "300", "--motion-rate", "0")
    host = HostPort(emu.link)
    try:
        # reset: ack, then ROM noise, then hello with seq 0 (and the config survived the reboot)
        assert host.command({"type": "config", "id": "c", "interval_ms": 250})["ok"]
        garbage_before = len(host.garbage)
        mark = len(host.lines)
        assert host.command({"type": "reset", "id": "x-1"})["ok"] is True
        hello = host.wait_line(lambda m: m["type"] == "hello", start=mark)
        assert hello["seq"] == 0 and hello["reset_cause"] == "soft" and hello["interval_ms"] == 250
        assert len(host.garbage) > garbage_before

        # unplug: the link disappears, then comes back pointing at a new pty with a booted board
        old_pty = os.path.realpath(emu.link)
        assert emu.control({"fault": "unplug", "seconds": 0.5})["ok"]
        wait_for(lambda: host.closed or not os.path.exists(old_pty), message="the old pty to go away")
        wait_for(lambda: emu.link.is_symlink() and os.path.realpath(emu.link) != old_pty, timeout=15,
                 message="a new pty at the link")
        host.close()
        host = HostPort(emu.link)
        answer = host.command({"type": "hello", "id": "again"})
        assert answer["ok"] is True
        hello = host.wait_line(lambda m: m["type"] == "hello" and m.get("id") == "again")
        assert hello["reset_cause"] == "power_on"
        assert emu.control({"get": "state"})["state"]["boots"] == 3
    finally:
        host.close()
        code = emu.stop()
    assert code == 0
    assert not emu.link.exists()
    assert "Traceback" not in emu.stderr, emu.stderr


def test_board_keeps_running_with_no_host_attached(emu):
    seq = emu.control({"get": "state"})["state"]["board"]["seq"]
    wait_for(lambda: emu.control({"get": "state"})["state"]["board"]["seq"] > seq + 3, timeout=15,
             message="lines while nobody reads")
    port = HostPort(emu.link)
    try:
        assert port.command({"type": "ping", "id": "back"})["ok"] is True
    finally:
        port.close()


def test_link_over_a_real_file_is_refused(tmp_path):
    target = tmp_path / "ttyUSB0"
    target.write_text("a real device would be here")
    proc = subprocess.run([sys.executable, "-m", "firmware.emulator", "--link", str(target)], capture_output=True,
                          text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 2 and "not a symlink" in proc.stderr
    assert target.read_text() == "a real device would be here"


def test_deep_sleep_board_wakes_as_a_new_boot():
    emu = EmulatorProcess("--interval-ms", "400", "--motion-rate", "0", control=False)
    host = HostPort(emu.link)
    try:
        mark = len(host.lines)
        assert host.command({"type": "config", "id": "sleepy", "deep_sleep": True})["ok"] is True
        hello = host.wait_line(lambda m: m["type"] == "hello" and m["reset_cause"] == "deep_sleep", start=mark,
                               timeout=15)
        assert hello["seq"] == 0
        awake = host.lines.index(hello)
        reading = host.wait_line(lambda m: m["type"] == "sensor", start=awake, timeout=15)
        assert reading["uptime_s"] < 5
    finally:
        host.close()
        assert emu.stop() == 0


def test_an_scd40_board_reports_the_co2_the_control_socket_sets():
    proc = EmulatorProcess("--board-id", "board-co2", "--motion-rate", "0", "--interval-ms", "600000",
                           "--caps", "temperature,humidity,co2")
    try:
        port = HostPort(proc.link)
        try:
            mark = len(port.lines)
            assert port.command({"type": "hello", "id": "h-co2"})["ok"] is True  # the boot hello may predate us
            hello = port.wait_line(lambda m: m["type"] == "hello" and m.get("id") == "h-co2", start=mark)
            assert hello["caps"] == ["temperature", "humidity", "co2"]
            assert proc.control({"set": {"co2": 1850}}) == {"ok": True, "pinned": {"co2": 1850.0}}
            mark = len(port.lines)
            port.command({"type": "read", "id": "r-co2"})
            line = port.wait_line(lambda m: m["type"] == "sensor" and m.get("id") == "r-co2", start=mark)
            assert line["co2"] == 1850 and isinstance(line["co2"], int)
            assert proc.control({"fault": "sensor", "sensor": "co2", "count": 1})["ok"]
            mark = len(port.lines)
            port.command({"type": "read", "id": "r-co2-2"})
            line = port.wait_line(lambda m: m["type"] == "sensor" and m.get("id") == "r-co2-2", start=mark)
            assert line["co2"] is None  # the SCD40 did not answer on I2C this round
            assert proc.control({"set": {"co2": "stuffy"}}) == {"ok": False, "error": "co2 must be a number or null"}
        finally:
            port.close()
    finally:
        assert proc.stop() == 0
