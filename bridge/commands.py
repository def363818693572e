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
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.client import IncomingMessage
from bridge.context import BridgeContext, Feature, now_iso
from bridge.discovery import HaCommandError, translate_ha_command
from shared.devices import command_values
from shared.logs import command_context

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64 * 1024
"""Bytes; a command is a few dozen. Anything bigger is refused before parsing."""
STALE_AFTER_S = 30.0
MAX_TIMEOUT_MS = 60_000


class BadInput(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Command:
    cmd_id: str | None
    values: dict[str, Any]
    timeout_ms: int | None
    received: float


def decode_json(payload: bytes, allow_empty: bool = False) -> Any:
    if len(payload) > MAX_PAYLOAD:
        raise BadInput("PAYLOAD_TOO_LARGE", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD} bytes")
    if not payload.strip():
        if allow_empty:
            return {}
        raise BadInput("INVALID_PAYLOAD", "empty payload (expected a JSON object)")
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput("INVALID_JSON", f"payload is not UTF-8 JSON ({exc})") from None


def peek_id(payload: bytes) -> str | None:
    """The command id, if one can be read at all (so even bad commands get an answer)."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(doc, dict) and isinstance(doc.get("id"), (str, int)) and not isinstance(doc.get("id"), bool):
        return str(doc["id"])
    return None


def parse_timestamp(value: Any) -> float:
    """ISO 8601 (with timezone; naive means local) or epoch seconds/milliseconds."""
    if isinstance(value, bool):
        raise BadInput("INVALID_PAYLOAD", "'timestamp' must be ISO 8601 or epoch seconds")
    if isinstance(value, (int, float)):
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed.timestamp() if parsed.tzinfo else parsed.astimezone().timestamp()
    raise BadInput("INVALID_PAYLOAD", f"'timestamp' {str(value)[:40]!r} is not ISO 8601 or epoch seconds")


def parse_command(doc: Any, now: float | None = None) -> Command:
    """A contract command payload -> Command, or BadInput naming what is wrong."""
    if not isinstance(doc, dict):
        raise BadInput("INVALID_PAYLOAD", f"expected a JSON object, got {type(doc).__name__}")
    cmd_id = doc.get("id")
    if cmd_id is not None and (isinstance(cmd_id, bool) or not isinstance(cmd_id, (str, int))):
        raise BadInput("INVALID_PAYLOAD", "'id' must be a string or an integer")
    cmd_id = None if cmd_id is None else str(cmd_id)
    now = time.time() if now is None else now
    if "timestamp" in doc and doc["timestamp"] is not None:
        age = now - parse_timestamp(doc["timestamp"])
        if age > STALE_AFTER_S:
            raise BadInput("STALE_COMMAND", f"command is {age:.1f} s old (limit {STALE_AFTER_S:.0f} s); "
                                            "not carried out")
    timeout = doc.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_MS:
            raise BadInput("INVALID_PAYLOAD", f"'timeout' must be milliseconds in 1..{MAX_TIMEOUT_MS}")
        timeout = int(timeout)
    values = command_values(doc)
    if not isinstance(values, dict):
        raise BadInput("INVALID_PAYLOAD", f"'values' must be an object, got {type(values).__name__}")
    if not values:  # on MQTT, `get` is how to ask for the current state
        raise BadInput("INVALID_PAYLOAD", "no values to set")
    return Command(cmd_id, values, timeout, now)


class CommandFeature(Feature):
    def __init__(self, ctx: BridgeContext, workers: int = 8) -> None:
        super().__init__(ctx)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bridge cmd")
        self._pending: set[Future[None]] = set()  # submitted, not finished (what stop() waits for)
        self._pending_lock = threading.Lock()
        self.rejected = 0
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
                raise BadInput("INVALID_TOPIC", f"{message.topic[:200]}: {parsed.problem}")
            if parsed.kind == "device_cmd":
                self._device_cmd(parsed.device_id, message.payload)
            elif parsed.kind == "device_get":
                self._device_get(parsed.device_id, message.payload)
            elif parsed.kind == "group_cmd":
                self._group_cmd(parsed.group_id, message.payload)
            elif parsed.kind == "meta_request":
                decode_json(message.payload, allow_empty=True)
                if parsed.request not in ("devices_list", "info"):
                    raise BadInput("UNKNOWN_REQUEST", f"meta request {parsed.request!r} is not one of devices_list, "
                                                      "info")
                self.ctx.bus.emit("meta_request", request=parsed.request)
            elif parsed.kind == "ha_command":
                self._ha_command(parsed.device_id, parsed.command, message.payload)
            else:
                raise BadInput("INVALID_TOPIC", f"{message.topic[:200]}: {parsed.problem}")
        except BadInput as exc:
            self._reject(message, parsed.device_id, exc.code, exc.message, group_id=parsed.group_id)

    def _reject(self, message: IncomingMessage, device_id: str | None, code: str, text: str,
                group_id: str | None = None) -> None:
        self.rejected += 1
        cmd_id = peek_id(message.payload)
        with command_context(cmd_id):
            log.warning("refused %s: %s: %s", message.topic[:200], code, text)
        known = device_id in self.ctx.known_device_ids()
        if cmd_id is not None and known:
            self._respond(device_id, cmd_id, False, code, text, None, None)
        elif cmd_id is not None and group_id is not None and self._group_known(group_id):
            self._respond_group(group_id, cmd_id, False, code, text, None, None)
        else:
            detail = f"{text} (topic {message.topic[:200]}" + (f", command {cmd_id})" if cmd_id else ")")
            self.ctx.publish_error(device_id, code, detail)

    # -- commands

    def _check_device(self, device_id: str) -> None:
        if device_id not in self.ctx.known_device_ids():
            known = ", ".join(sorted(self.ctx.known_device_ids()))
            raise BadInput("UNKNOWN_DEVICE", f"unknown device {device_id[:80]!r} (known: {known})")
        if not self.ctx.settings.device(device_id).enabled:
            raise BadInput("DEVICE_DISABLED", f"device {device_id!r} is disabled in the instance config")

    def _group_known(self, group_id: str) -> bool:
        return any(g.group_id == group_id for g in self.ctx.settings.groups)

    def _device_cmd(self, device_id: str, payload: bytes) -> None:
        self._check_device(device_id)
        command = parse_command(decode_json(payload))
        self._submit("device", device_id, command)

    def _group_cmd(self, group_id: str, payload: bytes) -> None:
        if not self._group_known(group_id):
            known = ", ".join(g.group_id for g in self.ctx.settings.groups)
            raise BadInput("UNKNOWN_GROUP", f"unknown group {group_id[:80]!r} (known: {known})")
        command = parse_command(decode_json(payload))
        self._submit("group", group_id, command)

    def _ha_command(self, device_id: str, which: str, payload: bytes) -> None:
        self._check_device(device_id)
        if len(payload) > MAX_PAYLOAD:
            raise BadInput("PAYLOAD_TOO_LARGE", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD} bytes")
        try:
            values = translate_ha_command(self.ctx.settings.device(device_id).type, which, payload)
        except HaCommandError as exc:
            raise BadInput("INVALID_PAYLOAD", str(exc)) from None
        self._submit("device", device_id, Command(None, values, None, time.time()))

    def _run(self, kind: str, target: str, command: Command) -> None:
        """Pool thread: one round trip through the aggregator, then the answer."""
        with command_context(command.cmd_id):
            log.info("%s %s command %s", kind, target, json.dumps(command.values)[:200])
            outcome = self.ctx.aggregator.command(kind, target, command.values, command.cmd_id, command.timeout_ms)
            duration_ms = round((time.time() - command.received) * 1000, 1)
            if outcome.ok:
                log.info("%s %s command done in %.1f ms", kind, target, duration_ms)
            else:
                log.warning("%s %s command failed: %s: %s", kind, target, outcome.error, outcome.message)
            result = outcome.body if outcome.ok else (outcome.body or None)
            if command.cmd_id is not None:
                respond = self._respond if kind == "device" else self._respond_group
                respond(target, command.cmd_id, outcome.ok, outcome.error, outcome.message, duration_ms, result)
            elif not outcome.ok:
                device = target if kind == "device" else None
                self.ctx.publish_error(device, outcome.error or "COMMAND_FAILED",
                                       f"{kind} {target} command {json.dumps(command.values)[:120]} failed: "
                                       f"{outcome.message}")

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
        doc = decode_json(payload, allow_empty=True)
        if not isinstance(doc, dict):
            raise BadInput("INVALID_PAYLOAD", f"expected a JSON object, got {type(doc).__name__}")
        props = doc.get("properties")
        if props is not None and (not isinstance(props, list) or not all(isinstance(p, str) for p in props)):
            raise BadInput("INVALID_PAYLOAD", "'properties' must be a list of property names")
        record = self.ctx.devices.get(device_id)
        state = dict(record.state) if record else {}
        if record is not None and record.online is not None:
            state["online"] = record.online
        if props is not None:
            state = {k: v for k, v in state.items() if k in props}
        # Not retained: a filtered answer must not replace the retained full state.
        self.ctx.publish_message(self.ctx.topics.state(device_id),
                                 {"timestamp": now_iso(), "device_id": device_id, "state": state})
