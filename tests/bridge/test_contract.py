"""Every topic of the contract table (docs/mqtt.md, "Topics") against each real broker (Mosquitto and
nats-server's MQTT gateway), an in-process bridge and a real HTTP aggregator on loopback."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from testkit.helpers import wait_for
from testkit.mqtt_watch import Watcher
from tests.bridge.conftest import BASE

STATUS = f"{BASE}/status"


def dev(device_id: str, rest: str) -> str:
    return f"{BASE}/devices/{device_id}/{rest}"


@pytest.fixture
def broker(any_broker):
    """Every test here runs once per broker (tests/conftest.py, ``any_broker``)."""
    return any_broker


@pytest.fixture
def running(aggregator, watcher, start_bridge):
    bridge = start_bridge()
    watcher.wait(STATUS, lambda p: p == b"online")
    wait_for(lambda: bridge.ctx.bus.idle(), timeout=10)
    return bridge


def test_status_online_when_ready_then_offline_on_graceful_stop(running, watcher):
    assert watcher.last(STATUS) == b"online"
    assert running.stop() is True
    watcher.wait(STATUS, lambda p: p == b"offline")


def test_the_health_file_follows_the_broker_link(running, broker):
    """What the container's HEALTHCHECK reads (bridge/health.py)."""
    from bridge.health import bridge_problems

    run_dir = running.ctx.settings.run_dir
    wait_for(lambda: bridge_problems(run_dir) == [], timeout=10, message="a healthy report")
    broker.stop()
    wait_for(lambda: any("not connected to the broker" in p for p in bridge_problems(run_dir)), timeout=15,
             message="the report to say the broker is gone")
    broker.start()
    wait_for(lambda: bridge_problems(run_dir) == [], timeout=30, message="healthy again")
    running.stop()
    assert "no health report yet" in bridge_problems(run_dir)[0]  # a stopped bridge is not healthy


def test_graceful_stop_keeps_its_deadline_while_a_command_waits_for_its_board(running, aggregator, watcher):
    aggregator.command_delay = 10  # a board that answers long after the stop
    watcher.publish(dev("living_window", "cmd"), {"id": "slow", "values": {"position": 40}, "timeout": 20000})
    wait_for(lambda: any(c.get("id") == "slow" for c in aggregator.commands), timeout=10)
    started = time.monotonic()
    assert running.stop() is True  # offline published, nothing left in the outbox
    assert time.monotonic() - started < 5  # the connector's stop budget, not the command's 20 s
    assert running.abandoned_commands == 1
    watcher.wait(STATUS, lambda p: p == b"offline")


def test_status_not_online_until_the_aggregator_answers(bridge_settings, agg_port, watcher, start_bridge):
    from testkit.fake_aggregator import FakeAggregator

    bridge = start_bridge()
    wait_for(lambda: bridge.ctx.link.connected, timeout=10)
    watcher.wait(STATUS, lambda p: p == b"offline")  # connected, but nothing to serve yet
    assert b"online" not in watcher.on(STATUS)
    agg = FakeAggregator(bridge_settings(), port=agg_port).start()
    try:
        watcher.wait(STATUS, lambda p: p == b"online", timeout=20)
    finally:
        agg.stop()


def test_state_and_only_changed_properties(running, aggregator, watcher):
    aggregator.set_state("living_battery", battery=80, voltage=3.9)
    doc = watcher.wait_json(dev("living_battery", "state"), lambda d: d["state"].get("battery") == 80)
    assert doc["device_id"] == "living_battery" and doc["state"]["voltage"] == 3.9 and doc["state"]["online"] is True
    assert "timestamp" in doc
    watcher.wait(dev("living_battery", "state/voltage"), lambda p: p == b"3.9")
    voltage_before = len(watcher.on(dev("living_battery", "state/voltage")))
    aggregator.set_state("living_battery", battery=79, voltage=3.9)
    watcher.wait(dev("living_battery", "state/battery"), lambda p: p == b"79")
    watcher.wait_json(dev("living_battery", "state"), lambda d: d["state"]["battery"] == 79)
    assert len(watcher.on(dev("living_battery", "state/voltage"))) == voltage_before  # unchanged: not re-sent


def test_availability_goes_into_state_and_online_topic(running, aggregator, watcher):
    aggregator.set_online("living_motion", False, "board silent")
    watcher.wait_json(dev("living_motion", "state"), lambda d: d["state"]["online"] is False)
    watcher.wait(dev("living_motion", "state/online"), lambda p: p == b"false")
    devices = watcher.wait_json(f"{BASE}/meta/devices_list",
                                lambda d: any(x["device_id"] == "living_motion" and not x["online"] for x in d))
    entry = next(x for x in devices if x["device_id"] == "living_motion")
    assert entry["global_id"] == "sensor_hub_01_living_motion" and entry["enabled"] is True and entry["model"]


