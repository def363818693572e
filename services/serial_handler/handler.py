"""SerialHandler: the serial handler's domain object (no Flask).

Owns one ``SerialLink`` per enabled board, the ``DeviceTable`` of the devices they feed, the
``EventPublisher`` behind ``GET /events`` and the ``ErrorLog`` behind ``GET /errors``. Board
messages arrive on the links' reader threads and become device states and events here.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from shared.commands import Command
from shared.config import Settings
from shared.device_table import Device, DeviceTable
from shared.error_log import ErrorLog
from shared.errors import NotFound
from shared.handler_core import HandlerCore, command_id
from shared.logs import clip, command_context
from shared.metrics import Metrics
from shared.sse import EventPublisher

from .commands import (
    OFFLINE,
    CommandError,
    board_command,
    build_command,
)
from .devices import (
    ALERT_DEVICES,
    MOTION_EVENTS,
    led_report,
    led_update,
    sensor_updates,
    window_update,
)
from .lines import Message, Rejection
from .link import SerialLink

log = logging.getLogger(__name__)

SERVICE = "serial_handler"
WAITING = "waiting for the board"
FRESH_TIMEOUT = 2.0
"""Longest wait for ``?fresh=1`` (the board answers a ``read`` within milliseconds when well)."""


class SerialHandler(HandlerCore):
    """Boards in, devices out. ``start()`` opens every board's link; ``stop()`` closes them."""

    where = "the serial handler"

    def __init__(self, settings: Settings, publisher: EventPublisher | None = None,
                 error_log: ErrorLog | None = None, metrics: Metrics | None = None) -> None:
        specs = tuple(d for d in settings.devices_of(SERVICE) if d.enabled)
        devices = DeviceTable(specs, source_fields=("board",), waiting=WAITING)
        super().__init__(SERVICE, settings, devices, publisher, error_log, metrics)
        self.links: dict[str, SerialLink] = {
            board.board_id: SerialLink(board, self._on_message, self._on_state,
                                       on_rejected=self._on_rejected, on_problem=self._on_problem)
            for board in settings.boards if board.enabled
        }
        for board in settings.boards:
            if not board.enabled:
                self.devices.set_source_online(board.board_id, False, "the board is disabled in the config")
        self._started = False
        self._install_metrics()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> SerialHandler:
        if not self._started:
            self._started = True
            for link in self.links.values():
                link.start()
        return self

    def stop(self) -> None:
        for link in self.links.values():
            link.stop()
        self.events.close()

    # ------------------------------------------------------------------ queries

    def fresh_view(self, device_id: str) -> dict[str, Any]:
        """Ask the board for a new reading (``read``), then the view; the cached view with
        ``fresh: false`` and the reason when the board cannot answer."""
        device = self.device(device_id)
        link = self.links.get(device.spec.board or "")
        error = None
        if link is None:
            error = "the device's board is not enabled"
        else:
            timeout = min(link.board.command_timeout, FRESH_TIMEOUT)
            try:
                link.request({"type": "read"}, timeout)
            except CommandError as exc:
                error = f"{exc.code}: {exc.message}"
        return self._fresh(device, error)

    def boards(self) -> list[dict[str, Any]]:
        return [self._board_view(link) for link in self.links.values()]

    def board(self, board_id: str) -> dict[str, Any]:
        return self._board_view(self._link(board_id))

    def health_checks(self) -> dict[str, tuple[bool, str]]:
        if not self.links:
            return {"boards": (True, "no serial boards configured")}
        return {f"board {link.board_id}": (link.online, "online" if link.online else str(link.reason))
                for link in self.links.values()}

    # ------------------------------------------------------------------ commands

    def command(self, device_id: str, request: Command) -> dict[str, Any]:
        """Carry out a device command; ``{"status": "success", "cmd_id", "result"?}`` or CommandError."""
        device = self.device(device_id)
        cmd_id = command_id(request)
        with command_context(cmd_id):
            command = build_command(device.spec.type, request.values)
            link = self.links.get(device.spec.board or "")
            if link is None:
                raise CommandError(OFFLINE, f"board {device.spec.board} of {device_id} is disabled in the config")
            timeout = request.timeout_s(link.board.command_timeout)
            log.info("command %s -> %s: %s", device_id, link.board_id, command)
            started = time.perf_counter()
            try:
                reply = link.request(command, timeout, cmd_id)
            except CommandError as exc:
                log.warning("command %s failed: %s %s", device_id, exc.code, exc.message)
                self._command_seconds.labels(link.board_id, exc.code).observe(time.perf_counter() - started)
                raise
            self._command_seconds.labels(link.board_id, "success").observe(time.perf_counter() - started)
            log.info("command %s acknowledged", device_id)
        self._apply_result(device, command, reply.get("result"))
        return {"status": "success", **reply}

    def board_command(self, board_id: str, request: Command) -> dict[str, Any]:
        """A raw protocol command to a board (``POST /boards/<id>/cmd``): the envelope's values are
        the protocol command's fields."""
        link = self._link(board_id)
        command = board_command(request.values)
        cmd_id = command_id(request)
        timeout = request.timeout_s(link.board.command_timeout)
        with command_context(cmd_id):
            log.info("board command %s: %s", board_id, clip(str(command)))
            reply = link.request(command, timeout, cmd_id)
        return {"status": "success", **reply}

    def _apply_result(self, device: Device, command: dict[str, Any], result: Any) -> None:
        """The ack's ``result`` is the board's effective state: show it now, not at the next line."""
        if not isinstance(result, dict):
            return
        if command["type"] == "led":
            self._update(device, led_update(result), time.time())
        elif command["type"] == "window":
            self._update(device, window_update(result), time.time())

    # ------------------------------------------------------------------ link callbacks (reader threads)

    def _on_message(self, link: SerialLink, message: Message) -> None:
        now = time.time()
        board = link.board_id
        self.devices.touch(board, now)
        kind = message.type
        if kind == "sensor":
            extra = {"board_ts": message.get("ts")} if message.get("ts") is not None else {}
            for device_type, props in sensor_updates(message).items():
                for device in self.devices.of_type(board, device_type):
                    self._update(device, props, now, **extra)
        elif kind == "window":
            for device in self.devices.of_type(board, "window"):
                self._update(device, window_update(message.fields), now)
        elif kind == "event":
            self._board_event(link, message, now)
        elif kind == "alert":
            self._alert(link, message)
        elif kind == "error" and message.id is None:
            self._record("BOARD_ERROR", f"board {board}: {message.get('error')}: {message.get('message', '')}",
                         "warning", board=board)
        if kind in ("hello", "status"):
            led = led_report(message.get("led"))  # the LED's real state, from boot on
            for device in self.devices.of_type(board, "led") if led else ():
                self._update(device, led, now)
        if kind == "hello" and message.id is None:
            log.info("board %s booted: fw %s, reset cause %s", board, message.get("fw"),
                     message.get("reset_cause"))

    def _board_event(self, link: SerialLink, message: Message, now: float) -> None:
        name = message.get("event")
        targets = self.devices.of_type(link.board_id, "motion") if name in MOTION_EVENTS else []
        if name in MOTION_EVENTS:
            for device in targets:
                self._update(device, {"motion": MOTION_EVENTS[name]}, now)
        # Events with no device of their own (a button) go to the board's first device.
        targets = targets or self.devices.of_source(link.board_id)[:1]
        for device in targets:
            self.events.publish("event", {"device_id": device.spec.device_id, "event": name,
                                          "data": message.get("data") or {}, "board": link.board_id})

    def _alert(self, link: SerialLink, message: Message) -> None:
        name = message.get("alert")
        device_type = message.get("sensor") if name == "sensor_failure" else ALERT_DEVICES.get(name)
        devices = self.devices.of_type(link.board_id, device_type) if device_type else []
        devices = devices or self.devices.of_source(link.board_id)[:1]
        data = {k: message.get(k) for k in ("active", "value", "threshold", "sensor", "message")
                if message.get(k) is not None}
        for device in devices:
            self.events.publish("event", {"device_id": device.spec.device_id, "event": name, "data": data,
                                          "board": link.board_id})
        if name == "sensor_failure" and message.get("active"):
            for device in devices:
                self._record("SENSOR_FAILURE", f"{device.spec.device_id}: {message.get('message') or name}",
                             "warning", device_id=device.spec.device_id, board=link.board_id)

    def _on_state(self, link: SerialLink, online: bool, reason: str | None) -> None:
        for device in self.devices.set_source_online(link.board_id, online, reason):
            self.events.publish("availability", {"device_id": device.spec.device_id, "online": online,
                                                 "reason": None if online else reason})

    def _on_rejected(self, link: SerialLink, rejection: Rejection) -> None:
        log.debug("board %s: rejected line (%s: %s) %r", link.board_id, rejection.reason, rejection.detail,
                  rejection.sample)

    def _on_problem(self, link: SerialLink, code: str, message: str) -> None:
        self._record(code, message, "error", board=link.board_id)

    # ------------------------------------------------------------------ helpers

    def _update(self, device: Device, props: dict[str, Any], now: float, **extra: Any) -> None:
        if not props:
            return
        state = self.devices.update(device, props, now)
        if state is not None:
            self.events.publish("state", {"device_id": device.spec.device_id, "state": state, **extra})

    def _link(self, board_id: str) -> SerialLink:
        link = self.links.get(board_id)
        if link is None:
            raise NotFound("UNKNOWN_BOARD", f"No board {board_id!r}.", known=list(self.links))
        return link

    def _board_view(self, link: SerialLink) -> dict[str, Any]:
        view = link.snapshot()
        view["devices"] = [d.spec.device_id for d in self.devices.of_source(link.board_id)]
        return view

    def _install_metrics(self) -> None:
        self._command_seconds = self.metrics.histogram(
            "serial_command_seconds", "Time from sending a command to its answer", ("board", "status"),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.metrics.registry.register(_BoardCollector(self))


class _BoardCollector:
    """Per-board counters read at scrape time: nothing is paid per line for metrics."""

    def __init__(self, handler: SerialHandler) -> None:
        self._handler = handler

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        ns = self._handler.metrics.namespace
        lines = CounterMetricFamily(f"{ns}_serial_lines", "Valid lines read", labels=["board"])
        rejected = CounterMetricFamily(f"{ns}_serial_rejected_lines", "Lines rejected", labels=["board", "reason"])
        lost = CounterMetricFamily(f"{ns}_serial_lost_lines", "Lines lost (sequence gaps)", labels=["board"])
        reconnects = CounterMetricFamily(f"{ns}_serial_reconnects", "Port reopens", labels=["board"])
        online = GaugeMetricFamily(f"{ns}_serial_board_online", "1 when the board is online", labels=["board"])
        for link in self._handler.links.values():
            c, board = link.counters, link.board_id
            lines.add_metric([board], c.lines_ok)
            for reason, count in list(c.rejected.items()):
                rejected.add_metric([board, reason], count)
            lost.add_metric([board], c.lost)
            reconnects.add_metric([board], c.reconnects)
            online.add_metric([board], 1.0 if link.online else 0.0)
        yield from (lines, rejected, lost, reconnects, online)
