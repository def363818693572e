"""HttpPoller: the HTTP poller's domain object (no Flask).

Owns the ``DeviceTable`` of every device behind an enabled endpoint, one profile per endpoint
(its dialect), the ``PollSchedule`` that polls them all from a bounded pool through one pooled
``requests.Session``, the ``EventPublisher`` behind ``GET /events`` and the ``ErrorLog`` behind
``GET /errors``. A poll's outcome becomes device states, availability and errors here:

* the endpoint gives no usable answer -> every device of it offline with the reason (``timeout
  after 5 s``, ``connection refused``, ``HTTP 500``, ``not JSON``), one error recorded, and the
  next polls back off (doubling, up to 8 intervals or a minute) until it answers again;
* it answers -> its devices online, a ``state`` event for each whose values changed; a device
  whose key is missing or whose value is garbage is offline alone (``KEY_MISSING``, ``BAD_PAYLOAD``).
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from shared.clock import iso
from shared.commands import (
    OFFLINE,
    REJECTED,
    TIMEOUT,
    UNSUPPORTED,
    Command,
    CommandError,
)
from shared.config import EndpointSpec, Settings
from shared.device_table import Device, DeviceTable
from shared.devices import SENSOR_TYPES, InvalidCommand, normalize_command
from shared.error_log import ErrorLog
from shared.errors import NotFound
from shared.handler_core import HandlerCore, command_id
from shared.logs import command_context
from shared.metrics import Metrics
from shared.sse import EventPublisher

from .fetch import BAD_PAYLOAD, HTTP_STATUS, TIMED_OUT, UNREACHABLE, EndpointClient, EndpointFailure, seconds
from .profiles import PROFILES, Profile, Reading
from .schedule import PollSchedule

log = logging.getLogger(__name__)

SERVICE = "http_poller"
DEFAULT_WORKERS = 16
"""Polls in flight at once. A hanging endpoint holds one for at most its timeout."""
FRESH_TIMEOUT = 3.0
"""Longest wait for ``?fresh=1`` (the aggregator gives a handler 5 s)."""
BACKOFF_INTERVALS, BACKOFF_CAP_S = 8, 60.0
MOVING_POLL_S = 1.0
"""While a window is moving its endpoint is polled this often, so the move is seen to its end."""
STARTUP_SPREAD_PER_ENDPOINT_S, STARTUP_SPREAD_MAX_S = 0.01, 2.0
MOTION_EVENTS = {True: "motion_started", False: "motion_stopped"}
DISABLED = "the endpoint is disabled in the config"
WAITING = "waiting for the first poll"


@dataclass
class Endpoint:
    """One endpoint's polling record. Written by the worker polling it (one at a time)."""

    spec: EndpointSpec
    profile: Profile
    client: EndpointClient
    online: bool | None = None   # None until the first poll ends
    reason: str | None = None
    code: str | None = None
    failures: int = 0            # in a row
    polls: int = 0
    failed_polls: int = 0
    last_poll: float | None = None
    last_ok: float | None = None
    last_duration_s: float | None = None

    @property
    def endpoint_id(self) -> str:
        return self.spec.endpoint_id

    def status(self) -> str:
        return "waiting" if self.online is None else ("online" if self.online else "offline")


def backoff_delay(interval: float, failures: int) -> float:
    """Seconds until the next poll of an endpoint that failed ``failures`` times in a row."""
    if failures <= 0:
        return interval
    cap = max(interval, min(BACKOFF_CAP_S, interval * BACKOFF_INTERVALS))
    return min(interval * 2 ** (failures - 1), cap)


