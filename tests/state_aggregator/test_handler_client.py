"""HandlerClient's requests against a real loopback server (the stream side is covered with the
scripted handler in test_with_scripted_handler.py): answers, error replies, a handler that is not
there, one that does not answer in time, and one of another instance."""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Flask, jsonify, request

from services.state_aggregator.handlers import NOT_RESPONDING, HandlerClient, HandlerReplyError, HandlerUnavailable
from services.state_aggregator.registry import SERVICE_NOT_RUNNING
from shared.api_token import ApiToken
from shared.server import ThreadedServer, run_in_thread
from shared.web import install_instance_header
from testkit.helpers import TEST_API_TOKEN, free_port
from testkit.scripted_handler import EXAMPLE_INSTANCE_ID


class NoListener:
    def on_handler_event(self, service, event): ...
    def on_handler_sync(self, service, views): ...
    def on_handler_down(self, service, reason): ...


class Handler:
    """A handler service's routes, scripted; ``release`` ends a request held by ``/hang``."""

    def __init__(self, instance_id: str = EXAMPLE_INSTANCE_ID) -> None:
        self.release = threading.Event()
        self.authorization: list[str | None] = []
        app = Flask(__name__)
        install_instance_header(app, instance_id)

        @app.post("/automation/<automation_id>/evaluate")
        def evaluate(automation_id: str):
            self.authorization.append(request.headers.get("Authorization"))
            return jsonify(automation=automation_id, action="stay", facts=request.get_json())

        @app.post("/model/reload")
        def unavailable():
            return jsonify(error="MODEL_UNAVAILABLE", message="no model"), 503

        @app.post("/sensor/<device_id>/cmd")
        def command(device_id: str):
            if device_id == "stuck_window":
                return jsonify(status="error", error="REJECTED", message="at the limit", cmd_id="c-1"), 409
            return jsonify(status="success", cmd_id=request.get_json()["id"], result={"position": 40})

        @app.get("/sensors")
        def sensors():
            return jsonify(sensors=[{"device_id": "living_temperature", "state": {}}, {"no": "id"}, "junk"])

        @app.get("/health")
        def health():
            return jsonify(status="degraded"), 503

        @app.get("/errors")
        def errors():
            return "<html>a proxy's error page</html>", 502

        @app.post("/hang")
        def hang():
            self.release.wait(10)
            return jsonify(late=True)

        self.server: ThreadedServer = run_in_thread(app)
        self.url = self.server.url

    def stop(self) -> None:
        self.release.set()
        self.server.stop()


@pytest.fixture
def handler() -> Iterator[Handler]:
    handler = Handler()
    yield handler
    handler.stop()


def client_of(url: str) -> HandlerClient:
    return HandlerClient("ml_inference", url, NoListener(), EXAMPLE_INSTANCE_ID)


def test_a_post_answers_its_json_and_carries_the_instances_token(handler: Handler):
    client = client_of(handler.url).authorize(ApiToken(TEST_API_TOKEN, "given as a secret"))
    answer = client.post("/automation/living/evaluate", {"inputs": {"temperature": 30.0}})
    assert answer == {"automation": "living", "action": "stay", "facts": {"inputs": {"temperature": 30.0}}}
    assert handler.authorization == [f"Bearer {TEST_API_TOKEN}"]


def test_an_error_status_is_a_reply_error_with_the_handlers_body(handler: Handler):
    with pytest.raises(HandlerReplyError) as caught:
        client_of(handler.url).post("/model/reload", {})
    assert caught.value.status == 503 and caught.value.body == {"error": "MODEL_UNAVAILABLE", "message": "no model"}
    with pytest.raises(HandlerReplyError) as not_json:
        client_of(handler.url).errors()
    assert not_json.value.status == 502 and not_json.value.body["error"] == "BAD_REPLY"


def test_a_command_answers_the_handlers_status_and_body_whatever_they_are(handler: Handler):
    client = client_of(handler.url)
    assert client.command("living_window", {"id": "c-0", "values": {"position": 40}}) == (
        200, {"status": "success", "cmd_id": "c-0", "result": {"position": 40}})
    status, body = client.command("stuck_window", {"id": "c-1", "values": {"position": 40}})
    assert status == 409 and body["error"] == "REJECTED"


def test_pulls_keep_only_views_that_name_a_device_and_health_never_raises(handler: Handler):
    client = client_of(handler.url)
    assert client.sensors() == [{"device_id": "living_temperature", "state": {}}]
    assert client.health() == {"status": "degraded", "http_status": 503, "detail": {"status": "degraded"}}


def test_a_handler_that_is_not_there_is_not_running():
    client = client_of(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(HandlerUnavailable) as caught:
        client.post("/automation/living/evaluate", {})
    assert caught.value.reason == SERVICE_NOT_RUNNING and not caught.value.timed_out
    assert client.health() == {"status": "down", "reason": SERVICE_NOT_RUNNING}


def test_a_handler_that_does_not_answer_in_time_is_not_responding(handler: Handler):
    with pytest.raises(HandlerUnavailable) as caught:
        client_of(handler.url).post("/hang", {}, timeout=0.2)
    assert caught.value.reason == NOT_RESPONDING and caught.value.timed_out


def test_a_service_of_another_instance_on_the_port_is_no_answer():
    other = Handler(instance_id="sensor_hub_02")
    try:
        with pytest.raises(HandlerUnavailable) as caught:
            client_of(other.url).post("/automation/living/evaluate", {})
    finally:
        other.stop()
    assert "sensor_hub_02" in caught.value.reason
