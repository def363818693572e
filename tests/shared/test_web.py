"""JSON errors, pretty JSON for curl, health, error log and metrics, over a real HTTP server."""
from __future__ import annotations

import json
import logging
import threading

import pytest
import requests
from flask import Flask, request

from shared.error_log import ErrorLog
from shared.errors import NotFound
from shared.metrics import Metrics
from shared.server import run_in_thread
from shared.web import (
    BODY_BYTES_MAX,
    health_response,
    install_error_handlers,
    install_metrics,
    json_response,
)

HTML_MARKERS = ("<html", "<!doctype", "Traceback")


@pytest.fixture
def service():
    """A small app using every helper, served on loopback."""
    app = Flask(__name__)
    errors = ErrorLog("demo", maxlen=3)
    metrics = Metrics("demo")
    install_error_handlers(app, errors)
    install_metrics(app, metrics)
    readings = metrics.counter("readings_total", "Readings received", ("device_id",))
    metrics.gauge_function("queue_length", "Items waiting", lambda: 7)

    @app.get("/thing")
    def thing():
        readings.labels("t1").inc()
        return json_response({"a": 1, "nested": {"b": [1, 2]}})

    @app.post("/thing")
    def post_thing():
        return json_response(request.get_json())

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @app.get("/unknown/<device_id>")
    def unknown(device_id):
        raise NotFound("UNKNOWN_DEVICE", f"No device {device_id!r}.", known=["t1"])

    @app.get("/health")
    def health():
        return health_response({"serial": (request.args.get("ok") == "1", "port /dev/ttyUSB0 closed")},
                               uptime_s=1)

    @app.get("/errors")
    def list_errors():
        return json_response(errors.to_dict())

    server = run_in_thread(app)
    server.errors = errors
    yield server
    server.stop()


def no_html(response: requests.Response) -> None:
    assert response.headers["Content-Type"].startswith("application/json")
    assert not any(marker.lower() in response.text.lower() for marker in HTML_MARKERS)


def test_404_is_json(service):
    response = requests.get(service.url + "/nope", timeout=5)
    assert response.status_code == 404
    no_html(response)
    assert response.json()["error"] == "NOT_FOUND" and response.json()["message"]


def test_405_is_json_with_allowed_methods(service):
    response = requests.delete(service.url + "/thing", timeout=5)
    assert response.status_code == 405
    no_html(response)
    assert response.json()["error"] == "METHOD_NOT_ALLOWED"
    assert "GET" in response.json()["allowed"] and "GET" in response.headers["Allow"]


def test_bad_json_body_is_a_json_400(service):
    response = requests.post(service.url + "/thing", data="{not json",
                             headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400
    no_html(response)
    assert response.json()["error"] == "BAD_REQUEST"


def test_uncaught_exception_is_a_json_500_logged_with_traceback(service, caplog):
    with caplog.at_level(logging.ERROR, logger="shared.web"):
        response = requests.get(service.url + "/boom", timeout=5)
    assert response.status_code == 500
    no_html(response)
    assert response.json()["error"] == "INTERNAL_ERROR"
    assert "secret internals" not in response.text  # details stay in the log
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)
    (record,) = service.errors.list()
    assert record["error_code"] == "INTERNAL_ERROR" and record["source"] == "demo"


def test_a_domain_error_is_answered_with_its_code_its_kinds_status_and_extra(service):
    response = requests.get(service.url + "/unknown/x", timeout=5)
    assert response.status_code == 404
    assert response.json() == {"error": "UNKNOWN_DEVICE", "message": "No device 'x'.", "known": ["t1"]}


def test_curl_and_pretty_param_get_indented_json(service):
    compact = requests.get(service.url + "/thing", timeout=5)
    assert "\n" not in compact.text and compact.json()["a"] == 1
    for response in (requests.get(service.url + "/thing", headers={"User-Agent": "curl/8.5.0"}, timeout=5),
                     requests.get(service.url + "/thing?pretty=1", timeout=5)):
        assert response.text.startswith("{\n  ") and response.text.endswith("\n")
        assert json.loads(response.text) == compact.json()
    error = requests.get(service.url + "/nope", headers={"User-Agent": "curl/8.5.0"}, timeout=5)
    assert error.text.startswith("{\n  ")


def test_health_ok_and_degraded(service):
    ok = requests.get(service.url + "/health?ok=1", timeout=5)
    assert ok.status_code == 200 and ok.json()["status"] == "ok" and "reasons" not in ok.json()
    bad = requests.get(service.url + "/health", timeout=5)
    assert bad.status_code == 503
    assert bad.json()["status"] == "degraded"
    assert bad.json()["reasons"] == ["serial: port /dev/ttyUSB0 closed"]
    assert bad.json()["uptime_s"] == 1


def test_metrics_in_a_private_registry(service):
    requests.get(service.url + "/thing", timeout=5)
    text = requests.get(service.url + "/metrics", timeout=5).text
    assert 'sensor_hub_readings_total{device_id="t1"} 1.0' in text
    assert "sensor_hub_queue_length 7.0" in text
    assert 'sensor_hub_http_requests_total{method="GET",route="/thing",status="200"} 1.0' in text
    # A second app with the same metric names does not collide (no global registry).
    install_metrics(Flask("other"), Metrics("other"))


def test_error_log_is_bounded_newest_last_and_thread_safe(service):
    log = ErrorLog("demo", maxlen=50)
    threads = [threading.Thread(target=lambda: [log.add("E", f"m{i}") for i in range(100)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.total == 400 and len(log.list()) == 50
    log.add("TIMEOUT", "last one", severity="warning", device_id="t1")
    newest = log.list()[-1]
    assert newest["error_code"] == "TIMEOUT" and newest["device_id"] == "t1" and newest["severity"] == "warning"

    for n in range(5):
        service.errors.add("E", f"error {n}")
    body = requests.get(service.url + "/errors", timeout=5).json()
    assert [e["message"] for e in body["errors"]] == ["error 2", "error 3", "error 4"]
    assert body["total"] == 5


def test_a_body_over_the_limit_is_a_json_413_before_the_route_reads_it(service):
    answer = requests.post(service.url + "/thing", data=b"x" * (BODY_BYTES_MAX + 1),
                           headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 413 and answer.json()["error"] == "PAYLOAD_TOO_LARGE", answer.text
    assert str(BODY_BYTES_MAX) in answer.json()["message"]
