"""``python -m services.serial_handler`` as a real process (gunicorn) on an emulated board."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from testkit.example import ROOT, deep_merge, example_document
from testkit.helpers import authorization, free_port, wait_for
from tests.serial_handler.conftest import serial_overlay


def test_the_launcher_serves_an_emulated_board(emulators, tmp_path: Path) -> None:
    emulator = emulators("--interval-ms", "200", "--board-id", "b1")
    port = free_port()
    doc = deep_merge(example_document(), serial_overlay({"b1": {"port": str(emulator.link)}}))
    doc["instance_id"] = "serial_launch"
    doc["config"]["services"]["serial_handler"]["port"] = port
    instances = tmp_path / "instances"
    instances.mkdir()
    (instances / "serial_launch.json").write_text(json.dumps(doc))
    env = {**os.environ, "INSTANCE_NAME": "serial_launch", "INSTANCES_DIR": str(instances),
           "DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "INFO"}
    log_file = (tmp_path / "service.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "services.serial_handler"], cwd=ROOT, env=env,
                               stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(lambda: (r := requests.get(url + "/health", timeout=5)).status_code == 200 and r, 30,
                          message="the service healthy")
        assert health.json()["checks"]["board b1"]["ok"] is True
        emulator.control({"set": {"temperature": 22.5}})
        wait_for(lambda: requests.get(url + "/sensor/b1_temperature", timeout=5).json()["state"].get("temperature")
                 == 22.5, 15)
        answer = requests.post(url + "/sensor/b1_led/cmd", json={"values": {"state": "on"}, "id": "launch-1"},
                               timeout=10, headers=authorization(tmp_path / "data"))
        assert answer.json() == {"status": "success", "cmd_id": "launch-1",
                                 "result": {"state": "on", "color": "#ffffff", "brightness": 255, "blink": 0}}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        log_file.close()
    assert code == 0, (tmp_path / "service.log").read_text()[-3000:]
    assert "[cmd launch-1]" in (tmp_path / "service.log").read_text()


def test_a_broken_config_stops_the_start_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"instance_id": "bad"}')
    env = {**os.environ, "INSTANCE_NAME": "bad", "INSTANCES_DIR": str(tmp_path), "DATA_DIR": str(tmp_path / "d")}
    result = subprocess.run([sys.executable, "-m", "services.serial_handler"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "devices" in result.stderr
