"""CommandRouter and DeviceRegistry directly: the example instance's devices and groups, handler
clients replaced by fakes that record what reached them (the HTTP side is test_handler_client.py)."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.state_aggregator.handlers import NOT_RESPONDING, HandlerUnavailable
from services.state_aggregator.registry import (
    DISABLED,
    SERVICE_NOT_RUNNING,
    Availability,
    DeviceRegistry,
    UnknownDevice,
    UnknownGroup,
)
from services.state_aggregator.routing import CommandRouter
from shared.commands import DEVICE_DISABLED, INVALID_VALUE, UNSUPPORTED, CommandError
from shared.config import Settings, settings_from_dict
from testkit.example import example_document
from testkit.helpers import TEST_API_TOKEN

WINDOW, LED, TEMPERATURE = "living_window", "living_led", "living_temperature"


def example_with_battery_disabled() -> dict[str, Any]:
    doc = example_document()
    doc["devices"] = [{**d, "enabled": d["device_id"] != "living_battery"} for d in doc["devices"]]
    return doc


EXAMPLE_DEVICES = settings_from_dict(example_with_battery_disabled(), {"SENSOR_HUB_API_TOKEN": TEST_API_TOKEN}).devices


class FakeClient:
    """A handler client: answers commands with ``replies[device_id]`` (a status and body, or an
    exception to raise), 200 success otherwise; records every command."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.replies: dict[str, tuple[int, dict[str, Any]] | Exception] = {}
        self.lock = threading.Lock()

    def command(self, device_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.commands.append((device_id, body))
        reply = self.replies.get(device_id)
        if isinstance(reply, Exception):
            raise reply
        return reply or (200, {"status": "success", "cmd_id": body.get("id"), "result": body["values"]})


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings({"devices": example_with_battery_disabled()["devices"]})


@pytest.fixture
def serial() -> FakeClient:
    return FakeClient()


@pytest.fixture
def router(settings: Settings, serial: FakeClient):
    router = CommandRouter(DeviceRegistry.from_settings(settings), {"serial_handler": serial})
    yield router
    router.close()


# -- CommandRouter: one device


def test_a_command_reaches_the_owning_handler_and_its_answer_comes_back_tagged(router, serial):
    status, reply = router.send(WINDOW, {"id": "me-1", "values": {"position": 40}, "timeout": 5000})
    assert serial.commands == [(WINDOW, {"values": {"position": 40}, "id": "me-1", "timeout": 5000})]
    assert status == 200 and reply == {"status": "success", "cmd_id": "me-1", "result": {"position": 40},
                                       "device_id": WINDOW, "service": "serial_handler"}


def test_a_command_without_an_id_gets_one_to_follow_in_the_logs(router, serial):
    status, reply = router.send(LED, {"state": "on"})
    sent_id = serial.commands[0][1]["id"]
    assert status == 200 and sent_id.startswith("agg-") and reply["cmd_id"] == sent_id


@pytest.mark.parametrize(("device_id", "body", "code"), [
    ("living_battery", {"values": {"state": "on"}}, DEVICE_DISABLED),
    (WINDOW, {"values": {"position": 140}}, INVALID_VALUE),
    (TEMPERATURE, {"values": {"state": "on"}}, UNSUPPORTED),
    (LED, ["on"], "INVALID_PAYLOAD"),
])
def test_a_command_that_cannot_be_right_never_reaches_a_handler(router, serial, device_id, body, code):
    told = []
    router.observers.append(lambda *args: told.append(args))
    with pytest.raises(CommandError) as caught:
        router.send(device_id, body)
    assert caught.value.code == code and serial.commands == [] and told == []
    if code != "INVALID_PAYLOAD":
        assert caught.value.extra["device_id"] == device_id


def test_an_unknown_device_names_the_known_ones(router):
    with pytest.raises(UnknownDevice) as caught:
        router.send("living_windw", {"values": {"position": 1}})
    assert WINDOW in caught.value.known


@pytest.mark.parametrize(("failure", "status", "reply"), [
    (HandlerUnavailable("serial_handler", NOT_RESPONDING, timed_out=True), 504,
     {"error": "TIMEOUT", "message": "serial_handler did not answer in time"}),
    (HandlerUnavailable("serial_handler", SERVICE_NOT_RUNNING), 503,
     {"error": "OFFLINE", "message": "serial_handler: service not running"}),
    ((409, {"status": "error", "error": "REJECTED", "message": "at the limit"}), 409,
     {"status": "error", "error": "REJECTED", "message": "at the limit"}),
])
def test_a_handler_that_fails_or_refuses_is_passed_through_and_observers_hear_of_it(router, serial, failure,
                                                                                    status, reply):
    serial.replies[WINDOW] = failure
    told = []
    router.observers.append(lambda spec, request, cmd_id, code: told.append((spec.device_id, cmd_id, code)))
    assert router.send(WINDOW, {"id": "me-1", "values": {"position": 40}}) == (
        status, {**reply, "cmd_id": "me-1", "device_id": WINDOW, "service": "serial_handler"})
    assert told == [(WINDOW, "me-1", status)]


def test_a_device_of_a_service_without_a_client_is_offline(settings: Settings):
    router = CommandRouter(DeviceRegistry.from_settings(settings), {})
    try:
        status, reply = router.send(WINDOW, {"id": "me-1", "values": {"position": 40}})
    finally:
        router.close()
    assert status == 503 and reply["error"] == "OFFLINE" and "not a configured service" in reply["message"]


def test_an_observer_that_fails_does_not_turn_a_delivered_command_into_an_error(router, serial):
    told = []

    def broken(*args: Any) -> None:
        raise RuntimeError("observer bug")

    router.observers += [broken, lambda *args: told.append(args[2])]
    assert router.send(LED, {"id": "led-1", "values": {"state": "on"}})[0] == 200
    assert told == ["led-1"]


# -- CommandRouter: a group


def test_a_group_command_goes_to_each_member_that_takes_it_with_its_own_id(router, serial):
    status, reply = router.send_group("living_room", {"id": "g-1", "values": {"state": "on"}})
    assert [d for d, _ in serial.commands] == [LED]
    assert serial.commands[0][1]["id"] == "g-1.living_led"
    assert status == 200 and reply["status"] == "success" and (reply["sent"], reply["succeeded"]) == (1, 1)
    assert list(reply["members"]) == example_document()["groups"][0]["devices"]  # in the group's order
    assert reply["members"]["living_battery"]["error"] == DEVICE_DISABLED
    assert reply["members"][WINDOW]["status"] == "skipped" and reply["members"][WINDOW]["error"] == UNSUPPORTED


def test_a_group_command_reports_failure_and_a_command_no_member_takes(settings: Settings, serial):
    router = CommandRouter(DeviceRegistry.from_settings(settings), {"serial_handler": serial})
    try:
        serial.replies[WINDOW] = HandlerUnavailable("serial_handler", NOT_RESPONDING)
        status, reply = router.send_group("living_room", {"id": "g-2", "values": {"position": 50}})
        assert status == 502 and reply["status"] == "error" and reply["members"][WINDOW]["error"] == "TIMEOUT"
        status, reply = router.send_group("living_room", {"id": "g-3", "values": {"nothing": 1}})
        assert status == 400 and reply["error"] == INVALID_VALUE and reply["group_id"] == "living_room"
    finally:
        router.close()
    with pytest.raises(UnknownGroup):
        router.send_group("attic", {"values": {"state": "on"}})


# -- DeviceRegistry


def test_every_configured_device_is_listed_waiting_for_its_service_or_disabled(settings: Settings):
    registry = DeviceRegistry.from_settings(settings)
    assert registry.known_ids() == [d.device_id for d in settings.devices]
    assert registry.availability(TEMPERATURE).reason == "waiting for serial_handler"
    assert registry.availability("living_battery").reason == DISABLED
    assert registry.services() == ["serial_handler", "http_poller"]
    assert registry.owner(WINDOW) == "serial_handler" and registry.owner(["not", "an", "id"]) is None
    assert registry.counts() == {"devices": len(settings.devices), "online": 0}


def test_an_update_reports_only_a_change_and_keeps_when_it_was_last_seen(settings: Settings):
    registry = DeviceRegistry.from_settings(settings)
    changed = registry.update(TEMPERATURE, True, "ignored when online", "2026-12-02T01:00:00.000+00:00")
    assert changed is not None and changed.online and changed.reason is None
    assert registry.update(TEMPERATURE, True, None) is None  # nothing changed
    registry.seen(TEMPERATURE, "2026-12-02T01:00:05.000+00:00")
    gone = registry.update(TEMPERATURE, False, "board silent")
    assert gone == registry.availability(TEMPERATURE)
    assert (gone.online, gone.reason, gone.last_seen) == (False, "board silent", "2026-12-02T01:00:05.000+00:00")
    assert registry.update("no_such_device", True, None) is None
    registry.seen("no_such_device", "2026-12-02T01:00:00.000+00:00")  # ignored, no error


def test_a_service_going_down_takes_its_devices_offline_and_says_which_changed(settings: Settings):
    registry = DeviceRegistry.from_settings(settings)
    registry.update(TEMPERATURE, True, None)
    changed = registry.mark_service_down("serial_handler", SERVICE_NOT_RUNNING)
    owned = {d.device_id for d in registry.owned_by("serial_handler")}
    assert set(changed) == owned - {"living_battery"}  # a disabled device stays as it was: disabled
    assert all(a.reason == SERVICE_NOT_RUNNING for a in changed.values())
    assert registry.mark_service_down("serial_handler", SERVICE_NOT_RUNNING) == {}


@given(st.lists(st.tuples(st.sampled_from([TEMPERATURE, WINDOW, "living_battery"]), st.booleans(),
                          st.sampled_from([None, "board silent", "service not running"])), max_size=30))
def test_the_config_wins_and_the_last_word_of_the_handler_counts(updates):
    """Property: a disabled device is never online whatever the handler says; an enabled one is as
    its last update said, with no reason when online."""
    registry = DeviceRegistry(EXAMPLE_DEVICES)
    last: dict[str, tuple[bool, str | None]] = {}
    for device_id, online, reason in updates:
        registry.update(device_id, online, reason)
        last[device_id] = (online, None if online else reason)
    assert registry.availability("living_battery") == Availability(False, None, DISABLED)
    for device_id, (online, reason) in last.items():
        if device_id != "living_battery":
            now = registry.availability(device_id)
            assert (now.online, now.reason) == (online, reason)
    assert registry.counts()["online"] == sum(1 for d, (online, _) in last.items() if online and d != "living_battery")


def test_unknown_ids_name_what_is_known(settings: Settings):
    registry = DeviceRegistry.from_settings(settings)
    with pytest.raises(UnknownDevice) as device:
        registry.spec("nope")
    with pytest.raises(UnknownGroup) as group:
        registry.group("nope")
    assert WINDOW in device.value.known and group.value.known == ["living_room"]
