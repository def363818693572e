"""The contract-aware MQTT link: paho-mqtt 2.x with one publishing path.

Rules this module keeps (each one a known paho-mqtt trap; docs/mqtt.md, "No lost messages"):

* the Last Will (``offline``, retained) is set before the first connect;
* ``connect_async`` + ``loop_start`` + automatic reconnect with backoff, so a broker that
  is down at start or goes away later is simply waited for;
* subscriptions are made in ``on_connect``, every time (they do not survive a reconnect);
* callbacks never block and never publish: they record what happened and wake the sender;
* exactly one thread (the sender) calls ``publish``, and it holds no application lock
  while doing so (paho issues #354, #346, #226 are deadlocks of that kind);
* QoS >= 1 messages go through the persistent :class:`~bridge.outbox.Outbox` and are
  deleted only on ``on_publish`` (the PUBACK), never on paho's return code (paho #440).

Two kinds of publishes: *durable* ones (events, errors, responses, state) go through the
outbox; *live* ones (status, discovery, meta) are only worth sending while connected,
because they are recomputed and sent again after every CONNACK anyway.
"""
from __future__ import annotations

import logging
import re
import socket
import ssl
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bridge.outbox import Outbox
from shared import jsonio
from shared.config import MqttSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingMessage:
    topic: str
    payload: bytes
    retain: bool


def encode(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return jsonio.dumps_bytes(payload)


_PUBACK_REASON = ReasonCode(PacketTypes.PUBACK)  # "Success": all MQTT 3.1.1 can say
_PUBACK_PROPERTIES = Properties(PacketTypes.PUBACK)  # none in 3.1.1; never read by the bridge


class LeanPubackClient(paho.Client):
    """paho's client, but an MQTT 3.1.1 PUBACK costs two bytes' decoding, not two objects.

    paho (2.1, 2.2) builds a new ``ReasonCode`` and a new ``Properties`` for every PUBACK even on
    MQTT 3.1.1, where a PUBACK has neither; ``Properties.__init__`` fills a table of every MQTT 5
    property each time. At 5,000 devices and 1,000 readings/s (2,000 QoS 1 publishes/s) that was
    the bridge's top cost: 24 % of its Python time in py-spy, ahead of publishing itself
    (bench e2e_scale_5000_devices; docs/architecture.md, "Scale"). Everything else, MQTT 5 and
    PUBCOMP included, goes through paho's own code.
    """

    def _handle_pubackcomp(self, cmd: Any) -> paho.MQTTErrorCode:
        packet = self._in_packet["packet"]
        if cmd != "PUBACK" or self._protocol != paho.MQTTv311 or len(packet) != 2:
            return super()._handle_pubackcomp(cmd)
        mid, = struct.unpack("!H", packet)
        with self._out_message_mutex:
            if mid in self._out_messages:  # confirmed once only, as paho does
                return self._do_on_publish(mid, _PUBACK_REASON, _PUBACK_PROPERTIES)
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS


def _no_delay(client: paho.Client) -> None:
    """Small packets go out at once. Without TCP_NODELAY (paho does not set it) a command's
    response waits behind its own PUBACK for the broker's delayed ACK: ~40 ms per hop,
    measured in bench/scenarios/mqtt_bridge.py."""
    sock = client.socket()
    try:
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as exc:  # not TCP (a websocket or a unix socket): nothing to tune
        log.debug("TCP_NODELAY not set: %s", exc)


def _ssl_words(exc: OSError) -> str:
    """OpenSSL's sentence without its wrapping: "[SSL: X] words (_ssl.c:1006)" -> "words"."""
    text = exc.strerror or str(exc)
    return re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", text) or type(exc).__name__


def describe_connect_failure(exc: BaseException | None, mqtt: MqttSettings) -> str:
    """Why a connection attempt failed, in words an operator can act on (the setting to check).

    paho reports a failed attempt only through ``on_connect_fail``, without the exception; the
    link takes it from ``sys.exc_info()`` there (paho calls it inside its ``except OSError``)."""
    where = f"{mqtt.host}:{mqtt.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        ca = mqtt.tls.ca_file if mqtt.tls is not None else None
        trusted = f"MQTT_TLS_CA={ca}" if ca else "MQTT_TLS_CA not set: the system's certificate authorities"
        return f"TLS handshake failed: {_ssl_words(exc)} ({trusted})"
    if mqtt.tls is not None and isinstance(exc, (ConnectionResetError, ConnectionAbortedError, ssl.SSLEOFError,
                                                 ssl.SSLZeroReturnError)):
        # A plain MQTT listener drops a TLS ClientHello without a word: a reset or an EOF during the
        # handshake, whichever the timing gives; one wording, so the retries do not look like news.
        return f"TLS handshake failed: the broker closed the connection (is {where} a TLS port?)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {_ssl_words(exc)} (is {where} a TLS port?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name {mqtt.host!r} ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "no answer (connection timed out)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) if exc is not None and str(exc) else "connection failed"


