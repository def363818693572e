"""The aggregator over real HTTP in front of a scripted handler (tests/state_aggregator/
scripted_handler.py): handler edge cases a board cannot produce on demand."""
from __future__ import annotations

import pytest

from testkit.helpers import wait_for
from testkit.scripted_handler import ScriptedHandler
from tests.state_aggregator.conftest import EventTap, service_ports


def test_every_configured_device_is_listed_and_absent_services_say_so(rig):
    under_test, _ = rig
    devices = under_test.listed()
    assert set(devices) == {d.device_id for d in under_test.settings.devices}
    window = devices["living_window"]
    assert window["online"] is True and window["service"] == "serial_handler"
    assert window["groups"] == ["living_room"] and window["name"] == "Living room window"
    balcony = wait_for(lambda: (d := under_test.listed()["balcony_temperature"])["reason"] == "service not running"
                       and d, 10)
    assert balcony["online"] is False and balcony["service"] == "http_poller"
    # Filters.
    assert set(under_test.listed(type="window")) == {"living_window"}
    assert "balcony_temperature" not in under_test.listed(online="true")
    assert under_test.get("/devices?type=toaster").status_code == 400


def test_health_reports_each_service_without_failing_for_an_absent_one(rig):
    under_test, _ = rig
    response = under_test.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["services"]["serial_handler"]["status"] == "ok"
    assert body["services"]["http_poller"]["status"] == "service not running"
    assert body["status"] == "degraded" and "http_poller: service not running" in body["reasons"]
    assert body["instance_id"] == response.headers["X-Instance-Id"] == "sensor_hub_01"


def test_a_reading_reaches_devices_and_events_with_its_source(rig):
    under_test, handler = rig
    tap = EventTap(under_test.url)
    try:
        wait_for(lambda: under_test.aggregator.publisher.stats()["clients"] >= 1, 10)
        handler.set_state("living_temperature", temperature=23.5)
        event = wait_for(lambda: tap.matching("state", device_id="living_temperature"), 10)[0]
        assert event["state"] == {"temperature": 23.5} and event["source"] == "serial_handler"
        listed = under_test.listed(include="state")["living_temperature"]
        assert listed["state"] == {"temperature": 23.5}
        assert under_test.device("living_temperature")["cache"] == "hit"
    finally:
        tap.close()


def test_events_resume_with_last_event_id(rig):
    under_test, handler = rig
    handler.set_state("living_humidity", humidity=40)
    first = wait_for(lambda: [e for e in under_test.aggregator.publisher.recent()
                              if e.kind == "state" and e.data.get("device_id") == "living_humidity"], 10)[-1]
    handler.set_state("living_humidity", humidity=41)
    wait_for(lambda: under_test.aggregator.publisher.recent()[-1].data.get("state") == {"humidity": 41}, 10)
    tap = EventTap(under_test.url, last_event_id=first.id)
    try:
        replayed = wait_for(lambda: tap.matching("state", device_id="living_humidity"), 10)
        assert replayed[0]["state"] == {"humidity": 41}
    finally:
        tap.close()


def press(handler: ScriptedHandler, mark: int) -> str:
    """A button event carrying ``mark``; returns its id on the handler's stream."""
    return handler.publisher.publish("event", {"device_id": "living_motion", "event": "button",
                                               "data": {"mark": mark}}).id


