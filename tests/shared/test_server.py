"""The gunicorn launcher (in a subprocess) and the in-process test server."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import requests
from flask import Flask
from gunicorn.workers.gthread import ThreadWorker

from shared.server import gunicorn_options, run_in_thread
from shared.sse import EventFollower
from testkit.helpers import free_port, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]

SERVICE = textwrap.dedent("""
    import os
    import sys
    import time
    from types import SimpleNamespace
    from flask import Flask, request
    import shared.server
    from shared.server import serve
    from shared.sse import EventPublisher

    shared.server.GRACEFUL_TIMEOUT_S = int(os.environ.get("DEMO_GRACEFUL_TIMEOUT", shared.server.GRACEFUL_TIMEOUT_S))
    shared.server.ARRIVING_BYTES_MAX = int(os.environ.get("DEMO_ARRIVING_BYTES_MAX", shared.server.ARRIVING_BYTES_MAX))

    def create_app(settings):
        if os.environ.get("DEMO_LOAD_SECONDS"):  # like ml_inference importing torch
            print("loading the app", file=sys.stderr, flush=True)
            time.sleep(float(os.environ["DEMO_LOAD_SECONDS"]))
        app = Flask("demo")
        publisher = EventPublisher(heartbeat_s=0.5)

        @app.get("/health")
        def health():
            return {"status": "ok"}

        @app.get("/events")
        def events():
            return publisher.flask_response(request.headers.get("Last-Event-ID"))

        @app.post("/publish")
        def publish():
            return {"id": publisher.publish("state", request.get_json()).id}

        built = app.config["built_at_start"] = ["the app's tables", []]  # a list: always tracked

        @app.get("/heap")
        def heap():
            import gc
            return {"frozen": gc.get_freeze_count(), "built_frozen": not any(o is built for o in gc.get_objects())}

        return app

    port = int(sys.argv[1])
    settings = SimpleNamespace(
        log_level="INFO", log_format="json",
        mqtt=SimpleNamespace(password="hunter2-secret"),
        service=lambda name: SimpleNamespace(name=name, host="127.0.0.1", port=port),
    )
    serve(create_app, settings, "demo_service", threads=16)
