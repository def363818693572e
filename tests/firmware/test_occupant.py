"""The simulated occupant (firmware/emulator/occupant.py): its preference, how it reads the
aggregator's automation events, and the command it sends (to a real loopback HTTP server)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from firmware.emulator.occupant import Occupant, Person, events, preference, situation
from services.ml_inference.inputs import WindowInputs
from services.ml_inference.rule import comfort_rule
from shared.sse import format_message
from testkit.helpers import wait_for

HUMID = {"temperature": 22.0, "humidity": 80.0, "outdoor_temperature": 15.0}


def moved(position: float, inputs: dict, window: str = "living_window", start: float = 0.0) -> dict:
    return {"device_id": window, "event": "automation_moved",
            "data": {"automation": "auto", "position": position, "from": start, "inputs": inputs}}


def test_the_stated_preference_differs_from_the_rule():
    humid = WindowInputs(**HUMID)
    assert preference(humid) - comfort_rule(humid)[0] == 25.0
    assert preference(WindowInputs(**HUMID, sound_level=-20.0)) == 0.0  # loud wins
    cold = WindowInputs(temperature=27.0, humidity=90.0, outdoor_temperature=2.0)
    assert preference(cold) == 60.0


def test_only_the_windows_automation_events_with_usable_inputs_are_situations():
    inputs, position = situation(moved(40.0, HUMID, start=10.0), "living_window")
    assert position == 40.0 and inputs.position == 10.0 and inputs.humidity == 80.0
    assert situation(moved(40.0, HUMID, window="other"), "living_window") is None
    assert situation({"device_id": "living_window", "event": "automation_resumed", "data": {}}, "living_window") is None
    assert situation(moved(40.0, {"humidity": 80.0}), "living_window") is None  # temperature missing
    suggested = {"device_id": "living_window", "event": "automation_recommendation",
                 "data": {"action": "suggest", "position": 70.0, "inputs": HUMID}}
    assert situation(suggested, "living_window")[1] == 70.0
    held = {**suggested, "data": {**suggested["data"], "action": "hold"}}
    assert situation(held, "living_window") is None  # nothing moved: nothing to answer


class _Window(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, self.headers.get("Authorization"), body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def test_a_person_corrects_a_window_that_is_not_where_they_want_it():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Window)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        person = Person(Occupant(seed=2, slip=0.0), url, "living_window", {"Authorization": "Bearer t"},
                        time_scale=0.0)
        wanted = preference(WindowInputs(**HUMID, position=0.0))
        assert person.see(moved(wanted, HUMID)) is None  # where they want it: nobody gets up
        assert person.see(moved(wanted - 30.0, HUMID)) is not None
        path, authorization, body = wait_for(lambda: _Window.received and _Window.received[-1], 10,
                                             message="the correction reached the window")
        assert path == "/device/living_window/cmd" and authorization == "Bearer t"
        assert abs(body["values"]["position"] - wanted) <= 12  # a few points off, as a person is
    finally:
        server.shutdown()
        server.server_close()


class _Stream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b": keep-alive\n\n")
        for payload in ({"type": "state", "device_id": "t"}, moved(40.0, HUMID)):
            self.wfile.write(format_message(payload, event=payload.get("type", "event"), event_id="e-1").encode())

    def log_message(self, *args) -> None:
        pass


def test_the_aggregators_event_stream_is_read_as_the_aggregator_writes_it():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        got = list(events(f"http://127.0.0.1:{server.server_address[1]}", {}))
        assert [e.get("device_id") for e in got] == ["t", "living_window"]
        assert situation(got[1], "living_window")[1] == 40.0
    finally:
        server.shutdown()
        server.server_close()