def test_a_restarted_aggregator_resumes_the_handler_stream_after_what_it_passed_on(build_aggregator,
                                                                                    scripted_serial):
    """The handler position the aggregator saves is only as far as its own stream has written
    events on to every consumer: a restart replays from there, so what the handler sent while the
    aggregator was away (or before it had passed it on) is not lost, and nothing is repeated."""
    services = service_ports()
    handler = scripted_serial(services["serial_handler"]["port"])
    first = build_aggregator(services)
    client = first.aggregator.clients["serial_handler"]
    wait_for(lambda: client.stream_connected, 15, message="following the handler")
    press(handler, 0)
    wait_for(lambda: client.stream_stats()["events"] >= 1, 10, message="mark 0 taken")
    first.aggregator.positions.save()
    assert first.aggregator.positions.get("serial_handler") is None  # nobody was sent it: not saved

    tap = EventTap(first.url)
    try:
        wait_for(lambda: first.aggregator.publisher.stats()["clients"] >= 1, 10)
        passed = press(handler, 1)
        wait_for(lambda: tap.matching("event", device_id="living_motion"), 10, message="mark 1 passed on")
        wait_for(lambda: first.aggregator.positions.get("serial_handler") == passed, 10,
                 message="its position saved by the writer")
    finally:
        tap.close()
    first.close()
    press(handler, 2)  # while no aggregator runs
    press(handler, 3)

    second = build_aggregator(services)  # the same DATA_DIR: it reads the saved positions
    tap = EventTap(second.url, last_event_id=f"{first.aggregator.publisher.epoch}-9")  # like the bridge
    try:
        marks = wait_for(lambda: [e["data"]["mark"] for e in tap.matching("event", device_id="living_motion")]
                         if len(tap.matching("event")) >= 2 else None, 15, message="marks 2 and 3")
        assert marks == [2, 3]
    finally:
        tap.close()


def test_stale_entry_is_pulled_again_from_the_owning_handler(build_aggregator, scripted_serial):
    services = service_ports()
    handler = scripted_serial(services["serial_handler"]["port"])
    under_test = build_aggregator(services, cache_ttl=0.3)
    handler.set_state("living_battery", battery=80, voltage=3.9)
    wait_for(lambda: under_test.aggregator.cache.peek("living_battery"), 10)
    before = len(handler.reads)
    # Nothing new arrives; once the entry is older than the TTL a read goes to the handler.
    view = wait_for(lambda: (v := under_test.device("living_battery"))["cache"] == "refreshed" and v, 10)
    assert view["state"] == {"battery": 80, "voltage": 3.9}
    assert len(handler.reads) > before and handler.reads[-1] == ("living_battery", False)
    assert under_test.get("/cache/stats").json()["refreshes"] >= 1


def test_fresh_and_force_refresh_ask_the_device(rig):
    under_test, handler = rig
    assert under_test.get("/device/living_sound?fresh=1").json()["cache"] == "refreshed"
    assert under_test.post("/device/living_sound/force-refresh").json()["cache"] == "refreshed"
    assert handler.reads[-2:] == [("living_sound", True), ("living_sound", True)]


def test_a_killed_handler_takes_its_devices_offline_and_they_come_back(rig):
    under_test, handler = rig
    handler.stop()
    down = wait_for(lambda: (d := under_test.listed()["living_led"])["online"] is False and d, 15)
    assert down["reason"] == "service not running"
    handler.restart()
    wait_for(lambda: all(d["online"] for d in under_test.listed(type="led").values()), 15,
             message="devices back after the restart")


def test_a_handler_that_dies_before_its_stream_ever_connected_is_noticed(build_aggregator, scripted_serial):
    services = service_ports()
    handler = scripted_serial(services["serial_handler"]["port"])
    handler.stream_broken = True
    under_test = build_aggregator(services)
    wait_for(lambda: under_test.listed()["living_led"]["online"], 15, message="online from the first pull")
    assert not under_test.aggregator.clients["serial_handler"].stream_connected
    handler.stop()
    wait_for(lambda: under_test.listed()["living_led"]["reason"] == "service not running", 15,
             message="the watchdog noticed")


def test_a_broken_stream_of_a_live_handler_keeps_its_devices_online(rig):
    under_test, handler = rig
    client = under_test.aggregator.clients["serial_handler"]
    syncs = client.syncs
    handler.drop_streams()
    wait_for(lambda: client.syncs > syncs and client.stream_connected, 15, message="resync after reconnect")
    offline = [e for e in under_test.aggregator.publisher.recent()
               if e.kind == "availability" and e.data.get("source") == "serial_handler" and not e.data["online"]]
    assert offline == []


