"""TLS (CA-verified, and the insecure flag) and username/password against a real Mosquitto."""
from __future__ import annotations

import os
import subprocess

import pytest

from testkit.broker import MosquittoBroker
from testkit.certs import issue_server_cert, make_ca
from testkit.helpers import wait_for
from testkit.mqtt_watch import Watcher
from tests.bridge.conftest import BASE

USER, PASSWORD = "bridge", "s3cret-test-only"


@pytest.fixture
def tls_broker(tmp_path):
    certs = tmp_path / "certs"
    make_ca(certs)
    issue_server_cert(certs)
    passwords = certs / "passwords"
    passwords.touch(mode=0o600)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), USER, PASSWORD], check=True, capture_output=True)
    broker = MosquittoBroker()
    broker.config_path.write_text("\n".join([
        # started as root, mosquitto would switch to its own user, who cannot read pytest's tmp dir
        "user root" if os.geteuid() == 0 else "", "per_listener_settings false", "allow_anonymous false",
        f"password_file {passwords}",
        f"listener {broker.port} 127.0.0.1", f"cafile {certs / 'ca.crt'}", f"certfile {certs / 'server.crt'}",
        f"keyfile {certs / 'server.key'}", "log_dest stderr", "persistence false"]) + "\n")
    broker.start()
    broker.ca = str(certs / "ca.crt")
    yield broker
    broker.close()


def tls_login(ca: str):
    def setup(client):
        client.tls_set(ca_certs=ca)
        client.username_pw_set(USER, PASSWORD)
    return setup


@pytest.mark.parametrize("insecure", [False, True])
def test_bridge_over_tls_with_credentials(tls_broker, aggregator, start_bridge, insecure):
    watcher = Watcher(tls_broker.port, "IoT2mqtt/#", setup=tls_login(tls_broker.ca)).start()
    try:
        env = {"MQTT_TLS": "true", "MQTT_TLS_CA": tls_broker.ca, "MQTT_USERNAME": USER, "MQTT_PASSWORD": PASSWORD,
               "MQTT_PORT": str(tls_broker.port)}
        if insecure:
            env["MQTT_TLS_INSECURE"] = "true"
        start_bridge(env=env, broker=tls_broker)
        watcher.wait(f"{BASE}/status", lambda p: p == b"online", timeout=20)
    finally:
        watcher.stop()


def test_wrong_password_never_connects(tls_broker, aggregator, start_bridge, caplog):
    bridge = start_bridge(env={"MQTT_TLS": "true", "MQTT_TLS_CA": tls_broker.ca, "MQTT_USERNAME": USER,
                               "MQTT_PASSWORD": "wrong", "MQTT_PORT": str(tls_broker.port)}, broker=tls_broker)
    wait_for(lambda: any("refused the connection" in r.getMessage() for r in caplog.records), timeout=20)
    assert not bridge.ctx.link.connected
    assert all("wrong" not in r.getMessage() for r in caplog.records)  # the password is never logged
