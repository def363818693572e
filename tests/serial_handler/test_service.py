"""The serial handler against emulated boards on real ptys: readings, commands, REST API."""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from shared.logs import current_command_id
from testkit.helpers import wait_for


def test_a_reading_set_on_the_board_reaches_rest_and_events(board) -> None:
    emulator, service = board
    mark = service.mark()
    assert emulator.control({"set": {"temperature": 31.5, "humidity": 55.5, "battery_v": 3.5}})["ok"]

    view = wait_for(lambda: (v := service.get("/sensor/b1_temperature").json())["state"].get("temperature") == 31.5
                    and v, 15, message="31.5 °C in GET /sensor")
    assert view["online"] is True and view["type"] == "temperature" and view["last_seen"]
    event = service.wait_event(lambda e: e.kind == "state" and e.data["device_id"] == "b1_temperature"
                               and e.data["state"] == {"temperature": 31.5}, start=mark)
    assert event.data["timestamp"]
    service.wait_event(lambda e: e.kind == "state" and e.data["device_id"] == "b1_humidity"
                       and e.data["state"]["humidity"] == 55.5, start=mark)
    battery = service.wait_event(lambda e: e.kind == "state" and e.data["device_id"] == "b1_battery"
                                 and e.data["state"].get("voltage") == 3.5, start=mark)
    assert set(battery.data["state"]) == {"battery", "voltage"}


def test_identical_readings_publish_one_state_event_but_move_last_seen(board) -> None:
    emulator, service = board
    emulator.control({"set": {"temperature": 25.0}})
    service.wait_event(lambda e: e.kind == "state" and e.data["device_id"] == "b1_temperature"
                       and e.data["state"]["temperature"] == 25.0)
    mark = service.mark()
    first_seen = service.get("/sensor/b1_temperature/cached").json()["last_seen"]
    lines = service.board("b1")["counters"]["lines_ok"]
    wait_for(lambda: service.board("b1")["counters"]["lines_ok"] >= lines + 5, 15, message="5 more readings")
    assert service.get("/sensor/b1_temperature/cached").json()["last_seen"] > first_seen
    assert not [e for e in service.events[mark:] if e.kind == "state" and e.data["device_id"] == "b1_temperature"]


def test_motion_events_update_the_motion_device(board) -> None:
    emulator, service = board
    mark = service.mark()
    emulator.control({"motion": True})
    event = service.wait_event(lambda e: e.kind == "event" and e.data["event"] == "motion_started", start=mark)
    assert event.data["device_id"] == "b1_motion"
    wait_for(lambda: service.get("/sensor/b1_motion").json()["state"]["motion"] is True, 15)


