"""Fault cases against emulated boards: boot noise, garbage, a 1 MB line, unplug/replug, silence."""
from __future__ import annotations

import json

from testkit.helpers import wait_for


def counters(service, board_id: str = "b1") -> dict:
    return service.board(board_id)["counters"]


def board_seq(emulator) -> int:
    return emulator.control({"get": "state"})["state"]["board"]["seq"]


def caught_up(service, emulator, board_id: str = "b1") -> bool:
    """Every line the board wrote so far has been read (its last seq is ours)."""
    return service.board(board_id)["last_seq"] == board_seq(emulator) - 1


def test_boot_noise_is_counted_and_the_reboot_is_not_loss(emulators, services) -> None:
    emulator = emulators("--interval-ms", "100", "--board-id", "b1", "--boot-noise")
    service = services({"b1": {"port": str(emulator.link)}})
    service.wait_online("b1")
    before = counters(service)
    emulator.control({"reset": True})  # reboot: ROM noise, then hello seq 0
    after = wait_for(lambda: (c := counters(service))["reboots"] > before["reboots"]
                     and c["rejected"] > before["rejected"] and c, 15, message="reboot with noise seen")
    assert after["lost"] == 0
    assert set(after["rejected_by_reason"]) <= {"invalid_json", "invalid_utf8", "empty", "not_object"}
    wait_for(lambda: service.board("b1")["reset_cause"] == "soft", 15, message="hello after the reboot")
    assert service.get("/sensor/b1_temperature").json()["online"] is True


def test_ten_percent_garbage_between_good_lines(emulators, services) -> None:
    emulator = emulators("--interval-ms", "60000", "--board-id", "b1")
    service = services({"b1": {"port": str(emulator.link)}})
    service.wait_online("b1")
    wait_for(lambda: caught_up(service, emulator), 15)
    before = counters(service)
    for _ in range(10):
        assert emulator.control({"burst": 9})["ok"]
        assert emulator.control({"fault": "garbage", "count": 1})["ok"]
    wait_for(lambda: caught_up(service, emulator), 15, message="all good lines read")
    after = counters(service)
    assert after["lines_ok"] - before["lines_ok"] >= 90  # (a status line may come too)
    assert after["rejected"] - before["rejected"] == 10
    assert after["lost"] == 0


def test_a_one_megabyte_line_is_discarded_and_reading_carries_on(board) -> None:
    emulator, service = board
    assert emulator.control({"fault": "oversize", "bytes": 1024 * 1024})["ok"]
    wait_for(lambda: counters(service)["rejected_by_reason"].get("oversize") == 1, 20, message="oversize counted")
    emulator.control({"set": {"temperature": 19.5}})
    wait_for(lambda: service.get("/sensor/b1_temperature").json()["state"]["temperature"] == 19.5, 15)
    assert counters(service)["rejected"] == 1


def test_unplugged_board_goes_offline_at_once_and_comes_back_by_itself(board) -> None:
    emulator, service = board
    mark = service.mark()
    assert emulator.control({"fault": "unplug", "seconds": 1.5})["ok"]

    offline = {f"b1_{t}" for t in ("temperature", "humidity", "motion", "sound_level", "battery", "window", "led")}
    wait_for(lambda: {e.data["device_id"] for e in service.events[mark:]
                      if e.kind == "availability" and e.data["online"] is False} == offline, 10,
             message="every device unavailable")
    error = service.wait_event(lambda e: e.kind == "error" and e.data["error_code"] == "BOARD_OFFLINE", start=mark)
    assert error.data["severity"] == "error" and error.data["source"] == "serial_handler"
    view = service.get("/sensor/b1_temperature").json()
    if not view["online"]:  # (it may already be back on a fast machine)
        assert view["reason"]
    command = service.post("/sensor/b1_led/cmd", {"values": {"state": "on"}})
    if command.status_code != 200:
        assert command.status_code == 503 and command.json()["error"] == "OFFLINE"
    assert service.get("/health").status_code in (200, 503)

    back = service.wait_online("b1", timeout=20)
    assert back["counters"]["reconnects"] == 1
    service.wait_event(lambda e: e.kind == "availability" and e.data["device_id"] == "b1_temperature"
                       and e.data["online"] is True, start=mark)
    assert service.post("/sensor/b1_led/cmd", {"values": {"state": "on"}}).status_code == 200
    emulator.control({"set": {"temperature": 27.5}})
    wait_for(lambda: service.get("/sensor/b1_temperature").json()["state"]["temperature"] == 27.5, 15)


def test_a_command_to_an_offline_board_answers_offline_immediately(emulators, services, tmp_path) -> None:
    service = services({"b1": {"port": str(tmp_path / "no-such-tty")}})
    response = service.post("/sensor/b1_led/cmd", {"values": {"state": "on"}, "timeout": 60000})
    assert response.status_code == 503 and response.json()["error"] == "OFFLINE"
    health = service.get("/health")
    assert health.status_code == 503 and "no-such-tty" in " ".join(health.json()["reasons"])
    view = service.get("/sensor/b1_temperature").json()
    assert view["online"] is False and view["reason"]
    service.wait_event(lambda e: e.kind == "error" and e.data["error_code"] == "PORT_UNAVAILABLE")
    assert service.get("/errors").json()["errors"][0]["error_code"] == "PORT_UNAVAILABLE"