def test_commands_reach_the_owning_handler_and_its_answer_comes_back(rig):
    under_test, handler = rig
    response = under_test.post("/device/living_window/cmd", json={"id": "w-1", "values": {"position": 60}})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success" and body["cmd_id"] == "w-1" and body["service"] == "serial_handler"
    assert handler.commands_for("living_window") == [{"values": {"position": 60}, "id": "w-1"}]
    # What `curl -d '{"position": 30}' .../cmd` sends: a form content type, a JSON body.
    curl_like = under_test.post("/device/living_window/cmd", data='{"position": 30}',
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert curl_like.status_code == 200 and handler.commands_for("living_window")[-1]["values"] == {"position": 30}
    handler.replies["living_led"] = (409, {"error": "REJECTED", "message": "the board said no"})
    refused = under_test.post("/device/living_led/cmd", json={"state": "on"})
    assert refused.status_code == 409 and refused.json()["error"] == "REJECTED"
    assert refused.json()["message"] == "the board said no"


def test_each_device_is_routed_to_the_service_that_owns_it(build_aggregator, scripted_serial):
    services = service_ports()
    serial = scripted_serial(services["serial_handler"]["port"])
    poller = ScriptedHandler([("balcony_temperature", "temperature"), ("kitchen_humidity", "humidity")],
                             services["http_poller"]["port"]).start()
    try:
        under_test = build_aggregator(services)
        wait_for(lambda: under_test.listed()["balcony_temperature"]["online"], 15, message="poller devices online")
        poller.set_state("kitchen_humidity", humidity=55)
        wait_for(lambda: under_test.listed(include="state")["kitchen_humidity"]["state"] == {"humidity": 55}, 10)
        response = under_test.post("/device/balcony_temperature/cmd", json={"interval": 60})
        assert response.status_code == 200 and response.json()["service"] == "http_poller"
        assert poller.commands_for("balcony_temperature") == [{"values": {"interval": 60},
                                                               "id": response.json()["cmd_id"]}]
        assert serial.commands == []
        assert under_test.get("/health").json()["services"]["http_poller"]["status"] == "ok"
    finally:
        poller.stop()
        poller.publisher.close()


@pytest.mark.parametrize(("device_id", "body", "status", "code"), [
    ("nope", {"position": 10}, 404, "UNKNOWN_DEVICE"),
    ("living_window", {"position": "open"}, 400, "INVALID_VALUE"),
    ("living_window", {"position": 140}, 400, "INVALID_VALUE"),
    ("living_led", {"brightness": 300}, 400, "INVALID_VALUE"),
    ("living_temperature", {"position": 3}, 400, "UNSUPPORTED"),
])
def test_invalid_commands_never_reach_the_handler(rig, device_id, body, status, code):
    under_test, handler = rig
    response = under_test.post(f"/device/{device_id}/cmd", json=body)
    assert response.status_code == status
    assert response.json()["error"] == code and response.json()["message"]
    if code == "UNKNOWN_DEVICE":
        assert "living_window" in response.json()["known"]
    assert handler.commands == []


def test_a_disabled_device_is_listed_offline_and_refuses_commands(build_aggregator, scripted_serial):
    services = service_ports()
    handler = scripted_serial(services["serial_handler"]["port"])
    under_test = build_aggregator(services, disabled=("living_led",))
    wait_for(lambda: under_test.listed()["living_window"]["online"], 15)
    led = under_test.listed()["living_led"]
    assert led["enabled"] is False and led["online"] is False and led["reason"] == "disabled in the instance config"
    refused = under_test.post("/device/living_led/cmd", json={"state": "on"})
    assert refused.status_code == 409 and refused.json()["error"] == "DEVICE_DISABLED"
    group = under_test.post("/group/living_room/cmd", json={"state": "on"})
    assert group.status_code == 400 and group.json()["members"]["living_led"]["error"] == "DEVICE_DISABLED"
    assert handler.commands == []


def test_not_json_is_a_clear_400(rig):
    under_test, handler = rig
    response = under_test.post("/device/living_led/cmd", data="{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "INVALID_JSON"
    assert handler.commands == []


def test_group_command_fans_out_to_members_that_take_it(rig):
    under_test, handler = rig
    response = under_test.post("/group/living_room/cmd", json={"id": "g-1", "values": {"interval": 10}})
    assert response.status_code == 200
    body = response.json()
    sensors = ["living_temperature", "living_humidity", "living_motion", "living_sound", "living_battery"]
    assert body["sent"] == 5 and body["succeeded"] == 5
    assert all(body["members"][d]["status"] == "success" for d in sensors)
    assert body["members"]["living_window"]["status"] == "skipped"
    assert sorted(d for d, _ in handler.commands) == sorted(sensors)
    assert {b["id"] for _, b in handler.commands} == {f"g-1.{d}" for d in sensors}


def test_group_command_reports_partial_failure_per_member(rig):
    under_test, handler = rig
    handler.replies["living_motion"] = (504, {"error": "TIMEOUT", "message": "no ack"})
    response = under_test.post("/group/living_room/cmd", json={"interval": 5})
    assert response.status_code == 207
    members = response.json()["members"]
    assert members["living_motion"]["status"] == "error" and members["living_motion"]["error"] == "TIMEOUT"
    assert members["living_temperature"]["status"] == "success"
    nobody = under_test.post("/group/living_room/cmd", json={"colour": "#ffffff"})
    assert nobody.status_code == 400
    assert under_test.post("/group/nope/cmd", json={"interval": 5}).status_code == 404


def test_json_is_pretty_for_curl_and_errors_are_aggregated(rig):
    under_test, _ = rig
    assert under_test.get("/devices", headers={"User-Agent": "curl/8.5.0"}).text.startswith("{\n  ")
    assert under_test.get("/devices").text.startswith('{"devices":')
    errors = under_test.get("/errors").json()["errors"]
    assert any(e["service"] == "serial_handler" and e["error_code"] == "NOISE" for e in errors)
    assert under_test.get("/groups").json()["groups"][0]["group_id"] == "living_room"
    assert under_test.post("/cache/clear").json()["cleared"] >= 0
    assert "sensor_hub_http_requests_total" in under_test.get("/metrics").text


def test_without_ml_inference_the_automation_pauses_and_the_aggregator_serves_on(rig):
    """The example's window automation, with nothing on ml_inference's port: paused with the
    reason, the instance degraded but serving, readings and commands flowing."""
    under_test, handler = rig
    handler.set_state("living_temperature", temperature=30.0)
    handler.set_state("living_humidity", humidity=45.0)
    health = wait_for(lambda: (r := under_test.get("/health")).json()["automations"]["living_window_auto"]["status"]
                      == "paused" and r, 15, message="the automation paused")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["automations"]["living_window_auto"]["reason"] == "ml_inference: service not running"
    paused = [e for e in under_test.get("/errors").json()["errors"] if e["error_code"] == "AUTOMATION_PAUSED"]
    assert len(paused) == 1 and paused[0]["device_id"] == "living_window"
    handler.set_state("living_temperature", temperature=31.0)
    wait_for(lambda: under_test.device("living_temperature")["state"]["temperature"] == 31.0, 10,
             message="readings still arrive")
    led = under_test.post("/device/living_led/cmd", json={"id": "led-1", "values": {"state": "on"}})
    assert led.status_code == 200 and handler.commands_for("living_led")[0]["id"] == "led-1"
    assert handler.commands_for("living_window") == []