def test_every_command_type_round_trips_with_the_boards_ack(board) -> None:
    emulator, service = board
    led = service.post("/sensor/b1_led/cmd", {"values": {"state": "on", "color": "#FF8800", "brightness": 128,
                                                          "blink": 0}, "id": "led-1"})
    assert led.status_code == 200, led.text
    assert led.json() == {"status": "success", "cmd_id": "led-1",
                          "result": {"state": "on", "color": "#ff8800", "brightness": 128, "blink": 0}}
    assert service.get("/sensor/b1_led").json()["state"]["color"] == "#ff8800"
    assert emulator.control({"get": "state"})["state"]["board"]["led"]["state"] == "on"

    window = service.post("/sensor/b1_window/cmd", {"values": {"position": 40}, "id": "win-1"})
    assert window.status_code == 200, window.text
    assert window.json()["result"]["target"] == 40
    wait_for(lambda: service.get("/sensor/b1_window").json()["state"] == {"position": 40, "target": 40,
                                                                          "moving": False}, 20,
             message="window at 40")
    stop = service.post("/sensor/b1_window/cmd", {"values": {"stop": True}})
    assert stop.status_code == 200 and stop.json()["result"]["moving"] is False

    interval = service.post("/sensor/b1_temperature/cmd", {"values": {"interval": 0.2}})
    assert interval.status_code == 200, interval.text
    assert interval.json()["result"]["interval_ms"] == 200
    assert emulator.control({"get": "state"})["state"]["board"]["config"]["interval_ms"] == 200

    fresh = service.get("/sensor/b1_humidity?fresh=1").json()
    assert fresh["fresh"] is True and "humidity" in fresh["state"]

    ping = service.post("/boards/b1/cmd", {"type": "ping", "id": "p-1"})
    assert ping.status_code == 200 and ping.json()["result"]["pong"] is True

    calibrate = service.post("/boards/b1/cmd", {"type": "calibrate", "temperature_offset": -0.5})
    assert calibrate.status_code == 200 and calibrate.json()["result"]["temperature_offset"] == -0.5
    hello = service.post("/boards/b1/cmd", {"type": "hello"})
    assert hello.status_code == 200

    reset = service.post("/boards/b1/cmd", {"type": "reset"})
    assert reset.status_code == 200
    wait_for(lambda: service.board("b1")["counters"]["reboots"] == 1, 15, message="the reboot seen")
    service.wait_online("b1")
    assert service.board("b1")["counters"]["lost"] == 0

    refused = service.post("/boards/b1/cmd", {"type": "led", "brightness": 300})
    assert refused.status_code == 409
    assert refused.json()["error"] == "REJECTED" and "brightness" in refused.json()["message"]


def test_invalid_and_unsupported_commands_never_reach_the_board(board) -> None:
    emulator, service = board
    before = emulator.control({"get": "state"})["state"]["board"]
    for device, values, code in (("b1_window", {"position": 140}, "INVALID_VALUE"),
                                 ("b1_led", {"color": "red"}, "INVALID_VALUE"),
                                 ("b1_temperature", {"position": 3}, "UNSUPPORTED")):
        response = service.post(f"/sensor/{device}/cmd", {"values": values})
        assert response.status_code == 400 and response.json()["error"] == code
    after = emulator.control({"get": "state"})["state"]["board"]
    assert after["led"] == before["led"] and after["window"]["target"] == before["window"]["target"]
    bad_body = service.post("/sensor/b1_led/cmd", data=b"not json", headers={"Content-Type": "application/json"})
    assert bad_body.status_code == 400 and bad_body.json()["error"] == "INVALID_JSON"


def test_a_board_that_never_acks_times_out_within_the_timeout(board) -> None:
    emulator, service = board
    assert emulator.control({"fault": "noack"})["ok"]
    started = time.monotonic()
    response = service.post("/sensor/b1_led/cmd", {"values": {"state": "on"}, "timeout": 300})
    elapsed = time.monotonic() - started
    assert response.status_code == 504 and response.json()["error"] == "TIMEOUT"
    assert 0.3 <= elapsed < 10  # waited for the timeout, not forever
    emulator.control({"fault": "noack", "enabled": False})
    assert service.post("/sensor/b1_led/cmd", {"values": {"state": "off"}}).status_code == 200


def test_twenty_concurrent_commands_each_get_their_own_answer(board) -> None:
    emulator, service = board

    def send(i: int) -> tuple[int, dict]:
        if i % 2:
            response = service.post("/sensor/b1_led/cmd", {"values": {"brightness": i}, "id": f"c-{i}"})
        else:
            response = service.post("/boards/b1/cmd", {"type": "config", "motion_hold_ms": 1000 + i,
                                                       "id": f"c-{i}"})
        return i, response.json()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))
    for i, body in answers:
        assert body["status"] == "success", body
        assert body["cmd_id"] == f"c-{i}"
        if i % 2:
            assert body["result"]["brightness"] == i
        else:
            assert body["result"]["motion_hold_ms"] == 1000 + i
    assert service.board("b1")["counters"]["command_errors"] == {}


