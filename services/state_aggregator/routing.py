"""Commands to the device's owning handler, and group commands fanned out to every member.

Everything that can be decided here is decided before a service is touched: the device exists,
is enabled, and the values suit its type (commands.py). Then the owning handler's answer is
passed through as it is (its status, error code and message), tagged with the device and
service, so a caller sees exactly what the device said.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.commands import DEVICE_DISABLED, INVALID_VALUE, Command, CommandError, bounded_id, parse_command
from shared.config import DeviceSpec
from shared.logs import command_context

from .commands import validate_values
from .handlers import NOT_RESPONDING, HandlerClient, HandlerUnavailable
from .registry import DeviceRegistry

log = logging.getLogger(__name__)


def new_command_id() -> str:
    """An id for commands that came without one, so their log lines can still be followed."""
    return f"agg-{secrets.token_hex(4)}"


class CommandRouter:
    def __init__(self, registry: DeviceRegistry, clients: Mapping[str, HandlerClient],
                 fan_out_threads: int = 16) -> None:
        self._registry = registry
        self._clients = clients
        self._pool = ThreadPoolExecutor(max_workers=fan_out_threads, thread_name_prefix="group-cmd")
        # Told of every command delivered, with its HTTP status (the window automations learn of manual commands).
        self.observers: list[Callable[[DeviceSpec, Command, str, int], None]] = []

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one device

    def send(self, device_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        """Validate and route one device command: ``(HTTP status, JSON body)``.

        Raises :class:`CommandError` for a command refused before any service was asked, and
        ``UnknownDevice`` for a device the config does not name.
        """
        spec = self._registry.spec(device_id)
        request = parse_command(body)
        self.check(spec, request)
        return self._deliver(spec, request, request.cmd_id or new_command_id())

    def check(self, spec: DeviceSpec, request: Command) -> None:
        if not spec.enabled:
            raise CommandError(DEVICE_DISABLED, f"{spec.device_id} is disabled in the instance config; "
                               "it takes no commands", device_id=spec.device_id)
        try:
            validate_values(spec.type, request.values, spec.automation is not None)
        except CommandError as exc:
            exc.extra.setdefault("device_id", spec.device_id)
            exc.extra.setdefault("type", spec.type)
            raise

    def _deliver(self, spec: DeviceSpec, request: Command, cmd_id: str) -> tuple[int, dict[str, Any]]:
        status, reply = self._to_handler(spec, request, cmd_id)
        for observer in self.observers:
            try:
                observer(spec, request, cmd_id, status)
            except Exception:  # an observer's bug must not turn a delivered command into an error
                log.exception("command observer %r failed", observer)
        return status, reply

    def _to_handler(self, spec: DeviceSpec, request: Command, cmd_id: str) -> tuple[int, dict[str, Any]]:
        tags = {"cmd_id": cmd_id, "device_id": spec.device_id, "service": spec.service}
        client = self._clients.get(spec.service)
        if client is None:
            return 503, {"error": "OFFLINE", "message": f"{spec.service} is not a configured service", **tags}
        with command_context(cmd_id):
            log.info("command %s -> %s: %s", spec.device_id, spec.service, dict(request.values))
            try:
                status, reply = client.command(spec.device_id, request.body(cmd_id))
            except HandlerUnavailable as exc:
                log.warning("command not delivered: %s", exc)
                if exc.reason == NOT_RESPONDING:
                    return 504, {"error": "TIMEOUT", "message": f"{spec.service} did not answer in time",
                                 **tags}
                return 503, {"error": "OFFLINE", "message": f"{spec.service}: {exc.reason}", **tags}
            log.info("command %s answered HTTP %s %s", spec.device_id, status,
                     reply.get("status") or reply.get("error"))
        return status, {**reply, **tags}

    # -- a group

    def send_group(self, group_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        """Fan the command out to every enabled member that takes it, concurrently.

        200 when every member it was sent to succeeded, 207 when some failed, 502 when all
        failed, 400 when no member takes the command at all. Members are reported one by one:
        ``success``, ``error`` (with the handler's error) or ``skipped`` (disabled, or the
        command does not suit the member's type; nothing was sent).
        """
        group = self._registry.group(group_id)
        request = parse_command(body)
        base_id = request.cmd_id or new_command_id()
        members: dict[str, dict[str, Any]] = {}
        targets: list[DeviceSpec] = []
        for device_id in group.devices:
            spec = self._registry.spec(device_id)
            try:
                self.check(spec, request)
            except CommandError as exc:
                members[device_id] = {"status": "skipped", "http_status": exc.status, **exc.to_dict()}
                continue
            targets.append(spec)
        summary = {"group_id": group_id, "cmd_id": base_id}
        if not targets:
            return 400, {"error": INVALID_VALUE, "message": f"no enabled member of group {group_id} "
                         "takes this command", **summary, "members": members}
        futures = {spec.device_id: self._pool.submit(self._deliver, spec, request,
                                                      bounded_id(f"{base_id}.{spec.device_id}"))
                   for spec in targets}
        for device_id, future in futures.items():
            status, reply = future.result()
            outcome = "success" if status < 400 else "error"
            members[device_id] = {"status": outcome, "http_status": status, **reply}
        ordered = {d: members[d] for d in group.devices}
        ok = sum(1 for spec in targets if members[spec.device_id]["status"] == "success")
        status = 200 if ok == len(targets) else 207 if ok else 502
        overall = "success" if status == 200 else "partial" if ok else "error"
        return status, {"status": overall, **summary, "sent": len(targets), "succeeded": ok,
                        "members": ordered}