def test_events_global_events_and_errors(running, aggregator, watcher):
    aggregator.emit_event("living_motion", "motion_started", {"level": 1})
    event = watcher.wait_json(dev("living_motion", "events"))
    assert event["event"] == "motion_started" and event["data"] == {"level": 1} and event["timestamp"]
    glob = watcher.wait_json("IoT2mqtt/v1/global/events")
    assert glob["source"] == "sensor_hub_01_living_motion" and glob["event"] == "motion_started"
    aggregator.emit_error("living_window", "MOTOR_STALL", "the window motor stalled")
    error = watcher.wait_json(dev("living_window", "error"))
    assert error["error_code"] == "MOTOR_STALL" and error["severity"] == "error" and error["message"]
    assert not any(r for t, _, r in watcher.messages if t.endswith("/events") or t.endswith("/error"))


def test_cmd_with_id_gets_a_success_response(running, aggregator, watcher):
    watcher.publish(dev("living_window", "cmd"), {"id": "c1", "values": {"position": 40}, "timeout": 2000})
    response = watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "c1")
    assert response["status"] == "success" and response["duration_ms"] >= 0 and response["timestamp"]
    sent = next(c for c in aggregator.commands if c.get("id") == "c1")
    assert sent["values"] == {"position": 40} and sent["timeout"] == 2000 and sent["target"] == "living_window"


def test_cmd_without_values_key_and_without_id(running, aggregator, watcher):
    watcher.publish(dev("living_led", "cmd"), {"color": "#ff0000", "timestamp": time.time()})
    wait_for(lambda: any(c["target"] == "living_led" for c in aggregator.commands), timeout=10)
    sent = next(c for c in aggregator.commands if c["target"] == "living_led")
    assert sent["values"] == {"color": "#ff0000"} and "id" not in sent


def test_cmd_error_from_the_device_is_answered_with_code_and_message(running, aggregator, watcher):
    aggregator.command_error = {"status": 409, "error": "REJECTED", "message": "window is blocked"}
    watcher.publish(dev("living_window", "cmd"), {"id": 7, "values": {"position": 10}})
    response = watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "7")
    assert response["status"] == "error" and response["error"] == "REJECTED"
    assert response["message"] == "window is blocked" and "duration_ms" in response


def test_stale_command_is_refused_and_not_carried_out(running, aggregator, watcher):
    old = (datetime.now(UTC) - timedelta(seconds=45)).isoformat()
    watcher.publish(dev("living_window", "cmd"), {"id": "old", "timestamp": old, "values": {"position": 90}})
    response = watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "old")
    assert response["status"] == "error" and response["error"] == "STALE_COMMAND" and "30" in response["message"]
    assert not any(c.get("id") == "old" for c in aggregator.commands)


def test_get_with_properties_filter_does_not_touch_retained_state(running, aggregator, watcher):
    aggregator.set_state("living_battery", battery=55, voltage=3.7)
    watcher.wait_json(dev("living_battery", "state"), lambda d: d["state"].get("battery") == 55)
    watcher.publish(dev("living_battery", "get"), {"properties": ["voltage"]})
    doc = watcher.wait_json(dev("living_battery", "state"), lambda d: "voltage" in d["state"]
                            and "battery" not in d["state"])
    assert doc["state"] == {"voltage": 3.7}
    watcher.publish(dev("living_battery", "get"), b"")
    watcher.wait_json(dev("living_battery", "state"),
                      lambda d: d["state"] == {"battery": 55, "voltage": 3.7, "online": True})
    last = [m for m in watcher.messages if m[0] == dev("living_battery", "state")][-1]
    assert last[2] is False  # the answer to get is not retained


def test_group_command(running, aggregator, watcher):
    watcher.publish(f"{BASE}/groups/living_room/cmd", {"id": "g1", "values": {"interval": 30}})
    response = watcher.wait_json(f"{BASE}/groups/living_room/cmd/response", lambda d: d["cmd_id"] == "g1")
    assert response["status"] == "success" and "living_led" in response["result"]["results"]
    assert any(c["kind"] == "group" and c["target"] == "living_room" for c in aggregator.commands)