def describe_early_close(reason_code: Any, mqtt: MqttSettings) -> str:
    """The broker hung up before its CONNACK. A TLS listener does that to plain MQTT."""
    hint = f"; is {mqtt.host}:{mqtt.port} a TLS port? (MQTT_TLS is off)" if mqtt.tls is None else ""
    return f"the broker closed the connection before accepting it ({reason_code}){hint}"


def describe_refusal(reason_code: Any) -> str:
    # 134 "Bad user name or password", 135 "Not authorized" (MQTT 5 codes; paho maps 3.1.1's 4 and 5 onto them)
    hint = " (check MQTT_USERNAME and MQTT_PASSWORD)" if getattr(reason_code, "value", None) in (134, 135) else ""
    return f"the broker refused the connection: {reason_code}{hint}"


class LinkState:
    """The broker link as an operator sees it: up, or down with the reason of the last failure.

    Only a change (up, down, a new reason) is worth a log line and a new health report; the same
    failure again is a quiet retry (paho's backoff paces them). Changed from paho's thread, read
    from any (health report, stats)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.up = False
        self.reason: str | None = "connecting (no answer from the broker yet)"
        self.since = time.time()
        self.failures = 0  # failed attempts since the link was last up

    def went_up(self) -> tuple[float, int]:
        """Returns how long it was down and how many attempts failed meanwhile."""
        with self._lock:
            down_s, failures = time.time() - self.since, self.failures
            self.up, self.reason, self.since, self.failures = True, None, time.time(), 0
            return down_s, failures

    def failed(self, reason: str) -> bool:
        """Record a failure; True when it changes what the link says (worth a line)."""
        with self._lock:
            self.failures += 1
            if not self.up and reason == self.reason:
                return False
            self.up, self.reason, self.since = False, reason, time.time()
            return True

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {"up": self.up, "reason": self.reason, "since": self.since, "failed_attempts": self.failures}


class MqttLink:
    """One paho client, one sender thread, one outbox."""

    def __init__(self, mqtt: MqttSettings, client_id: str, status_topic: str, outbox: Outbox,
                 on_message: Callable[[IncomingMessage], None],
                 on_connection: Callable[[bool], None],
                 subscriptions: Callable[[], list[str]],
                 window: int = 500, reconnect: tuple[int, int] = (1, 10),
                 on_link_change: Callable[[], None] | None = None) -> None:
        self.mqtt = mqtt
        self.client_id = client_id
        self.status_topic = status_topic
        self.outbox = outbox
        self._on_message_cb = on_message
        self._on_connection_cb = on_connection
        self._on_link_change = on_link_change or (lambda: None)
        self._subscriptions = subscriptions
        self.window = window
        self._reconnect = reconnect
        self.connected = False
        self.connects = 0
        self.state = LinkState()
        self._refused = False  # this attempt's CONNACK said no: its disconnect must not replace the reason
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._live: deque[tuple[str, bytes, int, bool]] = deque()
        # Held while "connected" turns true and while the sender drops live messages for want of a
        # connection: a message queued because of the CONNACK (the status "online") is never
        # dropped by a sender that looked at the flag a moment before the CONNACK.
        self._live_lock = threading.Lock()
        self._acked: deque[int] = deque()          # mids from on_publish (paho thread -> sender)
        self._inflight: dict[int, int] = {}       # mid -> outbox seq (sender thread only)
        self._live_inflight: set[int] = set()     # mids of live QoS>=1 messages (sender only)
        self._last_seq = 0                         # highest outbox seq handed to paho
        self.live_dropped = 0
        self.published = 0
        self._client = self._build_client()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt sender", daemon=True)

    def _build_client(self) -> paho.Client:
        client = LeanPubackClient(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv311,
                                  clean_session=True)
        if self.mqtt.username:
            client.username_pw_set(self.mqtt.username, self.mqtt.password)
        if self.mqtt.tls is not None:
            tls = self.mqtt.tls
            client.tls_set(ca_certs=tls.ca_file, certfile=tls.certfile, keyfile=tls.keyfile)
            if tls.insecure:
                client.tls_insecure_set(True)  # tests with self-signed certs only
        # The Last Will before the first connect: a killed bridge leaves "offline" retained.
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(*self._reconnect)
        # Our own window (``window`` messages handed over and not yet acked) decides what paho
        # holds, so paho's own limit is off (0): with a limit, paho walks every in-flight message
        # on each PUBACK (``_update_inflight``), O(window) per message, the bridge's top cost at
        # a window of 500 in the profile. Set before connecting, as paho requires.
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._client.connect_async(self.mqtt.host, self.mqtt.port, keepalive=self.mqtt.keepalive)
        self._client.loop_start()
        self._sender.start()
        log.info("MQTT client %s connecting to %s:%s%s", self.client_id, self.mqtt.host, self.mqtt.port,
                 " (TLS)" if self.mqtt.tls else "")

    def shutdown(self, deadline_s: float = 5.0) -> bool:
        """Publish ``offline``, flush within the deadline, disconnect cleanly.

        Returns True when everything pending reached the broker.
        """
        self.publish_live(self.status_topic, "offline", qos=1, retain=True)
        end = time.monotonic() + deadline_s
        flushed = False
        while time.monotonic() < end:
            if self.connected and not self._live and not self._live_inflight and not self._inflight \
                    and len(self.outbox) == 0:
                flushed = True
                break
            self._wake.set()  # disconnected: keep waiting, the broker may come back within the deadline
            self._stop.wait(0.02)
        self._stop.set()
        self._wake.set()
        self._sender.join(5)
        connected = self.connected
        try:
            self._client.disconnect()
        finally:
            # Away from the broker, paho's network thread (a daemon) sleeps between reconnect
            # attempts and sees the disconnect only when it wakes: joining it would add up to a
            # second to a stop that must fit in its deadline, so it is left to end by itself.
            if connected:
                self._client.loop_stop()
        left = len(self.outbox)
        self.outbox.close()
        log.info("MQTT client stopped (%s; %d message(s) kept in the outbox for the next start)",
                 "flushed" if flushed else "deadline reached", left)
        return flushed

    # ------------------------------------------------------------------ publishing (any thread)

    def publish_durable(self, topic: str, payload: Any, qos: int, retain: bool, kind: str) -> None:
        """Events, errors, responses and state. QoS 0 cannot be confirmed, so it is live."""
        if qos == 0:
            self.publish_live(topic, payload, qos, retain)
            return
        self.outbox.put(topic, encode(payload), qos, retain, kind)
        self._wake.set()

    def publish_live(self, topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        """Sent only while connected; what cannot be sent now is dropped (and re-sent by its
        owner after the next CONNACK)."""
        self._live.append((topic, encode(payload), qos, retain))
        self._wake.set()

    # ------------------------------------------------------------------ paho callbacks (paho thread)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._refused = True
            self._link_failed(describe_refusal(reason_code))
            return
        _no_delay(client)
        for topic in self._subscriptions():
            client.subscribe(topic, qos=1)
        with self._live_lock:
            self.connected = True
        self.outbox.set_connected(True)
        self.connects += 1
        down_s, failures = self.state.went_up()
        after = f", after {down_s:.0f} s and {failures} failed attempt(s)" if failures else ""
        log.info("broker link up: connected to %s:%s (connection #%d%s)", self.mqtt.host, self.mqtt.port,
                 self.connects, after)
        self._wake.set()
        self._on_connection_cb(True)
        self._on_link_change()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` and passes no exception: the reason is
        # the exception being handled (a TLS handshake, a refused TCP connect, a DNS failure).
        self._link_failed(describe_connect_failure(sys.exc_info()[1], self.mqtt))

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        was = self.connected
        self.connected = False
        self.outbox.set_connected(False)
        refused, self._refused = self._refused, False
        if was:
            self._link_failed(f"connection lost ({reason_code})", lost=True)
        elif not refused:  # the refusal already said why
            self._link_failed(describe_early_close(reason_code, self.mqtt))
        self._on_connection_cb(False)

    def _link_failed(self, reason: str, lost: bool = False) -> None:
        """One line per change of the link's state; retries of the same failure stay quiet."""
        if self._stop.is_set():  # stopping: paho may still be retrying, nobody needs to hear it
            return
        where = f"{self.mqtt.host}:{self.mqtt.port}"
        if not self.state.failed(reason):
            log.debug("broker link %s: still down (%s)", where, reason)
            return
        if lost:
            log.warning("broker link %s lost: %s; reconnecting", where, reason)
        else:
            log.error("broker link %s down: %s; retrying with backoff (%d-%d s)", where, reason, *self._reconnect)
        self._on_link_change()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._on_message_cb(IncomingMessage(message.topic, bytes(message.payload), bool(message.retain)))

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self._acked.append(mid)
        self._wake.set()

    # ------------------------------------------------------------------ the sender (its own thread)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._settle_acks()
                if not self.connected:
                    self.outbox.flush()  # on disk now, sent after the next CONNACK
                    with self._live_lock:
                        if not self.connected:  # still: what is queued now is stale when we connect
                            self.live_dropped += len(self._live)
                            self._live.clear()
                    continue
                self._send_live()
                self._send_durable()
            except Exception:  # noqa: BLE001 - the sender must outlive any single bad message
                log.exception("MQTT sender failed; continuing")
                self._stop.wait(0.2)
        self._settle_acks()

    def _settle_acks(self) -> None:
        done = []
        while self._acked:
            mid = self._acked.popleft()
            seq = self._inflight.pop(mid, None)
            if seq is not None:
                done.append(seq)
            else:
                self._live_inflight.discard(mid)
        self.outbox.ack(done)

    def _send_live(self) -> None:
        while self._live and self.connected:
            topic, payload, qos, retain = self._live.popleft()
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            self.published += 1
            if qos > 0:
                self._live_inflight.add(info.mid)

    def _send_durable(self) -> None:
        room = self.window - len(self._inflight)
        if room <= 0:
            return
        for message in self.outbox.pending(after=self._last_seq, limit=room):
            try:
                info = self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
            except ValueError as exc:  # a topic or payload the protocol cannot carry: never retried
                log.error("dropping an unpublishable message on %.200s: %s", message.topic, exc)
                self.outbox.ack([message.seq])
                self._last_seq = message.seq
                continue
            # Even when the link dropped a moment ago paho keeps QoS>=1 messages and re-sends
            # them after the reconnect, so the message counts as handed over either way.
            self._inflight[info.mid] = message.seq
            self._last_seq = message.seq
            self.published += 1

    def stats(self) -> dict[str, Any]:
        link = self.state.report()
        return {"connected": self.connected, "connects": self.connects, "published": self.published,
                "inflight": len(self._inflight), "live_dropped": self.live_dropped,
                "broker_link": "up" if link["up"] else "down", "broker_link_reason": link["reason"],
                "broker_link_failed_attempts": link["failed_attempts"], **self.outbox.stats()}
