"""The runner (WindowAutomation, automation.py) with the aggregator's real parts — DeviceRegistry,
TtlCache, CommandRouter and HandlerClients — in front of loopback services: a scripted handler
playing serial_handler, and an ml_inference whose answers the test scripts. No emulator, no
model, no processes: what the core decides is tested in test_automation_core.py; here, that the
runner carries it out over real HTTP and real threads.
"""
from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask, jsonify, request

from services.state_aggregator.automation import WindowAutomation
from services.state_aggregator.cache import TtlCache
from services.state_aggregator.handlers import HandlerClient
from services.state_aggregator.registry import DeviceRegistry
from services.state_aggregator.routing import CommandRouter
from shared.error_log import ErrorLog
from shared.server import ThreadedServer, run_in_thread
from shared.web import install_instance_header
from testkit.helpers import free_port, wait_for
from testkit.scripted_handler import EXAMPLE_INSTANCE_ID, ScriptedHandler
from tests.state_aggregator.conftest import SERIAL_DEVICES

AUTOMATION, WINDOW = "living_window_auto", "living_window"
READINGS = {"living_temperature": {"temperature": 30.0}, "living_humidity": {"humidity": 45.0},
            "living_motion": {"motion": False}, "living_sound": {"sound_level": -60.0},
            WINDOW: {"position": 0, "moving": False}}


