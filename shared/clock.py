"""Timestamps as the contract wants them: ISO 8601 with the container's local offset.

``datetime.now().astimezone()`` asks the C library for the zone on every call (a stat of
/etc/localtime each time): 6-11 % of a service's CPU at thousands of events a second, in every
program that stamps events. The zone is looked up once a minute instead; around a DST change the
offset shown may be up to a minute late, the instant is always right.
"""
from __future__ import annotations

import time
from datetime import datetime, tzinfo


class LocalZone:
    """The container's local time zone, looked up at most every ``refresh_s`` seconds."""

    def __init__(self, refresh_s: float = 60.0) -> None:
        self.refresh_s = refresh_s
        self._zone: tzinfo | None = None
        self._until = 0.0

    def zone(self) -> tzinfo:
        moment = time.monotonic()
        if self._zone is None or moment >= self._until:
            self._zone = datetime.now().astimezone().tzinfo
            self._until = moment + self.refresh_s
        assert self._zone is not None
        return self._zone

    def now(self) -> datetime:
        return datetime.now(self.zone())


LOCAL_ZONE = LocalZone()


def now_iso() -> str:
    """Now, e.g. ``2026-11-23T14:05:09.123+01:00``."""
    return LOCAL_ZONE.now().isoformat(timespec="milliseconds")


def iso_at(timestamp: float, timespec: str = "milliseconds") -> str:
    """A ``time.time()`` value in the same form."""
    return datetime.fromtimestamp(timestamp, LOCAL_ZONE.zone()).isoformat(timespec=timespec)


def iso(timestamp: float | None) -> str | None:
    """:func:`iso_at`, or None for "never" (a device not yet seen, an endpoint not yet polled)."""
    return None if timestamp is None else iso_at(timestamp)
