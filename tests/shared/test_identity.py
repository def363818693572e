"""Which instance a service belongs to: the X-Instance-Id header every app sends, the sentence a
follower shows for another instance's service, and the event-stream follower that refuses one."""
from __future__ import annotations

import logging

import pytest
from flask import Flask, request
from requests.structures import CaseInsensitiveDict

from shared.errors import Conflict
from shared.identity import INSTANCE_HEADER, ForeignInstance, check_instance, foreign_reason
from shared.server import run_in_thread
from shared.sse import EventFollower, EventPublisher
from shared.web import install_error_handlers, install_instance_header
from testkit.helpers import free_port, wait_for


def test_our_own_instance_is_no_reason():
    assert foreign_reason("http://127.0.0.1:5003", "sensor_hub_01", "sensor_hub_01") is None


def test_another_instance_is_named_with_the_likely_cause():
    reason = foreign_reason("http://127.0.0.1:5003/events", "other_hub", "sensor_hub_01")
    assert reason == ("http://127.0.0.1:5003 belongs to instance 'other_hub', not 'sensor_hub_01' "
                      "(two instances configured with the same port?)")


@pytest.mark.parametrize("answered", [None, ""])
def test_a_service_that_does_not_say_is_not_ours(answered):
    reason = foreign_reason("http://127.0.0.1:5001/sensors", answered, "sensor_hub_01")
    assert reason is not None and reason.startswith("http://127.0.0.1:5001 does not say which instance")
    assert "no X-Instance-Id header" in reason and "'sensor_hub_01'" in reason


def test_the_check_reads_headers_as_requests_gives_them():
    check_instance("http://h:1", CaseInsensitiveDict({"x-instance-id": "a"}), "a")
    check_instance("http://h:1", {}, None)  # nothing expected: a tool following any stream
    with pytest.raises(ForeignInstance) as refused:
        check_instance("http://h:1", CaseInsensitiveDict({"X-Instance-Id": " b "}), "a")
    assert refused.value.reason.startswith("http://h:1 belongs to instance 'b', not 'a'")


def _app(instance_id: str | None, publisher: EventPublisher) -> Flask:
    app = Flask(__name__)
    install_error_handlers(app)
    if instance_id is not None:
        install_instance_header(app, instance_id)

    @app.get("/refused")
    def refused():
        raise Conflict("NOPE", "no")

    @app.get("/crash")
    def crash():
        raise RuntimeError("boom")

    @app.get("/events")
    def events():
        return publisher.flask_response(request.headers.get("Last-Event-ID"))

    return app


def test_every_answer_of_an_app_names_its_instance():
    publisher = EventPublisher(heartbeat_s=1.0)
    client = _app("sensor_hub_01", publisher).test_client()
    for path, status in (("/refused", 409), ("/crash", 500), ("/nowhere", 404)):
        response = client.get(path)
        assert response.status_code == status and response.headers[INSTANCE_HEADER] == "sensor_hub_01", path
    stream = client.get("/events", buffered=False)
    try:
        assert stream.mimetype == "text/event-stream" and stream.headers[INSTANCE_HEADER] == "sensor_hub_01"
    finally:
        stream.close()
        publisher.close()


def _refusals(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "shared.sse" and r.getMessage().startswith(f"event stream {name} refused")]


def test_a_follower_refuses_another_instances_stream_until_its_own_appears(caplog):
    caplog.set_level(logging.WARNING, logger="shared.sse")
    port = free_port()
    theirs = EventPublisher(heartbeat_s=0.5)
    server = run_in_thread(_app("other_hub", theirs), port=port)
    received = []
    follower = EventFollower(f"{server.url}/events", received.append, backoff=(0.02, 0.1),
                             name="agg", instance_id="sensor_hub_01").start()
    ours = EventPublisher(heartbeat_s=0.5)
    try:
        wait_for(lambda: follower.failures >= 4, 10, message="several refused attempts")
        theirs.publish("state", {"device_id": "t1", "state": {"temperature": 99}})
        assert follower.refused == (f"http://127.0.0.1:{port} belongs to instance 'other_hub', not "
                                    "'sensor_hub_01' (two instances configured with the same port?)")
        assert not follower.connected and follower.connects == 0 and received == []
        assert _refusals(caplog, "agg") == [f"event stream agg refused: {follower.refused}"]  # once, not per retry
        # The other instance goes; ours takes the port: followed at once, nothing refused any more.
        server.stop()
        server = run_in_thread(_app("sensor_hub_01", ours), port=port)
        wait_for(lambda: follower.connected, 10, message="our own stream")
        assert follower.refused is None
        ours.publish("state", {"device_id": "t1", "state": {"temperature": 21}})
        wait_for(lambda: received, 10, message="an event of our own instance")
        assert [e.data["state"] for e in received] == [{"temperature": 21}]
    finally:
        follower.stop()
        server.stop()
        theirs.close()
        ours.close()


def test_a_follower_refuses_a_stream_that_names_no_instance(caplog):
    caplog.set_level(logging.WARNING, logger="shared.sse")
    publisher = EventPublisher(heartbeat_s=0.5)
    server = run_in_thread(_app(None, publisher))
    follower = EventFollower(f"{server.url}/events", lambda event: None, backoff=(0.02, 0.1), name="h",
                             instance_id="sensor_hub_01").start()
    try:
        wait_for(lambda: follower.failures >= 3, 10, message="refused attempts")
        assert not follower.connected and "no X-Instance-Id header" in (follower.refused or "")
        assert len(_refusals(caplog, "h")) == 1
    finally:
        follower.stop()
        server.stop()
        publisher.close()
