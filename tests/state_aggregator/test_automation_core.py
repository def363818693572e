"""AutomationCore (services/state_aggregator/automation_core.py) with a fake clock and plain data:
when it asks, what it asks with, pause and resume, a person's command, what it says.

``Rounds`` drives the core the way the runner in automation.py does (take the trigger once due,
ask with a snapshot, hand over ml_inference's answer, send the move, the window's reply, the next
interval), with ml_inference and the window's routing as plain functions.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.state_aggregator.automation import INPUT_PROPERTY, REQUIRED_INPUTS
from services.state_aggregator.automation_core import (
    PAUSED,
    RUNNING,
    WAITING,
    Alert,
    AutomationCore,
    DeviceView,
    Event,
    Move,
)
from shared.config import AutomationSpec

AUTOMATION, WINDOW, SWITCH = "living_auto", "living_window", "living_auto_switch"
SENSORS = {"temperature": "living_temperature", "humidity": "living_humidity",
           "outdoor_temperature": "balcony_temperature", "motion": "living_motion"}
DEBOUNCE, RETRY, INTERVAL = 0.02, 5.0, 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_800_000_000.0 + self.now


class MlDown(Exception):
    """ml_inference did not answer (the runner turns its errors into a reason like this)."""


def answer(action: str, position: int = 60, confidence: float = 0.9, mode: str = "auto", **extra: Any) -> dict:
    """An answer shaped like ``POST /automation/<id>/evaluate``'s."""
    return {"automation": AUTOMATION, "mode": mode, "action": action, "position": position,
            "reason": f"{action} because", "recommendation": {"position": position + 0.4, "confidence": confidence,
                                                              "model": "window-v1:test"}, **extra}


def warm_room() -> dict[str, DeviceView]:
    return {"living_temperature": DeviceView(True, {"temperature": 30.0}),
            "living_humidity": DeviceView(True, {"humidity": 45.0}),
            "balcony_temperature": DeviceView(True, {"temperature": 18.0}),
            "living_motion": DeviceView(True, {"motion": False}),
            WINDOW: DeviceView(True, {"position": 0, "moving": False})}


class Rounds:
    """The core, a fake clock, the devices as the aggregator has them, and what came out."""

    def __init__(self, ml: Callable[[dict], dict] | None = None, **spec: Any) -> None:
        self.clock = FakeClock()
        self.spec = AutomationSpec(**{"automation_id": AUTOMATION, "name": "Living", "window": WINDOW,
                                      "sensors": SENSORS, "interval": INTERVAL, "manual_hold": 600, **spec})
        self.core = AutomationCore(self.spec, self.clock, INPUT_PROPERTY, REQUIRED_INPUTS,
                                   switches=frozenset({SWITCH}), debounce=DEBOUNCE, retry=RETRY)
        self.devices = warm_room()
        self.ml = ml or (lambda facts: answer("stay"))
        self.window_reply: tuple[int, dict] = (200, {"status": "success", "result": {"target": 60}})
        self.during_move: Callable[[Move], None] | None = None
        self.asked: list[tuple[float, str, dict]] = []  # (time, trigger, facts)
        self.effects: list[Event | Alert] = []
        self.sent: list[Move] = []

    def run_until(self, t: float) -> None:
        """Every evaluation due until ``t`` (each one instant), then the clock at ``t``."""
        while (due := self.core.next_due()) is not None and due <= t + 1e-9:  # sums of floats
            self.clock.now = max(self.clock.now, due)
            self.round()
        self.clock.now = max(self.clock.now, t)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.clock.now + seconds)

    def round(self) -> None:
        trigger = self.core.take_trigger()
        assert trigger is not None
        ask = self.core.ask(trigger, dict(self.devices))
        if ask is not None:
            self.asked.append((self.clock.now, trigger, ask.facts))
            try:
                reply = self.ml(ask.facts)
            except MlDown as exc:
                self.effects += self.core.unavailable(str(exc))
            else:
                self.effects += self.core.answered(ask, reply)
                move = self.core.move()
                if move is not None:
                    self.sent.append(move)
                    if self.during_move:
                        self.during_move(move)
                    self.effects += self.core.moved(move, *self.window_reply)
        self.core.round_over()

    def events(self, name: str) -> list[dict]:
        return [e.data for e in self.effects if isinstance(e, Event) and e.name == name]

    def alerts(self, code: str) -> list[Alert]:
        return [e for e in self.effects if isinstance(e, Alert) and e.code == code]

    def started(self) -> Rounds:
        self.core.start()
        self.run_for(DEBOUNCE)
        return self