def test_meta_requests(running, watcher):
    watcher.publish(f"{BASE}/meta/request/info", "{}")
    info = watcher.wait_json(f"{BASE}/meta/info", lambda d: d["devices"] == 9)
    assert info["instance_id"] == "sensor_hub_01" and info["connector_type"] == "sensor-hub" and "uptime_s" in info
    before = len(watcher.on(f"{BASE}/meta/devices_list"))
    watcher.publish(f"{BASE}/meta/request/devices_list", "{}")
    wait_for(lambda: len(watcher.on(f"{BASE}/meta/devices_list")) > before, timeout=10)
    assert len(watcher.last_json(f"{BASE}/meta/devices_list")) == 9


BAD_INPUTS = [
    # (topic suffix, payload, expected error code, answered on the target's cmd/response?)
    ("devices/living_window/cmd", b"not json", "INVALID_JSON", False),
    ("devices/living_window/cmd", b"", "INVALID_PAYLOAD", False),
    ("devices/living_window/cmd", b"[1, 2]", "INVALID_PAYLOAD", False),
    ("devices/living_window/cmd", json.dumps({"id": "b1", "values": "open"}).encode(), "INVALID_PAYLOAD", True),
    ("devices/living_window/cmd", json.dumps({"id": "b2", "values": {}}).encode(), "INVALID_PAYLOAD", True),
    ("devices/living_window/cmd", json.dumps({"id": "b3", "values": {"position": 1}, "timeout": "soon"}).encode(),
     "INVALID_PAYLOAD", True),
    ("devices/living_window/cmd", json.dumps({"id": "b4", "pad": "x" * 70_000}).encode(), "PAYLOAD_TOO_LARGE", False),
    ("devices/living_window/cmd/extra", json.dumps({"id": "b5", "values": {"position": 1}}).encode(),
     "INVALID_TOPIC", True),
    ("devices/no_such_device/cmd", json.dumps({"id": "b6", "values": {"x": 1}}).encode(), "UNKNOWN_DEVICE", True),
    ("devices/no_such_device/cmd", json.dumps({"values": {"x": 1}}).encode(), "UNKNOWN_DEVICE", False),
    ("groups/no_such_group/cmd", json.dumps({"id": "b7", "values": {"x": 1}}).encode(), "UNKNOWN_GROUP", True),
    ("groups/no_such_group/cmd", json.dumps({"values": {"x": 1}}).encode(), "UNKNOWN_GROUP", False),
    ("devices/living_window/get", b"{\"properties\": \"position\"}", "INVALID_PAYLOAD", False),
    ("meta/request/everything", b"{}", "UNKNOWN_REQUEST", False),
]


def test_bad_input_is_answered_never_dropped(running, aggregator, watcher, caplog):
    for suffix, payload, code, on_response in BAD_INPUTS:
        watcher.publish(f"{BASE}/{suffix}", payload)
        if on_response:
            cmd_id = json.loads(payload)["id"]
            kind, target = suffix.split("/")[:2]  # answered on the response topic of the target it named
            response_topic = f"{BASE}/{kind}/{target}/cmd/response"
            doc = watcher.wait_json(response_topic, lambda d, i=cmd_id: d["cmd_id"] == i)
            assert doc["status"] == "error" and doc["error"] == code, (suffix, doc)
            assert not any(r for t, _, r in watcher.messages if t == response_topic), "never retained"
        else:
            topics = [dev("living_window", "error"), f"{BASE}/error"]
            wait_for(lambda c=code, ts=topics: any(d["error_code"] == c for t in ts for d in watcher.json_on(t)),
                     timeout=10, message=f"error {code} for {suffix}")
    assert aggregator.commands == []  # nothing bad reached a device
    assert running.commands.rejected == len(BAD_INPUTS)
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused")]
    assert len(refusals) == len(BAD_INPUTS)  # logged once each
    # and the bridge still works
    watcher.publish(dev("living_window", "cmd"), {"id": "ok", "values": {"position": 5}})
    watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "ok" and d["status"] == "success")


def test_retained_commands_are_not_replayed_at_connect(aggregator, watcher, start_bridge):
    # A command left retained on the broker would be carried out again at every reconnect.
    watcher.publish(dev("living_window", "cmd"), {"id": "r1", "values": {"position": 3}}, retain=True)
    start_bridge()
    doc = watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "r1")
    assert doc["status"] == "error" and doc["error"] == "RETAINED_COMMAND"
    assert aggregator.commands == []


