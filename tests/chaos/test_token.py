"""Anyone on the host reaches the services' ports (host networking): a state-changing call needs
the instance's API token (shared/api_token.py, enforced by shared/web.py). Real service processes
here: a call without the token, or with a wrong one, is a JSON 401 that says where the token is
and carries nothing out; reading stays open; the token file is made once, 0600, by whichever of
the four programs started at once comes first, and all of them take the same token; a token
given as a secret wins; the token never appears in a log."""
from __future__ import annotations

import stat
from pathlib import Path

import requests

from shared.api_token import ENV_NAME, FILE_NAME
from shared.config import DEFAULT_PORTS
from testkit.helpers import authorization, wait_for
from testkit.instance_dir import service_addresses, write_instance
from testkit.scripted_handler import ScriptedHandler
from testkit.service_process import ServiceProcess
from tests.conftest import Started
from tests.ml_inference.conftest import install_model
from tests.state_aggregator.conftest import SERIAL_DEVICES

# A command each service refuses for want of a token, or (with it) answers 404: it changes nothing.
UNKNOWN_COMMAND = {"serial_handler": "/sensor/nope/cmd", "http_poller": "/sensor/nope/cmd",
                   "ml_inference": "/sensor/nope/cmd", "state_aggregator": "/device/nope/cmd"}


def _environment(tmp_path: Path, services: dict) -> dict[str, str]:
    env = write_instance(tmp_path, services=services)
    env.pop(ENV_NAME, None)  # the token comes from the data folder unless a test gives one
    env["LOG_LEVEL"] = "DEBUG"  # the most a log ever says: still never the token
    return env


def _start(cleanup: Started, name: str, services: dict, env: dict[str, str], log: Path) -> ServiceProcess:
    url = f"http://127.0.0.1:{services[name]['port']}"
    return cleanup.add(ServiceProcess(f"services.{name}", url, env, log).start("/health", timeout=90))


def _refusal(response: requests.Response) -> dict:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == "UNAUTHORIZED", body
    return body


def test_a_state_changing_call_needs_the_instance_token(tmp_path: Path, cleanup: Started):
    services = service_addresses()
    handler = cleanup.add(ScriptedHandler(SERIAL_DEVICES, services["serial_handler"]["port"]).start())
    env = _environment(tmp_path, services)
    aggregator = _start(cleanup, "state_aggregator", services, env, tmp_path / "state_aggregator.log")
    url = aggregator.url
    token_path = tmp_path / "data" / FILE_NAME
    token = token_path.read_text().strip()
    # Reading stays open on loopback, with no token at all: `curl localhost:5003/devices`.
    wait_for(lambda: {d["device_id"]: d for d in requests.get(url + "/devices", timeout=5).json()["devices"]}
             ["living_led"]["online"], 30, message="living_led online")
    assert requests.get(url + "/device/living_led", timeout=5).status_code == 200

    command = {"values": {"state": "on"}, "id": "no-token-1"}
    body = _refusal(requests.post(url + "/device/living_led/cmd", json=command, timeout=10))
    assert str(token_path) in body["message"] and "Authorization: Bearer" in body["message"]
    assert token not in body["message"]
    wrong = {"Authorization": "Bearer " + "x" * len(token)}
    _refusal(requests.post(url + "/device/living_led/cmd", json=command, headers=wrong, timeout=10))
    _refusal(requests.post(url + "/device/living_led/cmd", json=command, timeout=10,
                           headers={"Authorization": "Basic " + token}))
    _refusal(requests.post(url + "/device/living_led/cmd", json=command, timeout=10,
                           headers={"Authorization": "Bearer " + token[:-1]}))
    _refusal(requests.post(url + "/group/living_room/cmd", json={"state": "on"}, timeout=10))
    _refusal(requests.post(url + "/device/living_led/force-refresh", timeout=10))
    _refusal(requests.delete(url + "/devices", timeout=10))
    assert handler.commands_for("living_led") == []  # nothing carried out

    auth = authorization(tmp_path / "data")
    done = requests.post(url + "/device/living_led/cmd", json={"values": {"state": "on"}, "id": "token-1"},
                         headers=auth, timeout=10)
    assert done.status_code == 200 and done.json()["status"] == "success", done.text
    assert [c["id"] for c in handler.commands_for("living_led")] == ["token-1"]
    assert requests.post(url + "/cache/clear", headers=auth, timeout=10).status_code == 200

    assert aggregator.stop() == 0
    log = aggregator.log()
    assert log and token not in log


def test_four_programs_started_at_once_make_one_token_file_and_share_it(tmp_path: Path, cleanup: Started,
                                                                         default_model: Path):
    services = service_addresses()
    env = _environment(tmp_path, services)
    install_model(default_model, tmp_path / "data")
    processes = [ServiceProcess(f"services.{name}", f"http://127.0.0.1:{services[name]['port']}", env,
                                tmp_path / f"{name}.log") for name in DEFAULT_PORTS]
    for process in processes:  # all four at once: nobody waits for another to be up
        cleanup.add(process.launch())
    for process in processes:
        process.wait_answering("/health", 90)

    data = tmp_path / "data"
    token_path = data / FILE_NAME
    assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
    assert [p.name for p in data.iterdir() if FILE_NAME in p.name] == [FILE_NAME]  # no temp file left
    token = token_path.read_text().strip()
    auth = authorization(data)
    for name, process in zip(DEFAULT_PORTS, processes, strict=True):
        path = UNKNOWN_COMMAND[name]
        _refusal(requests.post(process.url + path, json={"state": "on"}, timeout=10))
        answer = requests.post(process.url + path, json={"state": "on"}, headers=auth, timeout=10)
        assert answer.status_code == 404, (name, answer.text)  # taken: the device is unknown, that's all
    for process in processes:
        process.stop()
        assert token not in process.log(), process.module


def test_a_token_given_as_a_secret_wins_over_the_file(tmp_path: Path, cleanup: Started):
    services = service_addresses()
    env = _environment(tmp_path, services)
    data = tmp_path / "data"
    data.mkdir()
    file_token = "file-token-" + "f" * 32
    (data / FILE_NAME).write_text(file_token + "\n")
    secret = "secret-token-" + "s" * 32
    env[ENV_NAME] = secret
    aggregator = _start(cleanup, "state_aggregator", services, env, tmp_path / "state_aggregator.log")

    def clear(token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(aggregator.url + "/cache/clear", headers=headers, timeout=10)

    assert clear(secret).status_code == 200
    body = _refusal(clear(file_token))
    assert "given as a secret" in body["message"] and ENV_NAME in body["message"]
    assert secret not in body["message"] and file_token not in body["message"]
    _refusal(clear(None))
    assert (data / FILE_NAME).read_text().strip() == file_token  # left as it was
    aggregator.stop()
    assert secret not in aggregator.log()