# -- when it asks


def test_it_asks_a_debounce_after_starting_then_every_interval():
    rounds = Rounds()
    rounds.core.start()
    rounds.run_for(DEBOUNCE / 2)
    assert rounds.asked == []
    rounds.run_for(DEBOUNCE / 2)
    assert [(t, trigger) for t, trigger, _ in rounds.asked] == [(1000.0 + DEBOUNCE, "start")]
    rounds.run_for(2 * INTERVAL)
    assert [trigger for _, trigger, _ in rounds.asked] == ["start", "interval", "interval"]
    assert rounds.asked[2][0] - rounds.asked[1][0] == pytest.approx(INTERVAL)


def test_one_sensor_line_makes_one_evaluation():
    rounds = Rounds().started()
    t0 = rounds.clock.now + 1
    rounds.run_until(t0)
    for offset, device, reading in ((0.0, "living_temperature", {"temperature": 31.0}),
                                    (0.0004, "living_humidity", {"humidity": 50.0}),
                                    (0.0009, "living_motion", {"motion": True})):
        rounds.run_until(t0 + offset)
        rounds.devices[device] = DeviceView(True, reading)
        rounds.core.on_event("state", {"device_id": device, "state": reading})
    rounds.run_for(1)
    assert [(t, trigger) for t, trigger, _ in rounds.asked[1:]] == [(t0 + DEBOUNCE, "living_temperature changed")]
    assert rounds.asked[1][2]["inputs"] == {"temperature": 31.0, "humidity": 50.0, "outdoor_temperature": 18.0,
                                            "motion": True}


@given(st.lists(st.tuples(st.integers(0, 2000), st.sampled_from(sorted(SENSORS.values()))), min_size=1, max_size=40))
def test_every_change_is_evaluated_within_the_debounce_and_bursts_share_one(changes):
    """Property: after each input change an evaluation follows within ``debounce``; evaluations that
    changes caused are at least ``debounce`` apart (a burst makes one, not one per event)."""
    rounds = Rounds().started()
    start, log = rounds.clock.now, []  # ("change", t) and ("asked", t) in the order they happened
    for ms, device in sorted(changes):
        t = start + ms / 1000
        before = len(rounds.asked)
        rounds.run_until(t)
        log += [("asked", at) for at, _, _ in rounds.asked[before:]]
        rounds.core.on_event("state", {"device_id": device, "state": {}})
        log.append(("change", t))
    before = len(rounds.asked)
    rounds.run_for(1)
    log += [("asked", at) for at, _, _ in rounds.asked[before:]]
    for i, (kind, t) in enumerate(log):
        if kind == "change":
            assert any(k == "asked" and at <= t + DEBOUNCE + 1e-9 for k, at in log[i + 1:]), (t, log)
    asked = [at for kind, at in log if kind == "asked"]
    assert all(b - a >= DEBOUNCE - 1e-9 for a, b in zip(asked, asked[1:], strict=False))
    assert len(asked) <= len(changes)


def test_the_window_coming_to_rest_or_online_asks_again_but_a_moving_window_or_another_device_does_not():
    rounds = Rounds().started()
    assert not rounds.core.on_event("state", {"device_id": WINDOW, "state": {"moving": True, "position": 30}})
    assert not rounds.core.on_event("state", {"device_id": "living_led", "state": {"state": "on"}})
    assert not rounds.core.on_event("event", {"device_id": "living_temperature", "event": "button"})
    assert not rounds.core.on_event("availability", {"device_id": WINDOW, "online": False})
    rounds.run_for(1)
    assert len(rounds.asked) == 1
    assert rounds.core.on_event("state", {"device_id": WINDOW, "state": {"moving": False, "position": 60}})
    rounds.run_for(1)
    assert rounds.core.on_event("availability", {"device_id": WINDOW, "online": True})
    rounds.run_for(1)
    assert [trigger for _, trigger, _ in rounds.asked[1:]] == [f"{WINDOW} stopped moving", f"{WINDOW} online"]