""")


@pytest.fixture
def gunicorn_service():
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", SERVICE, str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc, 15)


def test_serve_runs_the_app_under_gunicorn_and_streams_events(gunicorn_service):
    proc, url = gunicorn_service
    response = wait_for(lambda: requests.get(url + "/health", timeout=2), timeout=30,
                        message="gunicorn serving /health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}

    # Streaming works through gthread (no buffering between publish and client).
    received = []
    follower = EventFollower(url + "/events", received.append, backoff=(0.05, 0.5)).start()
    try:
        wait_for(lambda: follower.connected)
        requests.post(url + "/publish", json={"device_id": "t1"}, timeout=5).raise_for_status()
        wait_for(lambda: received, message="event through gunicorn")
        assert received[0].data["device_id"] == "t1"
    finally:
        follower.stop()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    err = proc.stderr.read()
    lines = [line for line in err.splitlines() if line.startswith("{")]
    assert lines, err  # json format, as settings asked
    assert any('"service": "demo_service"' in line for line in lines)
    assert any("gunicorn.error" in line for line in lines)  # gunicorn's lines use our format
    assert "hunter2-secret" not in err


def test_serve_freezes_what_the_app_built_before_serving(gunicorn_service):
    # shared/heap.py: the app is loaded, then what it built is out of the collector's way.
    _, url = gunicorn_service
    wait_for(lambda: requests.get(url + "/health", timeout=2).ok, 30, message="the service")
    body = requests.get(url + "/heap", timeout=5).json()
    assert body["frozen"] > 0
    assert body["built_frozen"] is True


def test_sigterm_ends_open_event_streams_and_the_service_exits_by_itself(gunicorn_service):
    proc, url = gunicorn_service
    wait_for(lambda: requests.get(url + "/health", timeout=2), timeout=30, message="gunicorn serving /health")
    streams = [requests.get(url + "/events", stream=True, timeout=10) for _ in range(3)]
    for stream in streams:
        assert stream.raw.read1(1024).startswith(b"retry:")  # connected, waiting for events

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0  # the 5 s of the whole connector's stop (docs/architecture.md)
    for stream in streams:
        stream.raw.read()  # the stream ended properly (last chunk sent), not cut by a dying worker
    err = proc.stderr.read()
    assert "the event streams of 1 publisher(s) ended" in err
    assert "SIGKILL" not in err and "Perhaps out of memory" not in err, err


def test_a_service_whose_supervisor_was_killed_ends_its_streams_and_exits(tmp_path):
    """A service is one process (no gunicorn master): when what started it dies (kill -9 of
    supervisord), it must not live on holding its port, or a serial port that the next
    supervisord's program needs."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    launcher = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', sys.argv[1], "
         "sys.argv[2]]); print(p.pid, flush=True); p.wait()", SERVICE, str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        service = int(launcher.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(url + "/health", timeout=2), timeout=30, message="the service serving /health")
        stream = requests.get(url + "/events", stream=True, timeout=10)
        assert stream.raw.read1(1024).startswith(b"retry:")
        assert not Path(f"/proc/{service}/task/{service}/children").read_text().split()  # one process

        launcher.kill()
        launcher.wait(5)
        wait_for(lambda: not Path(f"/proc/{service}").exists() or _is_zombie(service), timeout=15, interval=0.05,
                 message="the orphaned service to exit")
        stream.raw.read()  # the stream ended properly, not cut
    finally:
        stop_process(launcher, 5)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_sigterm_while_the_app_still_loads_stops_the_service_at_once(tmp_path):
    port = free_port()
    log = tmp_path / "service.log"
    # A worker that went on loading would hold the stop for the whole (here long) graceful timeout.
    env = dict(os.environ, PYTHONPATH=str(ROOT), DEMO_LOAD_SECONDS="30", DEMO_GRACEFUL_TIMEOUT="30")
    with log.open("w") as output:
        proc = subprocess.Popen([sys.executable, "-c", SERVICE, str(port)], cwd=ROOT, env=env,
                                stdout=output, stderr=output)
    try:
        # (a SIGTERM before gunicorn gave the new worker its own signal handlers would be lost)
        wait_for(lambda: "loading the app" in log.read_text(), timeout=30, message="the worker loading the app")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "SIGKILL" not in log.read_text()


def test_gunicorn_options_one_worker_gthread():
    options = gunicorn_options("127.0.0.1", 5003)
    assert options["workers"] == 1 and issubclass(options["worker_class"], ThreadWorker)
    assert options["threads"] >= 32 and options["bind"] == ["127.0.0.1:5003"]
    assert options["accesslog"] is None
    assert gunicorn_options("::1", 5003)["bind"] == ["[::1]:5003"]


def test_run_in_thread_serves_and_stops():
    app = Flask(__name__)
    app.add_url_rule("/ping", "ping", lambda: "pong")
    server = run_in_thread(app)
    assert requests.get(server.url + "/ping", timeout=5).text == "pong"
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/ping", timeout=5)


def test_run_in_thread_stop_cuts_open_streams():
    release = threading.Event()

    def slow():
        yield "start\n"
        release.wait(30)
        yield "never\n"

    app = Flask(__name__)
    app.add_url_rule("/slow", "slow", lambda: app.response_class(slow()))
    server = run_in_thread(app)
    try:
        with requests.get(server.url + "/slow", stream=True, timeout=10) as response:
            chunks = response.iter_content(chunk_size=None)
            assert next(chunks) == b"start\n"
            server.stop()
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                list(chunks)  # the connection was cut, not completed
    finally:
        release.set()