class HttpPoller(HandlerCore):
    """Endpoints in, devices out. ``start()`` begins polling; ``stop()`` ends it."""

    where = "the HTTP poller"

    def __init__(self, settings: Settings, publisher: EventPublisher | None = None,
                 error_log: ErrorLog | None = None, metrics: Metrics | None = None,
                 workers: int = DEFAULT_WORKERS) -> None:
        devices = DeviceTable((d for d in settings.devices_of(SERVICE) if d.enabled),
                              source_fields=("endpoint", "key"), waiting=WAITING)
        super().__init__(SERVICE, settings, devices, publisher, error_log, metrics)
        self._commanded_at: dict[str, float] = {}  # device id -> time.monotonic() of its last command
        self.session = requests.Session()
        # Polls and commands share the pool: room for every worker plus concurrent commands.
        adapter = HTTPAdapter(pool_connections=64, pool_maxsize=workers + 16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.endpoints: dict[str, Endpoint] = {}
        for spec in settings.endpoints:
            if not spec.enabled:
                for device in self.devices.of_source(spec.endpoint_id):
                    self.devices.set_online(device, False, DISABLED)
                continue
            client = EndpointClient(self.session, spec.url, spec.timeout)
            self.endpoints[spec.endpoint_id] = Endpoint(spec, PROFILES[spec.profile](client), client)
        self.schedule = PollSchedule(self._poll, workers)
        self._started = False
        self._stopping = False
        self._install_metrics()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> HttpPoller:
        if not self._started:
            self._started = True
            polled = [e for e in self.endpoints.values() if self.devices.of_source(e.endpoint_id)]
            # Spread the first polls so 500 endpoints do not all fire in the same millisecond.
            spread = min(STARTUP_SPREAD_MAX_S, STARTUP_SPREAD_PER_ENDPOINT_S * len(polled))
            self.schedule.start({e.endpoint_id: random.uniform(0, min(spread, e.spec.poll_interval))
                                 for e in polled})
        return self

    def stop(self) -> None:
        self._stopping = True
        self.schedule.stop()
        self.session.close()
        self.events.close()

    # ------------------------------------------------------------------ queries

    def fresh_view(self, device_id: str) -> dict[str, Any]:
        """Poll the device's endpoint now and wait briefly; the view, with ``fresh: false`` and
        the reason when the endpoint could not answer in time."""
        device = self.device(device_id)
        endpoint = self.endpoints.get(device.spec.endpoint or "")
        error = None
        if endpoint is None:
            error = f"{OFFLINE}: {DISABLED}"
        else:
            wait = min(endpoint.spec.timeout + 0.5, FRESH_TIMEOUT)
            if not self.schedule.poll_now(endpoint.endpoint_id).wait(wait):
                error = f"{TIMEOUT}: no answer from endpoint {endpoint.endpoint_id} within {seconds(wait)}"
            elif not device.online:
                error = f"{device.problem or OFFLINE}: {device.reason}"
        return self._fresh(device, error)

    def endpoint_views(self) -> list[dict[str, Any]]:
        return [self._endpoint_view(e) for e in self.endpoints.values()]

    def endpoint_view(self, endpoint_id: str) -> dict[str, Any]:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound("UNKNOWN_ENDPOINT", f"No endpoint {endpoint_id!r}.", known=list(self.endpoints))
        return self._endpoint_view(endpoint)

    def health(self) -> tuple[int, dict[str, Any]]:
        """503 only when every endpoint that has been polled is failing: one dead sensor must
        not make the whole service look down, and nothing answering at all must."""
        checks = {f"endpoint {e.endpoint_id}": (e.online is not False, e.reason or e.status())
                  for e in self.endpoints.values()}
        failing = [f"{name}: {detail}" for name, (ok, detail) in checks.items() if not ok]
        polled = [e for e in self.endpoints.values() if e.online is not None]
        down = bool(polled) and not any(e.online for e in polled)
        body: dict[str, Any] = {"status": "degraded" if down else "ok"}
        if down:
            body["reasons"] = failing
        elif failing:
            body["failing"] = failing
        body.update(checks={name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()},
                    service=SERVICE, instance_id=self.settings.instance_id,
                    endpoints={e.endpoint_id: e.status() for e in self.endpoints.values()})
        return (503 if down else 200), body

    # ------------------------------------------------------------------ commands

    def command(self, device_id: str, command: Command) -> dict[str, Any]:
        """Carry out a device command; ``{"status": "success", "cmd_id", "result"}`` or CommandError."""
        device = self.device(device_id)
        cmd_id = command_id(command)
        with command_context(cmd_id):
            try:
                normalized = normalize_command(device.spec.type, command.values)
            except InvalidCommand as exc:
                raise CommandError(exc.code, exc.message, **exc.extra) from None
            endpoint = self.endpoints.get(device.spec.endpoint or "")
            if endpoint is None:
                raise CommandError(OFFLINE, f"endpoint {device.spec.endpoint} of {device_id} is disabled in the config")
            timeout = command.timeout_s(endpoint.spec.timeout)
            if device.spec.type in SENSOR_TYPES:
                result = self._read_now(device, endpoint, normalized, timeout)
            else:
                result = self._actuate(device, endpoint, normalized, timeout)
        return {"status": "success", "cmd_id": cmd_id, "result": result}

    def _read_now(self, device: Device, endpoint: Endpoint, values: dict[str, Any], timeout: float) -> dict[str, Any]:
        """A sensor command: nothing but "read now" makes sense for a polled device."""
        if values:
            raise CommandError(UNSUPPORTED, "an HTTP sensor is read every poll_interval seconds of its endpoint "
                                            "(config.http_endpoints); it takes no interval", accepted=[])
        if not self.schedule.poll_now(endpoint.endpoint_id).wait(timeout):
            raise CommandError(TIMEOUT, f"no answer from endpoint {endpoint.endpoint_id} within {seconds(timeout)}")
        if not device.online:
            raise CommandError(OFFLINE, f"{device.spec.device_id} is offline: {device.reason}")
        return dict(device.state)

    def _actuate(self, device: Device, endpoint: Endpoint, values: dict[str, Any], timeout: float) -> dict[str, Any]:
        profile = endpoint.profile
        if device.spec.type not in profile.command_types:
            raise profile.unsupported(device.spec)
        log.info("command %s -> %s (%s): %s", device.spec.device_id, endpoint.endpoint_id, profile.name, values)
        started = time.perf_counter()
        try:
            props = profile.command(device.spec, values, timeout)
        except EndpointFailure as failure:
            error = self._command_failure(endpoint, failure, timeout)
            self._command_seconds.labels(profile.name, error.code).observe(time.perf_counter() - started)
            log.warning("command %s failed: %s %s", device.spec.device_id, error.code, error.message)
            raise error from None
        except CommandError as error:
            self._command_seconds.labels(profile.name, error.code).observe(time.perf_counter() - started)
            raise
        self._command_seconds.labels(profile.name, "success").observe(time.perf_counter() - started)
        log.info("command %s done: %s", device.spec.device_id, props)
        self._commanded_at[device.spec.device_id] = time.monotonic()
        self._update(device, props, time.time())
        self.schedule.poll_now(endpoint.endpoint_id, after_now=True)  # confirm the device's own view soon
        return dict(device.state)

    @staticmethod
    def _command_failure(endpoint: Endpoint, failure: EndpointFailure, timeout: float) -> CommandError:
        name = endpoint.endpoint_id
        if failure.kind == TIMED_OUT:
            return CommandError(TIMEOUT, f"no answer from endpoint {name} within {seconds(timeout)}")
        if failure.kind == UNREACHABLE:
            return CommandError(OFFLINE, f"endpoint {name} unreachable: {failure.reason}")
        if failure.kind == HTTP_STATUS:
            said = failure.device_message()
            return CommandError(REJECTED, f"endpoint {name} answered {failure.reason}" + (f": {said}" if said else ""))
        return CommandError(REJECTED, f"endpoint {name} answered something not understood: {failure.reason}")

    # ------------------------------------------------------------------ polling (worker threads)

    def _poll(self, endpoint_id: str) -> float:
        """One poll of one endpoint; returns the seconds until its next poll."""
        endpoint = self.endpoints[endpoint_id]
        devices = self.devices.of_source(endpoint_id)
        asked_at = time.monotonic()
        started = time.perf_counter()
        try:
            readings = endpoint.profile.read([d.spec for d in devices])
        except EndpointFailure as failure:
            if self._stopping:  # the answer to a poll cut short by our own shutdown says nothing
                return 0.0
            outcome = failure.code
            self._endpoint_failed(endpoint, devices, failure.code, failure.reason)
        except Exception as exc:  # noqa: BLE001 - an answer shaped in a way the profile did not foresee
            log.exception("endpoint %s: the %s profile could not read the answer", endpoint_id, endpoint.profile.name)
            outcome = BAD_PAYLOAD
            self._endpoint_failed(endpoint, devices, BAD_PAYLOAD, f"unreadable answer ({type(exc).__name__})")
        else:
            outcome = "ok"
            self._endpoint_answered(endpoint, devices, readings, asked_at)
        duration = time.perf_counter() - started
        if self._stopping:
            return 0.0
        endpoint.polls += 1
        endpoint.last_poll = time.time()
        endpoint.last_duration_s = duration
        self._polls.labels(endpoint.profile.name, outcome).inc()
        self._poll_seconds.labels(endpoint.profile.name).observe(duration)
        return self._next_delay(endpoint, devices)

    def _next_delay(self, endpoint: Endpoint, devices: list[Device]) -> float:
        interval = endpoint.spec.poll_interval
        if endpoint.failures:
            return backoff_delay(interval, endpoint.failures) * random.uniform(0.9, 1.1)
        if any(d.state.get("moving") for d in devices):
            return min(interval, MOVING_POLL_S)
        return interval

    def _endpoint_failed(self, endpoint: Endpoint, devices: list[Device], code: str, reason: str) -> None:
        endpoint.failures += 1
        endpoint.failed_polls += 1
        news = endpoint.online is not False or endpoint.code != code
        endpoint.online, endpoint.reason, endpoint.code = False, reason, code
        if news:  # recorded once per outage (and when its kind changes), not once per poll
            log.warning("endpoint %s (%s) offline: %s", endpoint.endpoint_id, endpoint.spec.url, reason)
            self._record(code, f"endpoint {endpoint.endpoint_id} ({endpoint.spec.url}): {reason}", "error",
                         endpoint=endpoint.endpoint_id)
        for device in devices:
            if self.devices.set_online(device, False, reason, code):
                self._availability(device, False, reason)

    def _endpoint_answered(self, endpoint: Endpoint, devices: list[Device], readings: dict[str, Reading],
                           asked_at: float) -> None:
        if endpoint.online is False:
            log.info("endpoint %s back online after %d failed poll(s)", endpoint.endpoint_id, endpoint.failures)
        endpoint.online, endpoint.reason, endpoint.code, endpoint.failures = True, None, None, 0
        now = endpoint.last_ok = time.time()
        for device in devices:
            reading = readings.get(device.spec.device_id) or Reading.missing("the profile gave no reading")
            if reading.problem is not None:
                code, reason = reading.problem
                if device.problem != code:
                    self._record(code, f"{device.spec.device_id} on endpoint {endpoint.endpoint_id}: {reason}",
                                 "warning", device_id=device.spec.device_id, endpoint=endpoint.endpoint_id)
                if self.devices.set_online(device, False, reason, code):
                    self._availability(device, False, reason)
                continue
            if self.devices.set_online(device, True, None):
                self._availability(device, True, None)
            if self._commanded_at.get(device.spec.device_id, 0.0) > asked_at:
                continue  # read before a command changed it: the poll that follows the command tells
            self._update(device, reading.state, now)

    # ------------------------------------------------------------------ helpers

    def _update(self, device: Device, props: dict[str, Any], now: float) -> None:
        before = device.state.get("motion")
        state = self.devices.update(device, props, now)
        if state is None:
            return
        device_id = device.spec.device_id
        self.events.publish("state", {"device_id": device_id, "state": state, "endpoint": device.spec.endpoint})
        if device.spec.type == "motion" and before is not None and state.get("motion") != before:
            self.events.publish("event", {"device_id": device_id, "event": MOTION_EVENTS[bool(state["motion"])],
                                          "data": {}, "endpoint": device.spec.endpoint})

    def _availability(self, device: Device, online: bool, reason: str | None) -> None:
        self.events.publish("availability", {"device_id": device.spec.device_id, "online": online,
                                             "reason": reason, "endpoint": device.spec.endpoint})

    def _endpoint_view(self, endpoint: Endpoint) -> dict[str, Any]:
        spec = endpoint.spec
        due = self.schedule.next_due_in(endpoint.endpoint_id)
        took = endpoint.last_duration_s
        return {"endpoint_id": spec.endpoint_id, "name": spec.name, "url": spec.url, "profile": spec.profile,
                "poll_interval": spec.poll_interval, "timeout": spec.timeout, "status": endpoint.status(),
                "online": bool(endpoint.online), "reason": endpoint.reason, "error_code": endpoint.code,
                "polls": endpoint.polls, "failed_polls": endpoint.failed_polls,
                "consecutive_failures": endpoint.failures, "requests": endpoint.client.requests,
                "last_poll": iso(endpoint.last_poll), "last_ok": iso(endpoint.last_ok),
                "last_duration_ms": None if took is None else round(took * 1000, 1),
                "next_poll_in_s": None if due is None else round(due, 3),
                "devices": [d.spec.device_id for d in self.devices.of_source(spec.endpoint_id)]}

    def _install_metrics(self) -> None:
        self._polls = self.metrics.counter("http_polls_total", "Endpoint polls by profile and outcome "
                                           "(ok or the error code)", ("profile", "outcome"))
        self._poll_seconds = self.metrics.histogram(
            "http_poll_seconds", "Time one poll of an endpoint took", ("profile",),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self._command_seconds = self.metrics.histogram(
            "http_command_seconds", "Time from a command to the device's answer", ("profile", "status"),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.metrics.gauge_function("http_polls_in_flight", "Polls running now", self.schedule.in_flight)
        self.metrics.gauge_function("http_poll_lateness_seconds", "How late the last poll started",
                                    lambda: self.schedule.lateness_s)
        self.metrics.registry.register(_EndpointCollector(self))


class _EndpointCollector:
    """Per-endpoint figures read at scrape time: nothing is paid per poll for them."""

    def __init__(self, poller: HttpPoller) -> None:
        self._poller = poller

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        ns = self._poller.metrics.namespace
        online = GaugeMetricFamily(f"{ns}_http_endpoint_online", "1 when the endpoint answered its last poll",
                                   labels=["endpoint", "profile"])
        failures = CounterMetricFamily(f"{ns}_http_endpoint_failed_polls", "Failed polls", labels=["endpoint"])
        for endpoint in list(self._poller.endpoints.values()):
            online.add_metric([endpoint.endpoint_id, endpoint.profile.name], 1.0 if endpoint.online else 0.0)
            failures.add_metric([endpoint.endpoint_id], endpoint.failed_polls)
        yield from (online, failures)