def test_a_command_to_its_switch_or_ml_inference_coming_back_asks_at_once():
    rounds = Rounds().started()
    rounds.run_for(1)
    assert not rounds.core.on_command(SWITCH, "ha-1", 409)  # refused (config mode off): nothing changed
    assert rounds.core.on_command(SWITCH, "ha-2", 200)
    assert rounds.core.next_due() == rounds.clock.now
    rounds.run_for(0)
    rounds.run_for(1)
    assert rounds.core.on_ml_changed("ml_inference changed")
    rounds.run_for(0)
    assert [trigger for _, trigger, _ in rounds.asked[1:]] == [f"{SWITCH} commanded", "ml_inference changed"]


# -- what it asks with


def test_the_facts_are_the_online_inputs_the_window_and_the_last_manual_command():
    rounds = Rounds().started()
    assert rounds.asked[0][2] == {
        "inputs": {"temperature": 30.0, "humidity": 45.0, "outdoor_temperature": 18.0, "motion": False},
        "window": {"position": 0, "moving": False, "online": True}, "manual": None}


def test_an_optional_input_offline_or_without_a_reading_is_left_out_not_its_stale_value():
    rounds = Rounds()
    rounds.devices["balcony_temperature"] = DeviceView(False, {"temperature": 18.0})  # went away: stale
    rounds.devices["living_motion"] = DeviceView(True, {})
    rounds.started()
    assert rounds.asked[0][2]["inputs"] == {"temperature": 30.0, "humidity": 45.0}


@pytest.mark.parametrize(("devices", "reason"), [
    ({"living_temperature": DeviceView(False, {"temperature": 30.0})}, "waiting for living_temperature (offline)"),
    ({"living_humidity": DeviceView(True, {"battery": 80})}, "waiting for living_humidity (no reading yet)"),
    ({"living_humidity": None}, "waiting for living_humidity (offline)"),  # not known to the aggregator
])
def test_without_temperature_or_humidity_it_waits_and_says_for_what(devices, reason):
    rounds = Rounds()
    for device_id, view in devices.items():
        if view is None:
            del rounds.devices[device_id]
        else:
            rounds.devices[device_id] = view
    rounds.started()
    assert rounds.asked == [] and rounds.effects == []
    assert rounds.core.status()["status"] == WAITING and rounds.core.status()["reason"] == reason
    # The reading arrives: asked at once (after the debounce), running again.
    rounds.devices.update(warm_room())
    rounds.core.on_event("availability", {"device_id": next(iter(devices)), "online": True})
    rounds.run_for(DEBOUNCE)
    assert len(rounds.asked) == 1 and rounds.core.status()["status"] == RUNNING


@pytest.mark.parametrize(("window", "facts"), [
    (DeviceView(True, {"position": 40.5, "moving": True}), {"position": 40.5, "moving": True, "online": True}),
    (DeviceView(True, {"position": True}), {"position": None, "moving": False, "online": True}),
    (DeviceView(True, {"position": "40"}), {"position": None, "moving": False, "online": True}),
    (DeviceView(False, {"position": 40}), {"position": 40, "moving": False, "online": False}),
    (None, {"position": None, "moving": False, "online": False}),
])
def test_the_window_facts_only_carry_a_position_that_is_a_number(window, facts):
    rounds = Rounds()
    if window is None:
        del rounds.devices[WINDOW]
    else:
        rounds.devices[WINDOW] = window
    rounds.started()
    assert rounds.asked[0][2]["window"] == facts


# -- pause and resume


def test_without_ml_inference_it_pauses_once_retries_and_resumes_catching_up():
    down = True

    def ml(facts: dict) -> dict:
        if down:
            raise MlDown("ml_inference: service not running")
        return answer("move", 60)

    rounds = Rounds(ml).started()
    rounds.run_for(3 * RETRY)
    assert len(rounds.asked) == 4  # the start, then every RETRY s (not the 60 s interval)
    assert [a.message for a in rounds.effects] == ["automation living_auto paused: ml_inference: service not running"]
    assert rounds.core.paused and rounds.core.status()["reason"] == "ml_inference: service not running"
    assert rounds.core.status()["evaluations"] == 0 and rounds.sent == []
    down = False
    rounds.core.on_ml_changed("ml_inference changed")
    rounds.run_for(0)
    assert [e.name for e in rounds.effects[1:]] == ["automation_resumed", "automation_recommendation",
                                                     "automation_moved"]
    assert rounds.core.status()["status"] == RUNNING and not rounds.core.paused
    assert rounds.core.next_due() == pytest.approx(rounds.clock.now + INTERVAL)


