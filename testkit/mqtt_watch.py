"""A real MQTT subscriber for tests: records every message it sees, in order."""
from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from testkit.helpers import wait_for


class Watcher:
    def __init__(self, port: int, topics: str | list[str] = "#", client_id: str | None = None,
                 persistent: bool = False, setup=None) -> None:
        self.port = port
        self.topics = [topics] if isinstance(topics, str) else topics
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        # persistent: a broker-side session that queues QoS 1 messages while we are away
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=not persistent)
        if setup is not None:
            setup(self.client)  # TLS, credentials
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        for topic in self.topics:
            client.subscribe(topic, qos=1)

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def start(self) -> Watcher:
        self.client.connect_async("127.0.0.1", self.port, keepalive=10)
        self.client.reconnect_delay_set(1, 2)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, timeout=10, message="watcher subscription")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[Any]:
        return [json.loads(p) for p in self.on(topic) if p]

    def last(self, topic: str) -> bytes | None:
        values = self.on(topic)
        return values[-1] if values else None

    def last_json(self, topic: str) -> Any:
        value = self.last(topic)
        return json.loads(value) if value else None

    def wait(self, topic: str, predicate=lambda payload: True, timeout: float = 15.0) -> bytes:
        def found():
            for payload in reversed(self.on(topic)):
                if predicate(payload):
                    return [payload]  # a list, so an empty payload still counts as found
            return None
        return wait_for(found, timeout=timeout, message=f"a message on {topic}")[0]

    def wait_json(self, topic: str, predicate=lambda doc: True, timeout: float = 15.0) -> Any:
        def match(payload: bytes) -> bool:
            try:
                return bool(predicate(json.loads(payload)))
            except (ValueError, KeyError, TypeError):
                return False
        return json.loads(self.wait(topic, match, timeout))

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