class ScriptedMl:
    """ml_inference's evaluate endpoint on loopback: records the facts, answers ``self.answer``
    (or ``self.failure``: status and body); ``during`` runs while a request is under way."""

    def __init__(self) -> None:
        self.port = free_port()
        self.asked: list[dict[str, Any]] = []
        self.answer: dict[str, Any] = {"action": "stay", "position": 0, "mode": "auto", "reason": "fine"}
        self.failure: tuple[int, dict[str, Any]] | None = None
        self.during: Any = None
        self.lock = threading.Lock()
        self.app = Flask(__name__)
        install_instance_header(self.app, EXAMPLE_INSTANCE_ID)
        self.app.post("/automation/<automation_id>/evaluate")(self._evaluate)
        self.server: ThreadedServer | None = None

    def _evaluate(self, automation_id: str):
        with self.lock:
            self.asked.append(request.get_json())
            answer = dict(self.answer)
        if self.during is not None:
            during, self.during = self.during, None
            during()
        if self.failure is not None:
            return jsonify(self.failure[1]), self.failure[0]
        return jsonify({"automation": automation_id, "recommendation": {"position": 61.2, "confidence": 0.9,
                                                                        "model": "window-v1:test"}, **answer})

    def start(self) -> ScriptedMl:
        self.server = run_in_thread(self.app, port=self.port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


class NoListener:
    def on_handler_event(self, service, event): ...
    def on_handler_sync(self, service, views): ...
    def on_handler_down(self, service, reason): ...


class Rig:
    def __init__(self, settings, serial: ScriptedHandler, ml: ScriptedMl) -> None:
        self.serial, self.ml = serial, ml
        self.registry = DeviceRegistry.from_settings(settings)
        self.cache = TtlCache(60)
        clients = {name: HandlerClient(name, url, NoListener(), EXAMPLE_INSTANCE_ID).authorize(settings.api_token)
                   for name, url in (("serial_handler", f"http://127.0.0.1:{serial.port}"),
                                     ("ml_inference", f"http://127.0.0.1:{ml.port}"))}
        self.clients = clients
        self.router = CommandRouter(self.registry, clients)
        self.errors = ErrorLog("state_aggregator")
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        [spec] = settings.automations
        self.automation = WindowAutomation(spec, self.cache, self.registry, self.router, clients["ml_inference"],
                                           self.publish, self.errors, retry=0.1)
        self.router.observers.append(self.automation.on_command)
        for device_id, state in READINGS.items():
            self.registry.update(device_id, True, None)
            self.cache.put(device_id, state)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.published.append((kind, data))

    def events(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d["data"] for k, d in self.published if k == "event" and d["event"] == name]

    def window_commands(self) -> list[dict[str, Any]]:
        return self.serial.commands_for(WINDOW)

    def close(self) -> None:
        self.automation.stop()
        self.router.close()
        for client in self.clients.values():
            client.stop()


@pytest.fixture
def rig(make_settings, cleanup) -> Rig:
    settings = make_settings({"config": {"window_automations": [{
        "automation_id": AUTOMATION, "name": "Living room fresh air", "window": WINDOW,
        "sensors": {"temperature": "living_temperature", "humidity": "living_humidity", "motion": "living_motion",
                    "sound_level": "living_sound"},
        "mode": "auto", "min_change": 10, "interval": 60, "max_position": 80}]}})
    serial = ScriptedHandler(SERIAL_DEVICES, free_port()).start()
    cleanup.add(serial, stop=lambda: (serial.stop(), serial.publisher.close()))
    ml = cleanup.add(ScriptedMl().start())
    return cleanup.add(Rig(settings, serial, ml))


def test_a_move_goes_through_the_routing_to_the_window_and_is_announced(rig: Rig):
    rig.ml.answer = {"action": "move", "position": 60, "mode": "auto", "reason": "open"}
    rig.automation.start()
    moved = wait_for(lambda: rig.events("automation_moved"), 10, message="automation_moved")[0]
    assert rig.window_commands() == [{"id": f"auto-{AUTOMATION}-1", "values": {"position": 60}}]
    assert moved["cmd_id"] == f"auto-{AUTOMATION}-1" and moved["result"] == {"position": 60}
    assert rig.ml.asked[0]["inputs"] == {"temperature": 30.0, "humidity": 45.0, "motion": False,
                                         "sound_level": -60.0}
    assert rig.automation.status()["manual"] is None  # its own command is not a person's
    recommendation = rig.events("automation_recommendation")[0]
    assert recommendation["action"] == "move" and recommendation["confidence"] == 0.9
    # An input's change is pushed to it: asked again within the debounce, not at the 60 s interval.
    rig.cache.put("living_temperature", {"temperature": 31.0})
    rig.automation.on_event("state", {"device_id": "living_temperature", "state": {"temperature": 31.0}})
    wait_for(lambda: len(rig.ml.asked) == 2, 10, message="asked again after the change")
    assert rig.ml.asked[1]["inputs"]["temperature"] == 31.0


def test_without_ml_inference_it_pauses_once_and_resumes_when_it_answers(rig: Rig):
    rig.ml.stop()
    rig.automation.start()
    status = wait_for(lambda: (s := rig.automation.status())["status"] == "paused" and s, 10, message="paused")
    assert status["reason"] == "ml_inference: service not running"
    [paused] = [d for k, d in rig.published if k == "error"]
    assert paused["error_code"] == "AUTOMATION_PAUSED" and paused["device_id"] == WINDOW
    rig.ml.answer = {"action": "move", "position": 60, "mode": "auto", "reason": "open"}
    rig.ml.start()
    rig.automation.on_service("ml_inference")
    wait_for(lambda: rig.events("automation_moved"), 10, message="the move it missed")
    assert rig.events("automation_resumed") == [{"automation": AUTOMATION}]
    assert rig.automation.status()["status"] == "running" and len(rig.errors.list()) == 1


def test_an_ml_inference_without_a_model_pauses_it_with_the_reason(rig: Rig):
    rig.ml.failure = (503, {"error": "MODEL_UNAVAILABLE", "message": "window.pt is not a torch file"})
    rig.automation.start()
    status = wait_for(lambda: (s := rig.automation.status())["status"] == "paused" and s, 10, message="paused")
    assert status["reason"] == "ml_inference answered HTTP 503 MODEL_UNAVAILABLE: window.pt is not a torch file"


def test_a_persons_command_through_the_routing_during_an_evaluation_wins(rig: Rig):
    rig.ml.answer = {"action": "move", "position": 60, "mode": "auto", "reason": "open"}
    person = {}

    def persons_command() -> None:
        person["answer"] = rig.router.send(WINDOW, {"id": "me-1", "values": {"position": 20}})
        rig.ml.answer = {"action": "hold", "position": 60, "mode": "auto", "reason": "held"}  # from the next ask

    rig.ml.during = persons_command
    rig.automation.start()
    wait_for(lambda: rig.events("automation_recommendation"), 10, message="the decision")
    assert person["answer"][0] == 200
    wait_for(lambda: len(rig.ml.asked) >= 2, 10, message="asked again after the person's command")
    assert rig.window_commands() == [{"id": "me-1", "values": {"position": 20}}]
    assert rig.ml.asked[1]["manual"]["cmd_id"] == "me-1" and rig.automation.status()["manual"]["cmd_id"] == "me-1"
