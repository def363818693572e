"""The state aggregator: one object that owns the registry, the cache, the handler links and
the merged event stream (Home Assistant's DataUpdateCoordinator, for a whole instance).

Handlers push (their ``/events``); the aggregator keeps the latest state and availability of
every device and re-publishes every event on its own stream, tagged with ``source``. Reads are
answered from the cache while it is fresh; a stale entry is pulled again from the owning
handler; a handler that cannot be reached turns into "unavailable" on its devices, never into
an exception for the caller.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared import jsonio
from shared.bridge_report import broker_link
from shared.config import SOURCE_OWNERS, DeviceSpec, Settings
from shared.error_log import ErrorLog
from shared.sse import Event, EventPublisher, now_iso
from shared.stream_positions import StreamPositions

from .automation import WindowAutomations
from .cache import CacheEntry, Freshness, TtlCache
from .handlers import HandlerClient, HandlerReplyError, HandlerUnavailable
from .history import ReadingHistory, thin
from .registry import Availability, DeviceRegistry
from .routing import CommandRouter

log = logging.getLogger(__name__)

SERVICE = "state_aggregator"
HANDLER_SERVICES = tuple(dict.fromkeys(SOURCE_OWNERS.values()))
"""Services that own devices; every one of them is followed alike."""
OVERVIEW_LISTS = {"boards": "serial_handler", "endpoints": "http_poller"}
"""What ``overview()`` asks of which handler: the key is both the path and the answer's list."""
POSITIONS_FILE = "state_aggregator_positions.json"
"""Where each handler's stream resumes after a restart (in DATA_DIR; shared/stream_positions.py)."""
PENDING_POSITIONS = 6000
"""Positions waiting for the aggregator's own stream to pass them on: one per save interval
(0.1 s), so ten minutes without a consumer. Older ones are let go; a resume from before them
is then too old for the handler's replay anyway, and is told so (a reset)."""


def _source(spec: DeviceSpec) -> dict[str, str]:
    """Where the device's readings come from, named as its handler names it (``board``,
    ``endpoint``) or ``automation``."""
    return {key: value for key in ("board", "endpoint", "automation") if (value := getattr(spec, key))}