def test_the_retry_while_paused_is_never_longer_than_the_interval():
    rounds = Rounds(lambda facts: (_ for _ in ()).throw(MlDown("down")), interval=2.0).started()
    rounds.run_for(4.0)
    assert len(rounds.asked) == 3


def test_a_pause_interrupted_by_a_missing_input_is_still_one_pause():
    """Paused, then waiting for a sensor, then ml_inference still down: no second
    AUTOMATION_PAUSED; its answer after all that is a resume."""
    down = True

    def ml(facts: dict) -> dict:
        if down:
            raise MlDown("down")
        return answer("stay")

    rounds = Rounds(ml).started()
    rounds.devices["living_temperature"] = DeviceView(False, {})
    rounds.core.on_event("availability", {"device_id": "living_temperature", "online": False})
    rounds.run_for(1)
    assert rounds.core.status()["status"] == WAITING
    rounds.devices["living_temperature"] = DeviceView(True, {"temperature": 30.0})
    rounds.core.on_event("availability", {"device_id": "living_temperature", "online": True})
    rounds.run_for(1)
    assert len(rounds.alerts("AUTOMATION_PAUSED")) == 1 and rounds.core.status()["status"] == PAUSED
    down = False
    rounds.core.on_ml_changed("back")
    rounds.run_for(0)
    assert len(rounds.events("automation_resumed")) == 1


# -- a person's command


def test_a_persons_command_is_a_fact_from_then_on_and_the_hold_answer_moves_nothing():
    rounds = Rounds(lambda facts: answer("hold", 60, held_until="2027-01-15T09:10:00+00:00")
                    if facts["manual"] else answer("stay", 0)).started()
    rounds.run_for(1)
    at = rounds.clock.time()
    assert rounds.core.on_command(WINDOW, "me-1", 504)  # whatever its outcome: it may have moved
    rounds.run_for(DEBOUNCE)
    assert rounds.asked[-1][1:] == ("manual command me-1", {**rounds.asked[0][2], "manual": {"at": at,
                                                                                              "cmd_id": "me-1"}})
    assert rounds.sent == [] and rounds.core.status()["manual"] == {"at": at, "cmd_id": "me-1"}
    held = rounds.events("automation_recommendation")[-1]
    assert held["action"] == "hold" and held["held_until"] == "2027-01-15T09:10:00+00:00"
    # The hold lasts as long as ml_inference says: every later round still carries the command.
    rounds.run_for(3 * INTERVAL)
    assert all(facts["manual"]["cmd_id"] == "me-1" for _, _, facts in rounds.asked[1:])


def test_its_own_moves_are_not_a_persons_commands_but_any_other_command_to_the_window_is():
    rounds = Rounds(lambda facts: answer("move", 60))

    def echo(move: Move) -> None:  # the routing tells its observers while the command is under way
        assert not rounds.core.on_command(WINDOW, move.cmd_id, 200)

    rounds.during_move = echo
    rounds.started()
    assert [m.cmd_id for m in rounds.sent] == ["auto-living_auto-1"]
    assert rounds.core.status()["manual"] is None
    assert rounds.core.on_command(WINDOW, "auto-living_auto-1", 200)  # no longer in flight: a person's
    assert not rounds.core.on_command("living_led", "me-2", 200)
    assert rounds.core.status()["manual"]["cmd_id"] == "auto-living_auto-1"


@pytest.mark.parametrize("when", ["before the evaluation", "during the evaluation"])
def test_a_persons_command_during_an_evaluation_cancels_its_move(when):
    rounds = Rounds()
    commanded = []

    def ml(facts: dict) -> dict:
        if when == "during the evaluation" and not commanded:
            commanded.append(rounds.core.on_command(WINDOW, "me-1", 200))
        return answer("move", 60)

    rounds.ml = ml
    if when == "before the evaluation":
        rounds.core.on_command(WINDOW, "me-1", 200)  # in the facts: ml_inference's policy judges it
    rounds.started()
    assert rounds.events("automation_recommendation")[0]["action"] == "move"
    assert (rounds.sent == []) == (when == "during the evaluation")