def test_heartbeat_republishes_unchanged_state_and_properties(aggregator, watcher, start_bridge):
    start_bridge(overrides={"update_interval": 1})
    aggregator.set_state("living_temperature", temperature=21.5)
    topic = dev("living_temperature", "state/temperature")
    watcher.wait(topic, lambda p: p == b"21.5")
    first = len(watcher.on(topic))
    wait_for(lambda: len(watcher.on(topic)) >= first + 2, timeout=15, message="two heartbeats")
    assert set(watcher.on(topic)) == {b"21.5"}


def test_retain_follows_mqtt_retain_and_client_id_is_per_program(aggregator, watcher, start_bridge):
    bridge = start_bridge(env={"MQTT_RETAIN": "false", "MQTT_CLIENT_PREFIX": "hub"})
    assert bridge.ctx.link.client_id == "hub_sensor_hub_01_bridge"
    aggregator.set_state("living_temperature", temperature=19.0)
    watcher.wait(dev("living_temperature", "state/temperature"), lambda p: p == b"19.0")
    flags = {r for t, _, r in watcher.messages if t.startswith(dev("living_temperature", "state"))}
    assert flags == {False}
    late = Watcher(watcher.port, [dev("living_temperature", "state/#"), STATUS]).start()
    try:
        late.wait(STATUS)  # status is always retained: once it is here, a retained state would be too
        assert late.on(dev("living_temperature", "state/temperature")) == []
    finally:
        late.stop()


def test_status_goes_offline_when_the_aggregator_goes_away(running, aggregator, watcher):
    aggregator.stop()
    watcher.wait(STATUS, lambda p: p == b"offline", timeout=30)
    assert running.ctx.link.connected  # MQTT is fine; the connector cannot serve


def test_a_command_published_twice_is_carried_out_once_and_answered_once(running, aggregator, watcher):
    """A controller that missed a PUBACK publishes again: a copy of a command in flight, or just
    answered, runs no second time and gets no second answer (bridge/recent_commands.py)."""
    aggregator.command_delay = 0.5  # the first is still in flight when its copy arrives
    command = {"id": "twice", "values": {"position": 30}}
    watcher.publish(dev("living_window", "cmd"), command)
    watcher.publish(dev("living_window", "cmd"), command)
    wait_for(lambda: running.commands.recent.duplicates == 1, timeout=10, message="the copy in flight to be seen")
    watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "twice")
    aggregator.command_delay = 0
    watcher.publish(dev("living_window", "cmd"), command)  # a copy of one just answered
    wait_for(lambda: running.commands.recent.duplicates == 2, timeout=10, message="the answered copy to be seen")
    watcher.publish(dev("living_window", "cmd"), {"id": "after", "values": {"position": 31}})
    watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "after")
    answers = [d for d in watcher.json_on(dev("living_window", "cmd/response")) if d["cmd_id"] == "twice"]
    assert [a["status"] for a in answers] == ["success"]
    assert sum(c.get("id") == "twice" for c in aggregator.commands) == 1


def test_a_command_on_overlapping_subscriptions_is_carried_out_once(aggregator, watcher, start_bridge, monkeypatch):
    """Were the bridge's filters to overlap, a broker may deliver one copy per filter (nats-server
    does): a command with an id still runs once and is answered once."""
    from shared.topics import Topics

    plain = Topics.subscriptions
    monkeypatch.setattr(Topics, "subscriptions",
                        lambda self, ha=False: [*plain(self, ha), f"{self.root}/devices/+/cmd"])
    bridge = start_bridge()
    watcher.wait(STATUS, lambda p: p == b"online")
    watcher.publish(dev("living_window", "cmd"), {"id": "overlap", "values": {"position": 60}})
    watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "overlap")
    watcher.publish(dev("living_window", "cmd"), {"id": "marker", "values": {"position": 61}})
    watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "marker")
    wait_for(lambda: bridge.ctx.bus.idle(), timeout=10)
    answers = [d for d in watcher.json_on(dev("living_window", "cmd/response")) if d["cmd_id"] == "overlap"]
    assert [a["status"] for a in answers] == ["success"]
    assert sum(c.get("id") == "overlap" for c in aggregator.commands) == 1


def test_a_command_without_id_is_carried_out_once(running, aggregator, watcher):
    watcher.publish(dev("living_led", "cmd"), {"values": {"brightness": 17}})
    watcher.publish(dev("living_window", "cmd"), {"id": "marker", "values": {"position": 62}})
    watcher.wait_json(dev("living_window", "cmd/response"), lambda d: d["cmd_id"] == "marker")
    wait_for(lambda: running.ctx.bus.idle(), timeout=10)
    assert sum(c["target"] == "living_led" for c in aggregator.commands) == 1
