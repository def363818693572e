"""The bridge's paho client confirms an MQTT 3.1.1 PUBACK without building paho's MQTT 5 objects
(bridge/client.py ``LeanPubackClient``), against a real broker."""
from __future__ import annotations

import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from bridge.client import LeanPubackClient
from testkit.helpers import wait_for


def test_every_puback_confirms_its_message_once_and_builds_no_properties(mosquitto, monkeypatch):
    confirmed: list[int] = []
    lock = threading.Lock()
    client = LeanPubackClient(CallbackAPIVersion.VERSION2, client_id="lean-puback-test", protocol=paho.MQTTv311)
    client.max_inflight_messages_set(0)  # as the bridge runs it

    def on_publish(client, userdata, mid, reason_code, properties):
        with lock:
            confirmed.append(mid)

    client.on_publish = on_publish
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        wait_for(client.is_connected, 10, message="connected to the broker")
        built = []
        original = Properties.__init__

        def counting_init(self, packet_type):  # counts, then paho's own
            built.append(packet_type)
            original(self, packet_type)

        monkeypatch.setattr(Properties, "__init__", counting_init)
        infos = [client.publish(f"lean/puback/{n}", b"x", qos=1) for n in range(200)]
        wait_for(lambda: all(info.is_published() for info in infos), 10, message="every PUBACK")
        with lock:
            assert sorted(confirmed) == sorted(info.mid for info in infos)  # each once
        assert built == []
    finally:
        client.loop_stop()
        client.disconnect()