def test_unknown_sensor_is_a_404_listing_the_known_ids(board) -> None:
    _, service = board
    for path in ("/sensor/nope", "/sensor/nope/cached"):
        response = service.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "UNKNOWN_DEVICE"
        assert "b1_temperature" in response.json()["known"]
    command = service.post("/sensor/nope/cmd", {"values": {"state": "on"}})
    assert command.status_code == 404 and "b1_led" in command.json()["known"]
    assert service.get("/boards/nope").json()["error"] == "UNKNOWN_BOARD"


def test_rest_endpoints_answer_json(board) -> None:
    _, service = board
    sensors = service.get("/sensors").json()["sensors"]
    assert {s["device_id"] for s in sensors} == {f"b1_{t}" for t in
                                                  ("temperature", "humidity", "motion", "sound_level", "battery",
                                                   "window", "led")}
    assert all({"device_id", "type", "online", "state", "last_seen", "reason"} <= set(s) for s in sensors)
    health = service.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["instance_id"] == health.headers["X-Instance-Id"] == "sensor_hub_01"
    boards = service.get("/boards").json()["boards"]
    assert boards[0]["board_id"] == "b1" and boards[0]["fw"] and boards[0]["reported_board_id"] == "b1"
    assert boards[0]["counters"]["lines_ok"] > 0
    assert "errors" in service.get("/errors").json()
    metrics = service.get("/metrics").text
    assert 'sensor_hub_serial_lines_total{board="b1"}' in metrics
    nowhere = service.get("/nowhere")
    assert nowhere.json()["error"] == "NOT_FOUND" and nowhere.headers["X-Instance-Id"] == "sensor_hub_01"


def test_the_command_id_is_in_every_log_line_about_the_command(board) -> None:
    _, service = board
    seen: list[tuple[str, str | None]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), current_command_id()))

    logger = logging.getLogger("services.serial_handler")
    capture, old_level = Capture(), logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    try:
        assert service.post("/sensor/b1_led/cmd", {"values": {"state": "on"}, "id": "cmd-42"}).status_code == 200
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    about = [(text, cmd_id) for text, cmd_id in seen if "b1_led" in text]
    assert about and all(cmd_id == "cmd-42" for _, cmd_id in about), seen


def test_two_boards_feed_their_own_devices(emulators, services) -> None:
    first = emulators("--interval-ms", "100", "--board-id", "one")
    second = emulators("--interval-ms", "100", "--board-id", "two")
    service = services({"b1": {"port": str(first.link)}, "b2": {"port": str(second.link)}})
    service.wait_online("b1")
    service.wait_online("b2")
    first.control({"set": {"temperature": 11.5}})
    second.control({"set": {"temperature": 33.5}})
    wait_for(lambda: service.get("/sensor/b1_temperature").json()["state"].get("temperature") == 11.5, 15)
    wait_for(lambda: service.get("/sensor/b2_temperature").json()["state"].get("temperature") == 33.5, 15)
    assert service.board("b2")["reported_board_id"] == "two"
    led = service.post("/sensor/b2_led/cmd", {"values": {"brightness": 7}})
    assert led.json()["result"]["brightness"] == 7
    assert first.control({"get": "state"})["state"]["board"]["led"]["brightness"] == 255


def test_the_leds_state_is_known_from_the_boards_status_before_any_command(board) -> None:
    """A never-commanded LED is not unknown (nor assumed off): the board reports it in every status."""
    emulator, service = board
    view = wait_for(lambda: (v := service.get("/sensor/b1_led").json())["state"].get("state") and v, 15,
                    message="the LED's state from the board's status")
    assert view["state"] == {"state": "off", "color": "#ffffff", "brightness": 255, "blink": 0}


def test_a_garbled_led_report_changes_nothing() -> None:
    from services.serial_handler.devices import led_report

    assert led_report({"state": "on", "color": "#A0b0c0", "brightness": 9, "blink": 0}) == {
        "state": "on", "color": "#A0b0c0", "brightness": 9, "blink": 0}
    assert led_report({"state": "maybe", "color": "red", "brightness": 300, "blink": True, "x": 1}) == {}
    assert led_report("on") == {}