class StateAggregator:
    def __init__(self, settings: Settings, publisher: EventPublisher | None = None,
                 follower_backoff: tuple[float, float] = (0.1, 2.0)) -> None:
        self.settings = settings
        self.registry = DeviceRegistry.from_settings(settings)
        self.cache = TtlCache(settings.cache_ttl)
        self.history = ReadingHistory((d.device_id, d.type) for d in self.registry.specs())
        # Every handler's events meet here: a deeper replay ring and client queue than a
        # handler's, so a consumer (the bridge) that lags a moment resumes instead of resyncing.
        self.publisher = publisher or EventPublisher(history=10_000, client_queue=2048)
        self.error_log = ErrorLog(SERVICE)
        names = [n for n in settings.services if n in HANDLER_SERVICES or self.registry.owned_by(n)]
        self.positions = StreamPositions(settings.data_dir / POSITIONS_FILE, self._passed_on,
                                         name="aggregator stream positions")
        self.clients: dict[str, HandlerClient] = {
            name: HandlerClient(name, settings.service(name).url, self, settings.instance_id,
                                backoff=follower_backoff, last_event_id=self.positions.get(name))
            for name in names}
        for service in self.registry.services():
            if service not in self.clients:  # a device owned by a service with no address
                self.registry.mark_service_down(service, "service not configured")
        for client in self.clients.values():
            client.authorize(settings.api_token)  # commands and the automation's POSTs need it
        self.router = CommandRouter(self.registry, self.clients)
        self.automations = WindowAutomations.build(settings.automations, self.cache, self.registry, self.router,
                                                   self.clients.get("ml_inference"), self._publish, self.error_log)
        self.router.observers.append(self.automations.on_command)
        # What never changes about a device, built once: listings only add availability and state.
        self._static: dict[str, dict[str, Any]] = {
            d.device_id: {"device_id": d.device_id, "name": d.name, "type": d.type, "service": d.service,
                          "enabled": d.enabled, "groups": list(d.groups), "area": d.area, "model": d.model,
                          **_source(d)}
            for d in self.registry.specs()}
        self._encoded_views: dict[str, tuple[Availability, jsonio.Encoded]] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(4, len(self.clients)), thread_name_prefix="aggregate")
        self._started = False
        self.events_ignored = 0
        # Per handler: the newest (own seq, handler event id) taken, and those not yet passed on.
        self._taken: dict[str, tuple[int, str]] = {}
        self._unsent: dict[str, deque[tuple[int, str]]] = {}

    # -- lifecycle

    def start(self) -> StateAggregator:
        if not self._started:
            self._started = True
            for client in self.clients.values():
                client.start()
            self.automations.start()
            self.positions.start()
        return self

    def stop(self) -> None:
        self.automations.stop()
        for client in self.clients.values():
            client.stop()
        self.router.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.publisher.close()
        self.positions.stop()

    def _passed_on(self) -> dict[str, str]:
        """Each handler's position as far as this aggregator's own stream has passed its events
        on (written to every connected consumer: ``EventPublisher.delivered_seq``). Saving what
        was merely taken would lose, at a kill -9, the events still on their way to the bridge;
        this way they are replayed by the handler at the next start (QoS 1 is at least once)."""
        delivered = self.publisher.delivered_seq()
        saved: dict[str, str] = {}
        for service, taken in list(self._taken.items()):
            unsent = self._unsent.setdefault(service, deque(maxlen=PENDING_POSITIONS))
            if not unsent or unsent[-1] != taken:
                unsent.append(taken)
            while unsent and unsent[0][0] <= delivered:
                saved[service] = unsent.popleft()[1]
        return saved

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        """Every event the aggregator publishes, also shown to the window automations (they react
        to their inputs changing: push, not poll)."""
        self.publisher.publish(kind, data)
        if kind == "state" and isinstance(data.get("state"), dict):
            self.history.record(data["device_id"], data["state"], time.time())
        self.automations.on_event(kind, data)

    # -- what handlers tell us (HandlerListener)

    def on_handler_event(self, service: str, event: Event) -> None:
        self._take(service, event)
        if event.id:  # after it is on our stream (or ignored): our seq now covers it
            self._taken[service] = (self.publisher.seq, event.id)

    def _take(self, service: str, event: Event) -> None:
        data = dict(event.data)
        device_id = data.get("device_id")
        if device_id is not None and not self._owned(service, device_id):
            self.events_ignored += 1
            log.debug("%s sent a %s event for %r, which it does not own here", service, event.kind, device_id)
            return
        timestamp = data.get("timestamp")
        if event.kind == "state" and isinstance(data.get("state"), dict):
            self.cache.put(device_id, data["state"], merge=True)
            self.registry.seen(device_id, timestamp)
        elif event.kind == "availability" and device_id is not None:
            online = bool(data.get("online"))
            self.registry.update(device_id, online, data.get("reason"), timestamp if online else None)
            # Re-published as the registry now has it: the config can overrule (disabled devices).
            current = self.registry.availability(device_id)
            data["online"], data["reason"] = current.online, current.reason
        elif event.kind == "event" and device_id is not None:
            self.registry.seen(device_id, timestamp)
        self._publish(event.kind, {**data, "source": service})

    def on_handler_sync(self, service: str, views: list[dict[str, Any]]) -> None:
        reported = set()
        for view in views:
            device_id = view.get("device_id")
            if self._owned(service, device_id):
                reported.add(device_id)
                self._apply_view(service, view, resync=True)
        for spec in self.registry.owned_by(service):
            if spec.device_id not in reported:
                self._set_availability(service, spec.device_id, False, f"not reported by {service}")
        self.automations.on_service(service)

    def on_handler_down(self, service: str, reason: str) -> None:
        for device_id, availability in self.registry.mark_service_down(service, reason).items():
            self._publish("availability", {"device_id": device_id, "online": False,
                                           "reason": availability.reason, "source": service})
        self.automations.on_service(service)

    def _owned(self, service: str, device_id: Any) -> bool:
        return self.registry.owner(device_id) == service

    def _apply_view(self, service: str, view: dict[str, Any], resync: bool = False) -> dict[str, Any] | None:
        """Take a handler's DeviceView as the truth; publish what changed. Returns the state."""
        device_id = view["device_id"]
        self._set_availability(service, device_id, bool(view.get("online")), view.get("reason"),
                               view.get("last_seen"), resync)
        state = view.get("state")
        if not isinstance(state, dict) or not state:
            entry = self.cache.peek(device_id)
            return dict(entry.state) if entry else None
        full, changed = self.cache.put(device_id, state)
        if changed:
            self._publish("state", {"device_id": device_id, "state": full, "source": service,
                                    **({"resync": True} if resync else {})})
        return full

    def _set_availability(self, service: str, device_id: str, online: bool, reason: str | None,
                          last_seen: str | None = None, resync: bool = True) -> None:
        changed = self.registry.update(device_id, online, reason, last_seen)
        if changed is not None:
            self._publish("availability", {"device_id": device_id, "online": changed.online,
                                           "reason": changed.reason, "source": service,
                                           **({"resync": True} if resync else {})})

    # -- reads

    def device_view(self, device_id: str, fresh: bool = False) -> dict[str, Any]:
        """One device with its state: from the cache while fresh, else pulled from its handler.

        ``cache`` says how it was answered: ``hit``, ``refreshed``, or ``stale``/``miss`` (the
        handler could not be asked, or with ``fresh`` the device did not answer; ``refresh_error``
        says why).
        """
        spec = self.registry.spec(device_id)
        if fresh:
            entry, freshness = self.cache.peek(device_id), Freshness.STALE
        else:
            entry, freshness = self.cache.lookup(device_id)
        if freshness is Freshness.HIT:
            return self._view(spec, include_state=True, cache="hit")
        problem = self._refresh(spec, fresh)
        if problem is None:
            return self._view(spec, include_state=True, cache="refreshed")
        return {**self._view(spec, include_state=True, cache="stale" if entry else "miss"),
                "refresh_error": problem}

    def _refresh(self, spec: DeviceSpec, fresh: bool) -> dict[str, Any] | None:
        """Pull one device from its handler; None when done, else what went wrong."""
        client = self.clients.get(spec.service)
        if client is None:
            return {"error": "OFFLINE", "message": f"{spec.service} is not a configured service"}
        if client.down_reason and not fresh:
            return {"error": "OFFLINE", "message": f"{spec.service}: {client.down_reason}"}
        try:
            view = client.sensor(spec.device_id, fresh=fresh)
        except HandlerUnavailable as exc:
            # Availability is the handler link's to decide (it knows whether a reconnect
            # happened meanwhile); a failed read only reports.
            self.cache.record_refresh(False)
            return {"error": "OFFLINE", "message": f"{spec.service}: {exc.reason}"}
        except HandlerReplyError as exc:
            self.cache.record_refresh(False)
            return {"http_status": exc.status, **exc.body}
        self.cache.record_refresh(True)
        view.setdefault("device_id", spec.device_id)
        self._apply_view(spec.service, view)
        if fresh and view.get("fresh") is False:  # the handler answered from memory: the device did not
            return {"error": "NOT_FRESH", "message": str(view.get("fresh_error") or "the device did not answer")}
        return None

    def device_views(self, include_state: bool = False, type: str | None = None,
                     online: bool | None = None, encoded: bool = False) -> list[Any]:
        """Every device (filtered). With state, a service whose entries went stale is pulled
        once (``GET /sensors``), not once per device, so the list stays fast. Built from one
        snapshot of the registry and of the cache: a thousand devices, two locks.

        ``encoded`` (without state): each view as JSON already encoded (``jsonio.Encoded``),
        encoded again only when the device's availability changed. Building and encoding 5,000
        views took 20 ms a request, holding the GIL the readings on their way to MQTT needed."""
        specs = [s for s in self.registry.specs() if type is None or s.type == type]
        entries: dict[str, CacheEntry] = {}
        now = 0.0
        if include_state:
            entries, now = self.cache.snapshot()
            if self._refresh_stale_services(specs, entries, now):
                entries, now = self.cache.snapshot()
        availability = self.registry.all_availability()
        views = []
        for spec in specs:
            state = availability[spec.device_id]
            if online is not None and state.online is not online:
                continue
            if encoded and not include_state:
                views.append(self._encoded_view(spec.device_id, state))
                continue
            view = {**self._static[spec.device_id], "online": state.online, "last_seen": state.last_seen,
                    "reason": state.reason}
            if include_state:
                self._add_state(view, entries.get(spec.device_id), now)
            views.append(view)
        return views

    def _encoded_view(self, device_id: str, state: Availability) -> jsonio.Encoded:
        cached = self._encoded_views.get(device_id)
        if cached is None or cached[0] is not state:  # Availability is replaced on every change
            view = {**self._static[device_id], "online": state.online, "last_seen": state.last_seen,
                    "reason": state.reason}
            cached = self._encoded_views[device_id] = (state, jsonio.encoded(view))
        return cached[1]

    def _refresh_stale_services(self, specs: list[DeviceSpec], entries: dict[str, CacheEntry],
                                now: float) -> bool:
        """Pull every service that has a stale entry (once each); True when something was pulled."""
        stale: set[str] = set()
        ttl = self.cache.ttl
        cutoff = now - ttl
        for spec in specs:
            if spec.service in stale or not spec.enabled:
                continue
            entry = entries.get(spec.device_id)
            if entry is not None and ttl > 0 and entry.stored_at > cutoff:
                continue
            client = self.clients.get(spec.service)
            if client is None or client.down_reason:
                continue
            synced = client.last_sync
            if synced is not None and self.cache.ttl > 0 and time.time() - synced < self.cache.ttl:
                continue  # pulled within the TTL already: that is as fresh as this device gets
            stale.add(spec.service)
        for service in stale:
            try:
                self.clients[service].resync()
                self.cache.record_refresh(True)
            except (HandlerUnavailable, HandlerReplyError):
                self.cache.record_refresh(False)
        return bool(stale)

    def _view(self, spec: DeviceSpec, include_state: bool, cache: str | None = None) -> dict[str, Any]:
        availability = self.registry.availability(spec.device_id)
        view: dict[str, Any] = {**self._static[spec.device_id], "online": availability.online,
                                "last_seen": availability.last_seen, "reason": availability.reason}
        if include_state:
            entries, now = {spec.device_id: self.cache.peek(spec.device_id)}, self.cache.clock()
            self._add_state(view, entries[spec.device_id], now)
        if cache is not None:
            view["cache"] = cache
        return view

    @staticmethod
    def _add_state(view: dict[str, Any], entry: CacheEntry | None, now: float) -> None:
        # Entries are never changed in place (a write stores a new dict): no copy needed.
        if entry is None:
            view["state"], view["state_age_s"] = {}, None
        else:
            view["state"], view["state_age_s"] = entry.state, round(max(0.0, now - entry.stored_at), 3)

    def force_refresh(self, device_id: str) -> dict[str, Any]:
        return self.device_view(device_id, fresh=True)

    # -- groups

    def group_views(self) -> list[dict[str, Any]]:
        groups = []
        for group in self.registry.groups():
            members = [{"device_id": d, "type": self.registry.spec(d).type,
                        "enabled": self.registry.spec(d).enabled,
                        "online": self.registry.availability(d).online} for d in group.devices]
            groups.append({"group_id": group.group_id, "name": group.name, "devices": list(group.devices),
                           "online": sum(1 for m in members if m["online"]), "members": members})
        return groups

    # -- commands

    def command(self, device_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        return self.router.send(device_id, body)

    def group_command(self, group_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        return self.router.send_group(group_id, body)

    # -- the instance as a whole

    def health(self) -> tuple[int, dict[str, Any]]:
        """Each service's condition (probed now, in parallel) and the aggregator's own.

        200 while the aggregator can serve at least one live device (or owns none); 503 when
        every service that owns enabled devices is down — then nothing it says is current. An
        absent service (``service not running``) makes the status ``degraded``, not 503.
        ``reasons`` names every service that is not ``ok`` (a port held by another instance's
        service reads as the sentence saying so).
        """
        probes = {name: self._pool.submit(client.health) for name, client in self.clients.items()}
        services: dict[str, Any] = {}
        counts_by_service: dict[str, list[int]] = {}
        availability = self.registry.all_availability()
        for spec in self.registry.specs():
            counts = counts_by_service.setdefault(spec.service, [0, 0, 0])
            counts[0] += 1
            counts[1] += int(spec.enabled)
            counts[2] += int(availability[spec.device_id].online)
        for name, future in probes.items():
            probe = future.result()
            client = self.clients[name]
            total, enabled, online = counts_by_service.get(name, [0, 0, 0])
            status = probe["status"] if probe["status"] != "down" else probe["reason"]
            services[name] = {"status": status, "url": client.url, "stream": client.stream_connected,
                              "devices": total, "online": online,
                              **({"detail": probe["detail"]} if probe.get("detail") else {})}
        owning = [n for n in services if counts_by_service.get(n, [0, 0])[1]]
        alive = [n for n in owning if services[n]["status"] in ("ok", "degraded")]
        # A paused automation degrades the instance but never takes it down: the aggregator serves on.
        all_ok = all(s["status"] == "ok" for s in services.values()) and not self.automations.paused
        code = 200 if alive or not owning else 503
        body = {"status": "ok" if all_ok else "degraded" if code == 200 else "down",
                "service": SERVICE, "instance_id": self.settings.instance_id,
                **self.registry.counts(), "services": services,
                **({"automations": self.automations.statuses()} if self.automations.by_id else {}),
                "events": self.publisher.stats(),
                # The bridge's broker link, as the bridge reports it (it has no port of its own);
                # said here, never counted in the aggregator's own status.
                "mqtt": broker_link(self.settings.run_dir)}
        if code == 503:
            body["reasons"] = [f"{n}: {services[n]['status']}" for n in owning]
        elif failing := [f"{n}: {s['status']}" for n, s in services.items() if s["status"] != "ok"]:
            body["reasons"] = failing
        return code, body

    def overview(self) -> dict[str, Any]:
        """Everything the status page shows besides the devices, in one answer: ``/health``'s
        body (services, automations, the broker link and outbox) plus each board as the serial
        handler reports it (``GET /boards``) and each endpoint as the HTTP poller does
        (``GET /endpoints``); a handler that cannot be asked gives ``<key>_error`` instead."""
        fetches = {key: self._pool.submit(self.clients[service].get, f"/{key}")
                   for key, service in OVERVIEW_LISTS.items()
                   if service in self.clients and self.registry.owned_by(service)}
        code, body = self.health()
        for key, future in fetches.items():
            try:
                body[key] = future.result().get(key, [])
            except HandlerUnavailable as exc:
                body[f"{key}_error"] = f"{exc.service}: {exc.reason}"
            except HandlerReplyError as exc:
                body[f"{key}_error"] = f"{exc.service} answered HTTP {exc.status} {exc.body.get('error', '')}".strip()
        token = self.settings.api_token
        body["api_token"] = {"where": None if token is None else token.where}
        body["history"] = self.history.stats()
        body["http_status"] = code
        return body

    def history_of(self, device_id: str, since: float | None, most: int | None = None) -> dict[str, Any]:
        """One device's recent readings (UnknownDevice for an id not configured)."""
        self.registry.spec(device_id)
        points = self.history.points(device_id, since)
        return {"device_id": device_id, **self.history.describe(device_id),
                "resolution_s": self.history.resolution_s,
                "points": thin(points, most) if most else points}

    def histories(self, since: float | None, most: int | None = None) -> dict[str, Any]:
        """Every device with a reading: ``{device_id: {"property", "unit", "points"}}``."""
        devices = {}
        for spec in self.registry.specs():
            about = self.history.describe(spec.device_id)
            if about["property"] is None:
                continue
            points = self.history.points(spec.device_id, since)
            devices[spec.device_id] = {**about, "points": thin(points, most) if most else points}
        return {"resolution_s": self.history.resolution_s, "devices": devices}

    def errors(self) -> list[dict[str, Any]]:
        """The aggregator's own errors and every reachable handler's, each tagged with its
        source, oldest first."""
        fetches = {name: self._pool.submit(client.errors) for name, client in self.clients.items()
                   if not client.down_reason}
        records = list(self.error_log.list())
        for name, future in fetches.items():
            try:
                records.extend({**r, "source": r.get("source") or name, "service": name}
                               for r in future.result() if isinstance(r, dict))
            except (HandlerUnavailable, HandlerReplyError) as exc:
                records.append({"timestamp": now_iso(), "source": SERVICE, "service": name,
                                "error_code": "UNREACHABLE", "message": f"could not read {name} /errors: {exc}",
                                "severity": "warning"})
        return sorted(records, key=lambda r: str(r.get("timestamp", "")))

    def cache_stats(self) -> dict[str, Any]:
        return {**self.cache.stats(),
                "streams": {name: c.stream_stats() for name, c in self.clients.items()},
                "events_ignored": self.events_ignored}
