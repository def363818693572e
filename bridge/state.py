"""The push path: aggregator events -> device state, events and errors on MQTT.

* Follows the aggregator's ``/events`` (``shared.sse.EventFollower``); after a gap, a new
  stream or a start it resynchronises from ``GET /devices?include=state``.
* Keeps the id of the last event whose MQTT messages are in the outbox in
  ``DATA_DIR/mqtt_bridge_positions.json`` (shared/stream_positions.py), and resumes from it
  with ``Last-Event-ID`` at the next start: a kill -9 loses no event the aggregator still holds.
* Publishes each device's full ``state`` as changes arrive, and ``state/<property>`` only
  for the properties whose value changed; every ``update_interval`` (and after every
  CONNACK) it republishes everything as a heartbeat.
* Availability goes into the state (``online``) which Home Assistant also reads.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from bridge.aggregator import AggregatorUnavailable
from bridge.context import BridgeContext, DeviceRecord, Feature, now_iso
from shared.device_table import same_value
from shared.sse import Event, EventFollower
from shared.stream_positions import StreamPositions
from shared.topics import global_id

log = logging.getLogger(__name__)

POSITIONS_FILE = "mqtt_bridge_positions.json"
STREAM = "state_aggregator"
"""The one stream the bridge follows, as named in its positions file."""
BROKER_WAIT_S = 2.0
"""A start that resumes from a saved position follows the stream once the broker has answered (on
loopback or a LAN, within milliseconds), or after this long without it. What the aggregator
replays then goes out as while connected, every state change kept; with the broker away the
outbox keeps only the newest state per topic. Nothing is missed meanwhile: the aggregator holds
at least 60 s for the replay."""


class StateFeature(Feature):
    def __init__(self, ctx: BridgeContext, resync_backoff: tuple[float, float] = (0.5, 5.0)) -> None:
        super().__init__(ctx)
        self._sent_props: dict[str, dict[str, Any]] = {}
        # When the stream last told us about each device (time.monotonic() at receipt): a pull
        # that started before that is older news for the device and must not overwrite it.
        self._heard_at: dict[str, float] = {}
        self._resync_wanted = threading.Event()
        self._stop = threading.Event()
        self._backoff = resync_backoff
        self._handed: str | None = None  # the last event whose MQTT messages went to the outbox
        self._broker_seen = threading.Event()
        self.positions = StreamPositions(Path(ctx.settings.data_dir) / POSITIONS_FILE, self._collect_position,
                                         name="bridge stream position")
        self._follower = EventFollower(ctx.aggregator.events_url, on_events=self._on_events, on_gap=self._on_gap,
                                       on_state=self._on_stream, name="aggregator",
                                       instance_id=ctx.aggregator.instance_id,
                                       last_event_id=self.positions.get(STREAM))
        self._threads = [threading.Thread(target=self._resync_loop, name="bridge resync", daemon=True),
                         threading.Thread(target=self._heartbeat_loop, name="bridge heartbeat", daemon=True),
                         threading.Thread(target=self._follow, name="bridge follow", daemon=True)]
        for device in ctx.settings.devices:
            ctx.devices[device.device_id] = DeviceRecord(device.device_id, device.type, device.name, device.enabled)
        bus = ctx.bus
        bus.on("aggregator_events", self.handle_events)
        bus.on("snapshot", self.handle_snapshot)
        bus.on("heartbeat", self.republish_all)
        bus.on("mqtt_connected", self.republish_all)
        bus.on("mqtt_connected", self._broker_seen.set)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._resync_wanted.set()
        self.positions.start()

    def stop(self) -> None:
        self._stop.set()
        self._resync_wanted.set()
        self._broker_seen.set()
        self._follower.stop()
        self.positions.stop(final=False)  # the final save comes once the bus has drained

    def save_position(self) -> bool:
        """Save the position of the last event handed to the outbox (at stop, after the bus
        has handled what it held, before the outbox closes)."""
        return self.positions.save()

    def _collect_position(self) -> dict[str, str]:
        """Runs in the positions' writer thread. The id is taken before the flush: every message
        of that event was put before the id was noted, so the flush has it on disk first."""
        handed = self._handed
        if handed is None:
            return {}
        outbox = self.ctx.link.outbox
        outbox.flush()
        problem = getattr(outbox, "problem", None)  # its file refused the write: the rows are in memory only
        if problem is not None:
            raise RuntimeError(f"the outbox holds its messages in memory only ({problem})")
        return {STREAM: handed}

    def _follow(self) -> None:
        # Only a resume waits for the broker: it has a replay to publish, and nothing is missed
        # meanwhile (the aggregator holds it). A first start has nothing to replay and follows at
        # once, so no event goes by between "online" and the stream's first connection.
        resuming = self.positions.get(STREAM) is not None
        if resuming and not self._broker_seen.wait(BROKER_WAIT_S):
            log.info("the MQTT broker has not answered within %.0f s; following the aggregator anyway", BROKER_WAIT_S)
        if not self._stop.is_set():
            self._follower.start()

    # -- threads that only emit onto the bus

    def _on_events(self, events: list[Event]) -> None:
        # One bus item per read from the stream, not per event: at thousands of readings a
        # second the hand-over between threads is what costs, not the handling.
        self.ctx.bus.emit("aggregator_events", events=events, received=time.monotonic())

    def _on_gap(self, reason: str) -> None:
        self._resync_wanted.set()

    def _on_stream(self, connected: bool) -> None:
        # A new stream may have missed anything while it was down: pull. A lost stream is
        # checked with a pull too; if that fails the instance is no longer "online".
        self._resync_wanted.set()

    def _resync_loop(self) -> None:
        failures = 0
        logged: str | None = None  # what the log last said about an outage: said once, not per retry
        while not self._stop.is_set():
            self._resync_wanted.wait()
            if self._stop.is_set():
                return
            self._resync_wanted.clear()
            pulled_at = time.monotonic()
            try:
                devices = self.ctx.aggregator.devices()
            except AggregatorUnavailable as exc:
                failures += 1
                # A refusal names whose aggregator answered, so a new one is news; connection
                # errors differ in detail on every retry, so only the first is.
                problem = str(exc) if exc.foreign else "unreachable"
                if problem != logged:
                    log.warning("aggregator unreachable: %s", exc)
                    logged = problem
                self.ctx.bus.emit("aggregator_ready", ready=False)
                low, high = self._backoff
                self._stop.wait(min(high, low * 2 ** min(failures - 1, 8)))
                self._resync_wanted.set()
                continue
            if failures:
                log.info("aggregator reachable again")
            failures, logged = 0, None
            self.ctx.bus.emit("snapshot", devices=devices, pulled_at=pulled_at)

    def _heartbeat_loop(self) -> None:
        interval = max(1, self.ctx.settings.update_interval)
        while not self._stop.wait(interval):
            self.ctx.bus.emit("heartbeat")

    # -- bus handlers (bus thread)

    def handle_snapshot(self, devices: list[dict[str, Any]], pulled_at: float | None = None) -> None:
        for item in devices:
            if not isinstance(item, dict) or not isinstance(item.get("device_id"), str):
                continue
            if pulled_at is not None and self._heard_at.get(item["device_id"], float("-inf")) >= pulled_at:
                continue  # the stream told us about it after the pull began: that is the newer news
            record = self._record(item["device_id"])
            for key in ("type", "name", "reason", "last_seen"):
                if key in item:
                    setattr(record, key, item[key])
            if isinstance(item.get("enabled"), bool):
                record.enabled = item["enabled"]
            online = item.get("online") if isinstance(item.get("online"), bool) else record.online
            state = item.get("state") if isinstance(item.get("state"), dict) else {}
            self._apply(record, state, online, item.get("last_seen"))
        self.ctx.bus.emit("aggregator_ready", ready=True)
        self.ctx.bus.emit("devices_changed")

    def handle_events(self, events: list[Event], received: float | None = None) -> None:
        for event in events:
            device_id = event.data.get("device_id")
            if received is not None and isinstance(device_id, str) and event.kind in ("state", "availability"):
                self._heard_at[device_id] = received
            self.handle_event(event)
        if events and events[-1].id:
            self._handed = events[-1].id  # its messages (if any) are in the outbox's buffer now

    def handle_event(self, event: Event) -> None:
        data = event.data
        device_id = data.get("device_id")
        if event.kind == "state" and isinstance(device_id, str) and isinstance(data.get("state"), dict):
            self._apply(self._record(device_id), data["state"], None, data.get("timestamp"))
        elif event.kind == "availability" and isinstance(device_id, str):
            record = self._record(device_id)
            record.reason = data.get("reason")
            self._apply(record, {}, bool(data.get("online")), None)
            self.ctx.bus.emit("devices_changed")
        elif event.kind == "event" and isinstance(device_id, str):
            timestamp = data.get("timestamp") or now_iso()
            payload = {"timestamp": timestamp, "event": data.get("event"), "data": data.get("data") or {}}
            self.ctx.publish_message(self.ctx.topics.events(device_id), payload)
            self.ctx.publish_message(self.ctx.topics.global_events, {
                "source": global_id(self.ctx.settings.instance_id, device_id), "event": data.get("event"),
                "data": data.get("data") or {}, "timestamp": timestamp})
        elif event.kind == "error":
            payload = {"timestamp": data.get("timestamp") or now_iso(), "error_code": data.get("error_code", "ERROR"),
                       "message": data.get("message", ""), "severity": data.get("severity", "error")}
            if data.get("source"):
                payload["source"] = data["source"]
            target = device_id if isinstance(device_id, str) else None
            self.ctx.publish_message(self.ctx.topics.error(target), payload)

    def republish_all(self) -> None:
        for record in self.ctx.devices.values():
            if record.state or record.online is not None:
                self._publish(record, force=True)

    # -- state

    def _record(self, device_id: str) -> DeviceRecord:
        record = self.ctx.devices.get(device_id)
        if record is None:
            record = self.ctx.devices[device_id] = DeviceRecord(device_id)
        return record

    def _apply(self, record: DeviceRecord, changes: dict[str, Any], online: bool | None,
               last_seen: str | None) -> None:
        record.state.update(changes)
        if online is not None:
            record.online = online
        if last_seen:
            record.last_seen = last_seen
        self._publish(record, force=False)

    def _publish(self, record: DeviceRecord, force: bool) -> None:
        topics = self.ctx.topics
        full = dict(record.state)
        if record.online is not None:
            full["online"] = record.online
        sent = self._sent_props.setdefault(record.device_id, {})
        changed = {k: v for k, v in full.items() if force or k not in sent or not same_value(sent[k], v)}
        if not changed:
            return
        self.ctx.publish_state(topics.state(record.device_id),
                               {"timestamp": now_iso(), "device_id": record.device_id, "state": full})
        for prop, value in changed.items():
            self.ctx.publish_state(topics.state_property(record.device_id, prop), value)
        sent.update(changed)
        self.ctx.bus.emit("device_state", device_id=record.device_id)
