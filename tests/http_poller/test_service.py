"""The HTTP poller's API with real simulated devices behind it: views, events, availability,
fresh reads, commands and their errors, health and metrics."""
from __future__ import annotations

import time

from testkit.helpers import free_port, wait_for

from .conftest import sim_post

ESP = {"type": "temperature", "endpoint": "esp", "key": "outdoor_temperature"}


def test_devices_come_online_with_their_values_and_the_api_describes_them(simulator, service):
    sim = simulator("esphome")
    svc = service({"esp": {"url": sim.url, "profile": "esphome"}},
                  {"balcony": ESP, "relay": {"type": "switch", "endpoint": "esp", "key": "relay"}})
    view = svc.wait_online("balcony")
    assert view["state"] == {"temperature": 21.0}
    assert view["endpoint"] == "esp" and view["key"] == "outdoor_temperature" and view["last_seen"]
    sensors = svc.get("/sensors").json()["sensors"]
    assert [s["device_id"] for s in sensors] == ["balcony", "relay"]
    health = svc.get("/health")
    assert health.status_code == 200
    assert health.json()["instance_id"] == health.headers["X-Instance-Id"] == "sensor_hub_01"
    endpoint = svc.endpoint("esp")
    assert endpoint["status"] == "online" and endpoint["profile"] == "esphome" and endpoint["polls"] >= 1
    assert endpoint["devices"] == ["balcony", "relay"]
    missing = svc.get("/sensor/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "UNKNOWN_DEVICE"
    assert missing.json()["known"] == ["balcony", "relay"]
    assert svc.get("/endpoints/nope").json()["error"] == "UNKNOWN_ENDPOINT"


def test_state_events_only_when_a_value_changes(simulator, service):
    sim = simulator("esphome")
    svc = service({"esp": {"url": sim.url, "profile": "esphome", "poll_interval": 0.1}}, {"balcony": ESP})
    svc.wait_event(lambda e: e.kind == "state", message="the first state")
    polls = svc.endpoint("esp")["polls"]
    wait_for(lambda: svc.endpoint("esp")["polls"] >= polls + 5, 15, message="five more polls")
    states = svc.events_since(0, "state")
    assert len(states) == 1
    assert states[0].data["state"] == {"temperature": 21.0} and states[0].data["endpoint"] == "esp"
    mark = svc.mark()
    sim_post(sim, "set", {"temperature": 23.5})
    event = svc.wait_event(lambda e: e.kind == "state", start=mark, message="the changed state")
    assert event.data["state"] == {"temperature": 23.5}


def test_an_endpoint_that_fails_goes_offline_at_once_backs_off_and_comes_back(simulator, service):
    sim = simulator("esphome")
    svc = service({"esp": {"url": sim.url, "profile": "esphome", "poll_interval": 0.1}}, {"balcony": ESP})
    svc.wait_online("balcony")
    mark = svc.mark()
    sim_post(sim, "fault", {"fault": "error"})
    gone = svc.wait_event(lambda e: e.kind == "availability" and not e.data["online"], start=mark)
    assert gone.data["reason"] == "HTTP 500" and gone.data["endpoint"] == "esp"
    error = svc.wait_event(lambda e: e.kind == "error", start=mark)
    assert error.data["error_code"] == "ENDPOINT_ERROR" and "HTTP 500" in error.data["message"]
    health = svc.get("/health")
    assert health.status_code == 503 and health.json()["reasons"] == ["endpoint esp: HTTP 500"]
    # Failing polls go on, further and further apart, and the outage is recorded once.
    wait_for(lambda: svc.endpoint("esp")["consecutive_failures"] >= 4, 15, message="four failed polls")
    failing_since = time.monotonic()
    requests_then = sim.device().requests
    wait_for(lambda: svc.endpoint("esp")["consecutive_failures"] >= 6, 15, message="six failed polls")
    spent = time.monotonic() - failing_since
    assert spent > 0.4, "polls 5 and 6 came after 0.8 s each, not every 0.1 s"
    assert sim.device().requests - requests_then <= 3
    assert [e.data["error_code"] for e in svc.events_since(mark, "error")] == ["ENDPOINT_ERROR"]
    assert len(svc.get("/errors").json()["errors"]) == 1
    # Back on the first good poll (asked for now, the backoff is not waited out).
    mark = svc.mark()
    sim_post(sim, "fault", {"fault": "none"})
    assert svc.get("/sensor/balcony?fresh=1").json()["fresh"] is True
    back = svc.wait_event(lambda e: e.kind == "availability" and e.data["online"], start=mark)
    assert back.data["reason"] is None
    assert svc.get("/health").status_code == 200


def test_reasons_say_what_went_wrong(simulator, service):
    garbage, timeout = simulator("json"), simulator("json")
    sim_post(garbage, "fault", {"fault": "garbage"})
    sim_post(timeout, "fault", {"fault": "hang"})
    refused = f"http://127.0.0.1:{free_port()}"
    svc = service({"g": {"url": garbage.url, "timeout": 0.5}, "t": {"url": timeout.url, "timeout": 0.5},
                   "r": {"url": refused, "timeout": 0.5}},
                  {"g_t": {"type": "temperature", "endpoint": "g"}, "t_t": {"type": "temperature", "endpoint": "t"},
                   "r_t": {"type": "temperature", "endpoint": "r"}})
    for device_id, reason in (("g_t", "not JSON"), ("t_t", "timeout after 0.5 s"), ("r_t", "connection refused")):
        wait_for(lambda d=device_id, r=reason: svc.sensor(d)["reason"] == r, 15, message=f"{device_id}: {reason}")
    codes = sorted(e["error_code"] for e in svc.get("/errors").json()["errors"])
    assert codes == ["BAD_PAYLOAD", "ENDPOINT_UNREACHABLE", "ENDPOINT_UNREACHABLE"]
    health = svc.get("/health")
    assert health.status_code == 503 and len(health.json()["reasons"]) == 3


def test_one_failing_endpoint_of_two_leaves_the_service_healthy(simulator, service):
    good, bad = simulator("json"), simulator("json")
    sim_post(bad, "fault", {"fault": "error"})
    svc = service({"good": {"url": good.url}, "bad": {"url": bad.url}},
                  {"a": {"type": "temperature", "endpoint": "good"}, "b": {"type": "temperature", "endpoint": "bad"}})
    wait_for(lambda: svc.endpoint("bad")["status"] == "offline" and svc.endpoint("good")["status"] == "online", 15)
    health = svc.get("/health")
    assert health.status_code == 200
    assert health.json()["failing"] == ["endpoint bad: HTTP 500"]


def test_a_missing_key_or_a_bad_value_takes_only_that_device_offline(simulator, service):
    sim = simulator("json")
    svc = service({"j": {"url": sim.url, "poll_interval": 0.1}},
                  {"ok": {"type": "temperature", "endpoint": "j"},
                   "typo": {"type": "humidity", "endpoint": "j", "key": "outdoor.humdity"},
                   "word": {"type": "temperature", "endpoint": "j", "key": "switch"}})
    svc.wait_online("ok")
    wait_for(lambda: svc.sensor("typo")["reason"] and svc.sensor("word")["reason"] != "waiting for the first poll", 15)
    assert svc.sensor("typo")["reason"] == \
        "key 'outdoor.humdity' is not in the response ('humdity' not found in outdoor)"
    assert svc.sensor("word")["reason"] == "temperature: expected a number, got 'OFF'"
    polls = svc.endpoint("j")["polls"]
    wait_for(lambda: svc.endpoint("j")["polls"] >= polls + 3, 15)
    codes = [e["error_code"] for e in svc.get("/errors").json()["errors"]]
    assert sorted(codes) == ["BAD_PAYLOAD", "KEY_MISSING"]  # once each, not once per poll
    assert svc.get("/health").status_code == 200


def test_fresh_reads_poll_now(simulator, service):
    sim = simulator("esphome")
    svc = service({"esp": {"url": sim.url, "profile": "esphome", "poll_interval": 3600, "timeout": 1}},
                  {"balcony": ESP})
    svc.wait_online("balcony")
    sim_post(sim, "set", {"temperature": 30.5})
    assert svc.sensor("balcony")["state"] == {"temperature": 21.0}  # cached: the next poll is an hour away
    fresh = svc.get("/sensor/balcony?fresh=1").json()
    assert fresh["fresh"] is True and fresh["state"] == {"temperature": 30.5}
    sim_post(sim, "fault", {"fault": "hang"})
    started = time.monotonic()
    stale = svc.get("/sensor/balcony?fresh=1").json()
    assert time.monotonic() - started < 3.5
    assert stale["fresh"] is False and stale["fresh_error"] == "ENDPOINT_UNREACHABLE: timeout after 1 s"
    assert stale["state"] == {"temperature": 30.5}


def test_commands_carry_out_and_publish_the_new_state(simulator, service):
    sim = simulator("esphome")
    svc = service({"esp": {"url": sim.url, "profile": "esphome", "poll_interval": 3600}},
                  {"relay": {"type": "switch", "endpoint": "esp", "key": "relay"},
                   "balcony": ESP, "window": {"type": "window", "endpoint": "esp", "key": "window"}})
    svc.wait_online("relay")
    mark = svc.mark()
    reply = svc.post("/sensor/relay/cmd", {"values": {"state": "on"}, "id": "c-1"})
    assert reply.status_code == 200
    assert reply.json() == {"status": "success", "cmd_id": "c-1", "result": {"state": "on"}}
    assert sim.device().relay("relay") is True
    event = svc.wait_event(lambda e: e.kind == "state" and e.data["device_id"] == "relay", start=mark)
    assert event.data["state"] == {"state": "on"}
    assert svc.post("/sensor/relay/cmd", {"state": "off"}).json()["result"] == {"state": "off"}  # values alone
    moved = svc.post("/sensor/window/cmd", {"values": {"position": 60}}).json()
    assert moved["result"]["target"] == 60
    wait_for(lambda: svc.sensor("window")["state"] == {"position": 60, "target": 60, "moving": False}, 15,
             message="the window seen at rest at 60 %")
    read = svc.post("/sensor/balcony/cmd", {"values": {}}).json()
    assert read["status"] == "success" and read["result"] == {"temperature": 21.0}


def test_command_errors_use_the_handler_codes(simulator, service):
    esp, tas, js = simulator("esphome"), simulator("tasmota"), simulator("json")
    svc = service({"esp": {"url": esp.url, "profile": "esphome"}, "tas": {"url": tas.url, "profile": "tasmota"},
                   "js": {"url": js.url}, "gone": {"url": f"http://127.0.0.1:{free_port()}", "profile": "esphome"}},
                  {"relay": {"type": "switch", "endpoint": "esp", "key": "relay"}, "balcony": ESP,
                   "relay7": {"type": "switch", "endpoint": "tas", "key": "POWER7"},
                   "js_switch": {"type": "switch", "endpoint": "js"},
                   "lost": {"type": "switch", "endpoint": "gone", "key": "relay"}})
    def error(device_id: str, body: object) -> tuple[int, str, str]:
        response = svc.post(f"/sensor/{device_id}/cmd", body)
        return response.status_code, response.json()["error"], response.json()["message"]

    assert error("nope", {"state": "on"})[:2] == (404, "UNKNOWN_DEVICE")
    assert error("relay", {"state": "dim"})[:2] == (400, "INVALID_VALUE")
    assert error("relay", {"position": 3})[:2] == (400, "UNSUPPORTED")
    assert error("js_switch", {"state": "on"})[:2] == (400, "UNSUPPORTED")
    assert error("balcony", {"interval": 10})[:2] == (400, "UNSUPPORTED")
    assert error("relay7", {"state": "on"})[:2] == (409, "REJECTED")
    status, code, message = error("lost", {"state": "on"})
    assert (status, code) == (503, "OFFLINE") and message.endswith("connection refused")
    sim_post(esp, "fault", {"fault": "hang"})
    started = time.monotonic()
    status, code, message = error("relay", {"values": {"state": "on"}, "timeout": 500})
    assert (status, code) == (504, "TIMEOUT") and message == "no answer from endpoint esp within 0.5 s"
    assert time.monotonic() - started < 3
    assert svc.post("/sensor/relay/cmd", "not an object").json()["error"] == "INVALID_PAYLOAD"


def test_motion_changes_are_events_too(simulator, service):
    sim = simulator("esphome")
    svc = service({"esp": {"url": sim.url, "profile": "esphome", "poll_interval": 0.1}},
                  {"hall": {"type": "motion", "endpoint": "esp", "key": "motion"}})
    svc.wait_online("hall")
    mark = svc.mark()
    sim_post(sim, "set", {"motion": True})
    started = svc.wait_event(lambda e: e.kind == "event", start=mark)
    assert started.data["event"] == "motion_started" and started.data["device_id"] == "hall"
    sim_post(sim, "set", {"motion": False})
    svc.wait_event(lambda e: e.kind == "event" and e.data["event"] == "motion_stopped", start=mark)


def test_disabled_endpoints_and_devices(simulator, service):
    sim = simulator("json")
    svc = service({"on": {"url": sim.url}, "off": {"url": sim.url, "enabled": False}},
                  {"a": {"type": "temperature", "endpoint": "on"}, "b": {"type": "temperature", "endpoint": "off"},
                   "c": {"type": "humidity", "endpoint": "on", "enabled": False}})
    assert [s["device_id"] for s in svc.get("/sensors").json()["sensors"]] == ["a", "b"]
    assert svc.sensor("b")["reason"] == "the endpoint is disabled in the config"
    assert svc.post("/sensor/b/cmd", {}).json()["error"] == "OFFLINE"
    assert svc.get("/sensor/b?fresh=1").json()["fresh_error"] == "OFFLINE: the endpoint is disabled in the config"
    assert [e["endpoint_id"] for e in svc.get("/endpoints").json()["endpoints"]] == ["on"]


def test_metrics_count_polls_and_their_time_per_profile(simulator, service):
    sim = simulator("shelly")
    svc = service({"sh": {"url": sim.url, "profile": "shelly"}}, {"t": {"type": "temperature", "endpoint": "sh"}})
    svc.wait_online("t")
    text = svc.get("/metrics").text
    assert 'sensor_hub_http_polls_total{outcome="ok",profile="shelly"}' in text
    assert 'sensor_hub_http_poll_seconds_bucket{le="0.5",profile="shelly"}' in text
    assert 'sensor_hub_http_endpoint_online{endpoint="sh",profile="shelly"} 1.0' in text
