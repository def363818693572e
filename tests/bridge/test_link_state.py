"""The broker link's state and the words for its failures (bridge/client.py): plain values, no
broker. tests/chaos/test_bridge_faults.py shows the same against real TLS handshakes."""
from __future__ import annotations

import socket
import ssl

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from bridge.client import LinkState, describe_connect_failure, describe_early_close, describe_refusal
from shared.config import MqttSettings, TlsSettings

PLAIN = MqttSettings(host="127.0.0.1", port=1883)
TLS = MqttSettings(host="127.0.0.1", port=8883, tls=TlsSettings(ca_file="/etc/mqtt/ca.crt"))


def test_the_same_failure_again_is_no_news():
    state = LinkState()
    assert state.report()["up"] is False and "connecting" in state.report()["reason"]
    assert state.failed("connection refused") is True
    assert state.failed("connection refused") is False
    assert state.failed("TLS handshake failed: x") is True  # a new reason is a change
    assert state.report()["failed_attempts"] == 3
    down_s, failures = state.went_up()
    assert failures == 3 and down_s >= 0
    assert state.report() | {"since": 0} == {"up": True, "reason": None, "since": 0, "failed_attempts": 0}
    assert state.failed("connection lost (Unspecified error)") is True  # up -> down, whatever the reason


def test_a_certificate_the_bridge_does_not_trust_names_the_setting():
    exc = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                          "self-signed certificate in certificate chain (_ssl.c:1006)")
    assert describe_connect_failure(exc, TLS) == ("TLS handshake failed: certificate verify failed: self-signed "
                                                  "certificate in certificate chain (MQTT_TLS_CA=/etc/mqtt/ca.crt)")
    system = MqttSettings(port=8883, tls=TlsSettings())
    assert "MQTT_TLS_CA not set" in describe_connect_failure(exc, system)


def test_tls_spoken_to_a_plain_port_and_plain_to_a_tls_port():
    reset = ConnectionResetError(104, "Connection reset by peer")
    assert describe_connect_failure(reset, TLS) == ("TLS handshake failed: the broker closed the connection "
                                                    "(is 127.0.0.1:8883 a TLS port?)")
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    assert describe_connect_failure(wrong, TLS) == ("TLS handshake failed: wrong version number "
                                                    "(is 127.0.0.1:8883 a TLS port?)")
    closed = ReasonCode(PacketTypes.DISCONNECT, identifier=128)
    assert describe_early_close(closed, PLAIN) == ("the broker closed the connection before accepting it "
                                                   "(Unspecified error); is 127.0.0.1:1883 a TLS port? "
                                                   "(MQTT_TLS is off)")
    assert "TLS port" not in describe_early_close(closed, TLS)


def test_other_failures():
    assert describe_connect_failure(ConnectionRefusedError(111, "Connection refused"), PLAIN).startswith(
        "connection refused")
    assert "'nowhere.invalid'" in describe_connect_failure(socket.gaierror(-2, "Name or service not known"),
                                                          MqttSettings(host="nowhere.invalid"))
    assert describe_connect_failure(TimeoutError(), PLAIN) == "no answer (connection timed out)"
    assert describe_connect_failure(None, PLAIN) == "connection failed"
    refused = ReasonCode(PacketTypes.CONNACK, identifier=135)
    assert describe_refusal(refused) == ("the broker refused the connection: Not authorized "
                                         "(check MQTT_USERNAME and MQTT_PASSWORD)")