def test_a_board_that_appears_later_is_picked_up(emulators, services, tmp_path) -> None:
    link = tmp_path / "late-tty"
    service = services({"b1": {"port": str(link)}})
    wait_for(lambda: service.board("b1")["link"] == "connecting", 10)
    emulator = emulators("--interval-ms", "100", "--board-id", "b1")
    link.symlink_to(emulator.pty)
    service.wait_online("b1", timeout=20)


def test_a_silent_board_is_marked_offline_then_online_again(emulators, services) -> None:
    emulator = emulators("--interval-ms", "100", "--board-id", "b1")
    service = services({"b1": {"port": str(emulator.link), "silence_timeout": 1}})
    service.wait_online("b1")
    mark = service.mark()
    assert emulator.control({"fault": "stall", "seconds": 3})["ok"]
    event = service.wait_event(lambda e: e.kind == "availability" and e.data["device_id"] == "b1_humidity"
                               and e.data["online"] is False, start=mark)
    assert "silent" in event.data["reason"]
    assert service.board("b1")["link"] == "silent"
    assert service.post("/sensor/b1_led/cmd", {"values": {"state": "on"}}).json()["error"] == "OFFLINE"
    service.wait_event(lambda e: e.kind == "error" and e.data["error_code"] == "BOARD_SILENT", start=mark)
    service.wait_event(lambda e: e.kind == "availability" and e.data["device_id"] == "b1_humidity"
                       and e.data["online"] is True, start=mark, timeout=20)
    # Lines written during the stall were lost (their seqs were consumed): the gap shows it.
    assert wait_for(lambda: counters(service)["lost"], 10) > 0


def test_dropped_lines_are_counted_as_lost(board) -> None:
    emulator, service = board
    emulator.control({"set": {"temperature": 30.0}})
    wait_for(lambda: caught_up(service, emulator), 15)
    before = counters(service)["lost"]
    assert emulator.control({"fault": "drop", "count": 3})["ok"]
    wait_for(lambda: counters(service)["lost"] == before + 3, 15, message="3 lines lost")
    assert counters(service)["reboots"] == 0


def test_invalid_readings_from_the_board_are_rejected_by_reason(board) -> None:
    emulator, service = board
    emulator.control({"set": {"humidity": 45.0}})
    wait_for(lambda: service.get("/sensor/b1_humidity").json()["state"].get("humidity") == 45.0, 15)
    mark = service.mark()
    # The control channel's JSON parser takes NaN, and the emulator writes it as the board would.
    for line in ('{"emit": {"type": "sensor", "humidity": 140}}',
                 '{"emit": {"type": "sensor", "temperature": NaN}}',
                 '{"emit": {"type": "sensor", "battery_pct": "full"}}',
                 '{"emit": {"type": "window", "position": 140}}',
                 '{"emit": {"type": "dance"}}'):
        assert emulator.control(json.loads(line))["ok"]
    wait_for(lambda: caught_up(service, emulator), 15)
    rejected = counters(service)["rejected_by_reason"]
    assert rejected == {"out_of_range": 2, "non_finite": 1, "wrong_type": 1, "unknown_type": 1}
    assert service.get("/sensor/b1_humidity").json()["state"]["humidity"] == 45.0
    assert not [e for e in service.events[mark:] if e.kind == "state" and e.data["device_id"] == "b1_humidity"
                and e.data["state"]["humidity"] == 140]


def test_board_events_and_alerts_reach_their_devices(board) -> None:
    emulator, service = board
    mark = service.mark()
    emulator.control({"button": "short"})
    button = service.wait_event(lambda e: e.kind == "event" and e.data["event"] == "button", start=mark)
    assert button.data["data"] == {"press": "short"} and button.data["board"] == "b1"
    emulator.control({"set": {"temperature": 40.0}})
    alert = service.wait_event(lambda e: e.kind == "event" and e.data["event"] == "high_temperature", start=mark)
    assert alert.data["device_id"] == "b1_temperature" and alert.data["data"]["active"] is True


def test_a_failing_sensor_keeps_its_last_value_and_raises_an_error(board) -> None:
    emulator, service = board
    emulator.control({"set": {"temperature": 22.0}})
    wait_for(lambda: service.get("/sensor/b1_temperature").json()["state"].get("temperature") == 22.0, 15)
    mark = service.mark()
    assert emulator.control({"fault": "sensor", "sensor": "temperature", "count": 5})["ok"]
    error = service.wait_event(lambda e: e.kind == "error" and e.data["error_code"] == "SENSOR_FAILURE", start=mark)
    assert error.data["device_id"] == "b1_temperature" and error.data["severity"] == "warning"
    assert service.get("/sensor/b1_temperature").json()["state"]["temperature"] == 22.0


def test_a_disabled_board_is_not_opened_and_its_devices_say_why(services, tmp_path) -> None:
    service = services({"b1": {"port": str(tmp_path / "tty"), "enabled": False}})
    assert service.get("/boards").json()["boards"] == []
    view = service.get("/sensor/b1_led").json()
    assert view["online"] is False and "disabled" in view["reason"]
    command = service.post("/sensor/b1_led/cmd", {"values": {"state": "on"}})
    assert command.status_code == 503 and command.json()["error"] == "OFFLINE"
    assert service.get("/health").status_code == 200
