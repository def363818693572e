"""The pure part of the API token (shared/api_token.py): where it comes from, the file made once
and race-free, the header check; and the enforcement every app shares (shared/web.py), served
over real HTTP."""
from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from flask import Flask

from scripts.run_local import state_changing_calls
from shared.api_token import ENV_NAME, FILE_NAME, ApiToken, TokenError, from_secrets, resolve, token_file
from shared.config import ConfigError, load_settings, settings_from_dict
from shared.server import run_in_thread
from shared.web import install_api_token, install_error_handlers
from testkit.example import ROOT, example_document

TOKEN = "a-token-of-the-tests-0123456789"


def test_the_header_is_checked_exactly():
    token = ApiToken(TOKEN, "/data/api-token")
    assert token.admits(f"Bearer {TOKEN}") and token.admits(f"bearer  {TOKEN} ")
    assert not token.admits(None) and not token.admits("") and not token.admits("Bearer")
    assert not token.admits(f"Basic {TOKEN}") and not token.admits(TOKEN)
    assert not token.admits(f"Bearer {TOKEN}x") and not token.admits(f"Bearer {TOKEN[:-1]}")
    assert token.header() == {"Authorization": f"Bearer {TOKEN}"}
    assert TOKEN not in repr(token) and "/data/api-token" in repr(token)


def test_a_secret_comes_from_the_environment_before_the_creds_file():
    assert from_secrets({}) is None
    creds = from_secrets({"CREDS_api_token": TOKEN})
    assert creds is not None and creds.value == TOKEN and creds.where.startswith("given as a secret")
    both = from_secrets({ENV_NAME: "env-" + TOKEN, "CREDS_api_token": TOKEN})
    assert both is not None and both.value == "env-" + TOKEN and ENV_NAME in both.where
    with pytest.raises(TokenError) as short:
        from_secrets({ENV_NAME: "short"})
    assert "short" not in str(short.value)  # says what is wrong, never the value


def test_the_file_is_made_once_with_mode_0600(tmp_path: Path):
    made = token_file(tmp_path)
    path = tmp_path / FILE_NAME
    assert made.where == str(path) and len(made.value) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token_file(tmp_path) == made  # the next start reads it
    assert resolve({}, tmp_path) == made
    assert resolve({ENV_NAME: TOKEN}, tmp_path).value == TOKEN  # a secret wins
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]


def test_a_broken_file_is_refused_with_where_it_is(tmp_path: Path):
    (tmp_path / FILE_NAME).write_text("\n")
    with pytest.raises(TokenError, match=str(tmp_path / FILE_NAME)):
        token_file(tmp_path)


def test_programs_making_it_at_the_same_moment_agree(tmp_path: Path):
    """Twelve processes race to make the file: one wins, every one of them reads the winner's."""
    start = tmp_path / "go"
    code = ("import os, sys, time\n"
            "from pathlib import Path\n"
            "from shared.api_token import token_file\n"
            f"while not os.path.exists({str(start)!r}): time.sleep(0.001)\n"
            f"print(token_file(Path({str(tmp_path)!r})).value)\n")
    racers = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
              for _ in range(12)]
    start.touch()
    values = {racer.communicate(timeout=60)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert values == {(tmp_path / FILE_NAME).read_text().strip()}
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME, "go"]  # no temp file left over


def test_real_programs_always_have_a_token_and_settings_never_show_it(tmp_path: Path):
    env = {"INSTANCE_NAME": "sensor_hub_01", "DATA_DIR": str(tmp_path / "data"), "SECRETS_DIR": str(tmp_path)}
    settings = load_settings(env, config_file=ROOT / "instances" / "sensor_hub_01.json")
    assert settings.api_token is not None and settings.api_token.where == str(tmp_path / "data" / FILE_NAME)
    assert settings.api_token.value not in repr(settings)
    (tmp_path / "sensor_hub_01_creds").write_text(f"api_token={TOKEN}\n")
    given = load_settings(env, config_file=ROOT / "instances" / "sensor_hub_01.json")
    assert given.api_token is not None and given.api_token.value == TOKEN
    # From a dict, only when given; a bad one is a config problem like any other.
    assert settings_from_dict(example_document(), {}).api_token is None
    with pytest.raises(ConfigError, match=ENV_NAME):
        settings_from_dict(example_document(), {ENV_NAME: "short"})


def test_make_run_says_how_to_send_it_without_saying_it(tmp_path: Path):
    env = {"INSTANCE_NAME": "sensor_hub_01", "DATA_DIR": str(tmp_path / "data")}
    settings = load_settings(env, config_file=ROOT / "instances" / "sensor_hub_01.json")
    line = state_changing_calls(settings)
    assert f'-H "Authorization: Bearer $(cat {tmp_path / "data" / FILE_NAME})" -X POST' in line
    assert settings.api_token is not None and settings.api_token.value not in line
    secret = load_settings(env | {ENV_NAME: TOKEN}, config_file=ROOT / "instances" / "sensor_hub_01.json")
    assert f"Bearer ${ENV_NAME}" in state_changing_calls(secret) and TOKEN not in state_changing_calls(secret)


def _served(token: ApiToken | None, cleanup) -> str:
    app = Flask(__name__)
    install_error_handlers(app)
    install_api_token(app, token)
    app.add_url_rule("/thing", "read", lambda: {"read": True}, methods=["GET"])
    app.add_url_rule("/thing", "change", lambda: {"changed": True}, methods=["POST", "PUT", "DELETE"])
    server = cleanup.add(run_in_thread(app))
    return server.url + "/thing"


def test_every_state_changing_method_needs_the_token(cleanup):
    url = _served(ApiToken(TOKEN, "/data/api-token"), cleanup)
    assert requests.get(url, timeout=5).json() == {"read": True}
    assert requests.head(url, timeout=5).status_code == 200
    assert requests.options(url, timeout=5).status_code == 200
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        refused = requests.request(method, url, timeout=5)
        assert refused.status_code == 401 and refused.json()["error"] == "UNAUTHORIZED", method
        assert "/data/api-token" in refused.json()["message"] and TOKEN not in refused.text
    for method in ("POST", "PUT", "DELETE"):
        assert requests.request(method, url, headers={"Authorization": f"Bearer {TOKEN}"},
                                timeout=5).json() == {"changed": True}


def test_without_a_token_nothing_state_changing_is_taken(cleanup):
    url = _served(None, cleanup)
    assert requests.get(url, timeout=5).status_code == 200
    refused = requests.post(url, headers={"Authorization": "Bearer anything-at-all-0123"}, timeout=5)
    assert refused.status_code == 401 and ENV_NAME in refused.json()["message"]
