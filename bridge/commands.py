"""Everything that arrives on a subscribed topic: contract commands (``cmd``, ``get``,
``groups/<g>/cmd``), meta requests, Home Assistant's command topics and its birth message.

Bad input never crashes and is never dropped silently: it is answered on ``cmd/response``
when the payload carries an ``id``, on an ``error`` topic otherwise, and logged once.
Commands run on a small pool (a round trip to a board takes milliseconds to seconds) so
the bus is never blocked by one.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from bridge.client import IncomingMessage
from bridge.context import BridgeContext, Feature, now_iso
from bridge.ha_payloads import HaCommandError, translate_ha_command
from bridge.recent_commands import RecentCommands
from shared.commands import (
    DEVICE_DISABLED,
    INVALID_PAYLOAD,
    MAX_PAYLOAD,
    PAYLOAD_TOO_LARGE,
    UNKNOWN_DEVICE,
    Command,
    CommandError,
    decode_payload,
    parse_command,
    peek_id,
)
from shared.logs import clip, command_context, excerpt

log = logging.getLogger(__name__)

ID_LEVEL = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a device or group id may look like (the instance schema's ``id``): only a topic level of
this shape is echoed into a response topic for a target we do not know."""


class AnswerBudget:
    """A token bucket: at most ``burst`` answers at once, refilled at ``rate`` per second. It keeps
    a stream of commands to made-up ids from turning the bridge into a publisher of as many
    responses (docs/mqtt.md, "Commands")."""

    def __init__(self, rate: float = 5.0, burst: float = 20.0, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()
        self.refused = 0

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.refused += 1
        return False


def contract_command(payload: bytes) -> Command:
    """A ``cmd`` payload -> Command (shared/commands.py's envelope), or CommandError. On MQTT a
    command must set something: ``get`` is how to ask for the current state."""
    command = parse_command(decode_payload(payload))
    if not command.values:
        raise CommandError(INVALID_PAYLOAD, "no values to set", field="values")
    return command


class CommandFeature(Feature):
    def __init__(self, ctx: BridgeContext, workers: int = 8) -> None:
        super().__init__(ctx)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bridge cmd")
        self._pending: set[Future[None]] = set()  # submitted, not finished (what stop() waits for)
        self._pending_lock = threading.Lock()
        self.rejected = 0
        self.recent = RecentCommands()  # idempotency by id: copies of a command are not run again
        self.unknown_answers = AnswerBudget()  # cmd/response to targets we do not know (bus thread only)
        ctx.bus.on("mqtt_message", self.handle)

    def stop(self, timeout: float | None = None) -> int:
        """Take no more commands and give the submitted ones up to ``timeout`` s (None: as long
        as they take) to publish their responses. Returns how many were still running then:
        abandoned, their senders get no response (a command may wait up to a minute for a
        board, more than a stop may take)."""
        self._pool.shutdown(wait=False, cancel_futures=False)
        with self._pending_lock:
            pending = list(self._pending)
        _, running = wait(pending, timeout)
        if running:
            log.warning("stopping: %d command(s) still waiting for the aggregator get no response",
                        len(running))
        return len(running)

    def _submit(self, kind: str, target: str, command: Command) -> None:
        if command.cmd_id is not None:
            self.recent.claim((kind, target, command.cmd_id))  # bus thread: nobody claimed it since _copy
        future = self._pool.submit(self._run, kind, target, command)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._finished)  # at once when it is already done

    def _finished(self, future: Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    # -- dispatch (bus thread)

    def handle(self, message: IncomingMessage) -> None:
        parsed = self.ctx.topics.parse(message.topic)
        if parsed.kind in ("own_publication",):
            return
        if parsed.kind == "ha_status":
            if message.payload.strip() == b"online":
                self.ctx.bus.emit("ha_online")
            return
        if message.retain and parsed.kind in ("device_cmd", "group_cmd", "ha_command"):
            # A retained command would be carried out again at every reconnect: refuse it.
            self._reject(message, parsed.device_id, "RETAINED_COMMAND",
                         "retained commands are not carried out (publish commands without retain)")
            return
        try:
            if parsed.problem:
                raise CommandError("INVALID_TOPIC", f"{clip(message.topic)}: {clip(parsed.problem)}")
            if parsed.kind == "device_cmd":
                self._device_cmd(parsed.device_id, message.payload)
            elif parsed.kind == "device_get":
                self._device_get(parsed.device_id, message.payload)
            elif parsed.kind == "group_cmd":
                self._group_cmd(parsed.group_id, message.payload)
            elif parsed.kind == "meta_request":
                decode_payload(message.payload, allow_empty=True)
                if parsed.request not in ("devices_list", "info"):
                    raise CommandError("UNKNOWN_REQUEST", f"meta request {excerpt(parsed.request)} is not one of "
                                                          "devices_list, info")
                self.ctx.bus.emit("meta_request", request=parsed.request)
            elif parsed.kind == "ha_command":
                self._ha_command(parsed.device_id, parsed.command, message.payload)
            else:
                raise CommandError("INVALID_TOPIC", f"{clip(message.topic)}: {clip(str(parsed.problem))}")
        except CommandError as exc:
            self._reject(message, parsed.device_id, exc.code, exc.message, group_id=parsed.group_id)

    def _reject(self, message: IncomingMessage, device_id: str | None, code: str, text: str,
                group_id: str | None = None) -> None:
        self.rejected += 1
        cmd_id = peek_id(message.payload)
        # A command with an id to a target we do not know is answered on the response topic of
        # the topic it came in on, while the budget lasts.
        unknown = cmd_id is not None and code in (UNKNOWN_DEVICE, "UNKNOWN_GROUP")
        over_budget = unknown and not self.unknown_answers.take()
        with command_context(cmd_id):
            log.warning("refused %s: %s: %s%s", clip(message.topic), code, clip(text, 300),
                        " (not answered: over the limit of answers to unknown targets)" if over_budget else "")
        if over_budget:
            return
        if cmd_id is not None and (device_id in self.ctx.known_device_ids()
                                   or (code == UNKNOWN_DEVICE and ID_LEVEL.fullmatch(device_id or ""))):
            self._respond(device_id, cmd_id, False, code, text, None, None)
        elif cmd_id is not None and group_id is not None and (
                self._group_known(group_id) or (code == "UNKNOWN_GROUP" and ID_LEVEL.fullmatch(group_id))):
            self._respond_group(group_id, cmd_id, False, code, text, None, None)
        else:
            detail = f"{text} (topic {clip(message.topic)}" + (f", command {cmd_id})" if cmd_id else ")")
            self.ctx.publish_error(device_id, code, detail)

    # -- commands

    def _check_device(self, device_id: str) -> None:
        if device_id not in self.ctx.known_device_ids():
            known = ", ".join(sorted(self.ctx.known_device_ids()))
            raise CommandError(UNKNOWN_DEVICE, f"unknown device {excerpt(device_id, 80)} (known: {known})")
        if not self.ctx.settings.device(device_id).enabled:
            raise CommandError(DEVICE_DISABLED, f"device {device_id!r} is disabled in the instance config")

    def _group_known(self, group_id: str) -> bool:
        return any(g.group_id == group_id for g in self.ctx.settings.groups)

    def _copy(self, kind: str, target: str, payload: bytes) -> bool:
        """True when this is a copy of a command in flight or answered within the window: it is
        neither carried out nor answered again. Looked up before the command is read, so a copy
        that arrives after the first one went stale is not refused as STALE_COMMAND either."""
        cmd_id = peek_id(payload)
        if cmd_id is None:
            return False
        seen = self.recent.seen((kind, target, cmd_id))
        if seen is not None:
            with command_context(cmd_id):
                log.info("%s %s command %s is a copy of one %s: not carried out or answered again",
                         kind, target, clip(cmd_id, 80), seen)
        return seen is not None

    def _device_cmd(self, device_id: str, payload: bytes) -> None:
        self._check_device(device_id)
        if self._copy("device", device_id, payload):
            return
        command = contract_command(payload)
        self._submit("device", device_id, command)

    def _group_cmd(self, group_id: str, payload: bytes) -> None:
        if not self._group_known(group_id):
            known = ", ".join(g.group_id for g in self.ctx.settings.groups)
            raise CommandError("UNKNOWN_GROUP", f"unknown group {excerpt(group_id, 80)} (known: {known})")
        if self._copy("group", group_id, payload):
            return
        command = contract_command(payload)
        self._submit("group", group_id, command)

    def _ha_command(self, device_id: str, which: str, payload: bytes) -> None:
        self._check_device(device_id)
        if len(payload) > MAX_PAYLOAD:
            raise CommandError(PAYLOAD_TOO_LARGE, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD} bytes")
        try:
            values = translate_ha_command(self.ctx.settings.device(device_id).type, which, payload)
        except HaCommandError as exc:
            raise CommandError(INVALID_PAYLOAD, clip(str(exc))) from None
        self._submit("device", device_id, Command(values))

    def _run(self, kind: str, target: str, command: Command) -> None:
        """Pool thread: one round trip through the aggregator, then the answer."""
        try:
            self._carry_out(kind, target, command)
        finally:
            if command.cmd_id is not None:
                self.recent.answered((kind, target, command.cmd_id))

    def _carry_out(self, kind: str, target: str, command: Command) -> None:
        with command_context(command.cmd_id):
            log.info("%s %s command %s", kind, target, clip(json.dumps(command.values)))
            outcome = self.ctx.aggregator.command(kind, target, command.values, command.cmd_id, command.timeout_ms)
            duration_ms = round((time.time() - command.received) * 1000, 1)
            if outcome.ok:
                log.info("%s %s command done in %.1f ms", kind, target, duration_ms)
            else:
                log.warning("%s %s command failed: %s: %s", kind, target, clip(str(outcome.error), 80),
                            clip(str(outcome.message), 300))
            result = outcome.body if outcome.ok else (outcome.body or None)
            if command.cmd_id is not None:
                respond = self._respond if kind == "device" else self._respond_group
                respond(target, command.cmd_id, outcome.ok, outcome.error, outcome.message, duration_ms, result)
            elif not outcome.ok:
                device = target if kind == "device" else None
                self.ctx.publish_error(device, outcome.error or "COMMAND_FAILED",
                                       f"{kind} {target} command {clip(json.dumps(command.values), 120)} failed: "
                                       f"{clip(str(outcome.message), 300)}")

    def _response(self, cmd_id: str, ok: bool, code: str | None, text: str | None, duration_ms: float | None,
                  result: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"cmd_id": cmd_id, "status": "success" if ok else "error", "timestamp": now_iso()}
        if not ok:
            payload["error"] = code
            payload["message"] = text
        if duration_ms is not None:
            payload["duration_ms"] = duration_ms
        if result:
            payload["result"] = result
        return payload

    def _respond(self, device_id: str, cmd_id: str, ok: bool, code: str | None, text: str | None,
                 duration_ms: float | None, result: Any) -> None:
        self.ctx.publish_message(self.ctx.topics.cmd_response(device_id),
                                 self._response(cmd_id, ok, code, text, duration_ms, result))

    def _respond_group(self, group_id: str, cmd_id: str, ok: bool, code: str | None, text: str | None,
                       duration_ms: float | None, result: Any) -> None:
        self.ctx.publish_message(self.ctx.topics.group_cmd_response(group_id),
                                 self._response(cmd_id, ok, code, text, duration_ms, result))

    # -- get

    def _device_get(self, device_id: str, payload: bytes) -> None:
        self._check_device(device_id)
        doc = decode_payload(payload, allow_empty=True)
        if not isinstance(doc, dict):
            raise CommandError(INVALID_PAYLOAD, f"expected a JSON object, got {type(doc).__name__}")
        props = doc.get("properties")
        if props is not None and (not isinstance(props, list) or not all(isinstance(p, str) for p in props)):
            raise CommandError(INVALID_PAYLOAD, "'properties' must be a list of property names")
        record = self.ctx.devices.get(device_id)
        state = dict(record.state) if record else {}
        if record is not None and record.online is not None:
            state["online"] = record.online
        if props is not None:
            state = {k: v for k, v in state.items() if k in props}
        # Not retained: a filtered answer must not replace the retained full state.
        self.ctx.publish_message(self.ctx.topics.state(device_id),
                                 {"timestamp": now_iso(), "device_id": device_id, "state": state})