@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_a_move_is_sent_exactly_when_no_person_commanded_the_window_during_its_evaluation(interrupted):
    """Property, over rounds that each answer ``move``: interrupted rounds send nothing, the
    others send one move each, numbered without gaps."""
    rounds = Rounds()
    plan = iter(interrupted)

    def ml(facts: dict) -> dict:
        if next(plan):
            rounds.core.on_command(WINDOW, f"me-{len(rounds.asked)}", 200)
        return answer("move", 60)

    rounds.ml = ml
    rounds.core.start()
    for _ in interrupted:
        rounds.core.on_ml_changed("again")
        rounds.run_for(0)
    assert [m.cmd_id for m in rounds.sent] == [f"auto-living_auto-{n}"
                                               for n in range(1, interrupted.count(False) + 1)]


# -- what the answer means, and what it says


def test_low_confidence_is_a_suggestion_published_but_never_sent():
    rounds = Rounds(lambda facts: answer("suggest", 60, confidence=0.41)).started()
    rounds.run_for(3 * INTERVAL)
    assert rounds.sent == [] and rounds.core.status()["moves"] == 0
    [suggested] = rounds.events("automation_recommendation")  # said once, not at every interval
    assert suggested == {
        "automation": AUTOMATION, "action": "suggest", "position": 60, "confidence": 0.41, "model_position": 60.4,
        "model": "window-v1:test", "mode": "auto", "reason": "suggest because",
        "inputs": {"temperature": 30.0, "humidity": 45.0, "outdoor_temperature": 18.0, "motion": False},
        "trigger": "start"}
    assert rounds.core.status()["evaluations"] == 4 and rounds.core.status()["last"]["action"] == "suggest"


def test_a_recommendation_is_published_when_the_action_position_or_mode_changes():
    answers = iter([answer("stay", 0), answer("stay", 0), answer("stay", 5), answer("stay", 5, mode="suggest"),
                    answer("suggest", 5, mode="suggest")])
    rounds = Rounds(lambda facts: next(answers)).started()
    rounds.run_for(4 * INTERVAL)
    assert [(e["action"], e["position"], e["mode"]) for e in rounds.events("automation_recommendation")] == [
        ("stay", 0, "auto"), ("stay", 5, "auto"), ("stay", 5, "suggest"), ("suggest", 5, "suggest")]


def test_an_acknowledged_move_says_where_from_and_what_the_board_answered():
    rounds = Rounds(lambda facts: answer("move", 60, confidence=0.93))
    rounds.window_reply = (200, {"status": "success", "result": {"position": 0, "target": 60, "moving": True}})
    rounds.started()
    [moved] = rounds.events("automation_moved")
    assert moved == {"automation": AUTOMATION, "cmd_id": "auto-living_auto-1", "position": 60, "from": 0,
                     "confidence": 0.93, "inputs": rounds.asked[0][2]["inputs"], "trigger": "start",
                     "result": {"position": 0, "target": 60, "moving": True}}
    status = rounds.core.status()
    assert status["moves"] == 1 and status["last_move"]["cmd_id"] == "auto-living_auto-1"
    assert rounds.sent[0].body == {"id": "auto-living_auto-1", "values": {"position": 60}}


def test_a_failed_move_is_an_error_with_the_command_and_status():
    rounds = Rounds(lambda facts: answer("move", 60))
    rounds.window_reply = (504, {"error": "TIMEOUT", "message": "serial_handler did not answer in time"})
    rounds.started()
    [failed] = rounds.alerts("AUTOMATION_COMMAND_FAILED")
    assert failed.message == "moving living_window to 60 % failed: TIMEOUT serial_handler did not answer in time"
    assert failed.extra == {"cmd_id": "auto-living_auto-1", "http_status": 504}
    assert rounds.events("automation_moved") == [] and rounds.core.status()["moves"] == 0


def test_a_long_automation_id_still_makes_distinct_command_ids_within_the_limit():
    long_id = "a" * 70
    rounds = Rounds(lambda facts: answer("move", 60), automation_id=long_id).started()
    rounds.core.on_ml_changed("again")
    rounds.run_for(0)
    ids = [m.cmd_id for m in rounds.sent]
    assert len(ids) == 2 and len(set(ids)) == 2 and all(len(i) <= 64 for i in ids)

