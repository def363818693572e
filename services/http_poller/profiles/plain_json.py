"""``json``: any URL that answers JSON (a home-made sensor, a gateway, a script).

One ``GET <url>`` per poll; each device picks its value with ``key``, a dotted path into the
answer (``outdoor.temperature``, ``sensors.0.value``). A number stands for the type's reading
(``{"temperature": v}``), a word like ``"ON"`` for a motion or switch state, and an object gives
the properties it names (``{"battery": 80, "voltage": 3.9}``). It takes no commands: a plain JSON
endpoint has no command dialect.
"""
from __future__ import annotations

from collections.abc import Sequence

from shared.config import DeviceSpec

from ..values import MissingKey, lookup
from .base import Profile, Reading, key_of


class JsonProfile(Profile):
    name = "json"
    title = "any JSON document"
    key_help = "a dotted path into the answer (`outdoor.temperature`, `sensors.0.value`; default: the device type)"

    def read(self, devices: Sequence[DeviceSpec]) -> dict[str, Reading]:
        document = self.client.get_json("")
        readings = {}
        for device in devices:
            try:
                readings[device.device_id] = Reading.of(device.type, lookup(document, key_of(device)))
            except MissingKey as exc:
                readings[device.device_id] = Reading.missing(str(exc))
        return readings
