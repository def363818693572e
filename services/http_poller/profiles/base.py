"""What every HTTP device profile is: a small class that reads an endpoint and, when its dialect
allows, commands it (in the manner of mqtt-io's sensor modules).

A profile declares its ``name`` (the ``profile`` of ``config.http_endpoints``), what ``key`` means
for it, and which device types it can command. ``read()`` makes the requests one poll needs and
returns a :class:`Reading` per device; a failure of the whole endpoint (no answer, an error
status, garbage) is raised as ``EndpointFailure`` and takes every device of the endpoint offline.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shared.commands import UNSUPPORTED, CommandError
from shared.config import DeviceSpec

from ..fetch import BAD_PAYLOAD, KEY_MISSING, EndpointClient
from ..values import BadValue, state_from


@dataclass
class Reading:
    """What one poll learned about one device: new state properties (none when the device had
    no reading this time), or the problem that keeps this device, and only it, offline."""

    state: dict[str, Any] = field(default_factory=dict)
    problem: tuple[str, str] | None = None  # (error code, reason)

    @classmethod
    def of(cls, device_type: str, raw: Any) -> Reading:
        try:
            return cls(state_from(device_type, raw))
        except BadValue as exc:
            return cls(problem=(BAD_PAYLOAD, str(exc)))

    @classmethod
    def missing(cls, reason: str) -> Reading:
        return cls(problem=(KEY_MISSING, reason))

    @classmethod
    def bad(cls, reason: str) -> Reading:
        return cls(problem=(BAD_PAYLOAD, reason))


def key_of(device: DeviceSpec) -> str:
    """The device's ``source.key`` (the config loader defaults it to the device type)."""
    return device.key or device.type


class Profile:
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    key_help: ClassVar[str] = ""
    command_types: ClassVar[frozenset[str]] = frozenset()
    """Device types this profile can command."""

    def __init__(self, client: EndpointClient) -> None:
        self.client = client

    def read(self, devices: Sequence[DeviceSpec]) -> dict[str, Reading]:
        raise NotImplementedError

    def command(self, device: DeviceSpec, values: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Carry out normalised ``values`` (shared.devices rules already applied); returns the
        device's new state properties. ``CommandError`` or ``EndpointFailure`` when it fails."""
        raise self.unsupported(device)

    def unsupported(self, device: DeviceSpec, what: str = "") -> CommandError:
        takes = ", ".join(sorted(self.command_types)) or "no device type"
        detail = what or f"{device.type} devices"
        return CommandError(UNSUPPORTED, f"the {self.name} profile cannot command {detail} "
                                         f"(it commands {takes})")
