"""The IoT2MQTT topic tree (docs/mqtt.md, "Topics"), built and parsed in one place.

Every topic the connector publishes or subscribes to is built here, and every topic it
receives is parsed here, so the contract lives in one module and a typo cannot split it.
"""
from __future__ import annotations

from dataclasses import dataclass

CONTRACT_VERSION = "v1"


@dataclass(frozen=True)
class ParsedTopic:
    """What an incoming topic means.

    ``kind`` is one of ``device_cmd``, ``device_get``, ``group_cmd``, ``meta_request``,
    ``ha_command``, ``ha_status`` or ``unknown``; ``problem`` says why a topic that matched a
    subscription is still not one we accept (extra levels, an empty id).
    """

    kind: str
    device_id: str | None = None
    group_id: str | None = None
    request: str | None = None
    command: str | None = None
    problem: str | None = None


class Topics:
    """Topic names for one instance: ``<base>/v1/instances/<instance>/...``."""

    def __init__(self, base: str, instance_id: str, ha_prefix: str = "homeassistant") -> None:
        self.base = base.rstrip("/")
        self.instance_id = instance_id
        self.ha_prefix = ha_prefix.rstrip("/")
        self.root = f"{self.base}/{CONTRACT_VERSION}/instances/{instance_id}"
        self._root_levels = self.root.split("/")

    # -- published
    @property
    def status(self) -> str:
        return f"{self.root}/status"

    def device(self, device_id: str) -> str:
        return f"{self.root}/devices/{device_id}"

    def state(self, device_id: str) -> str:
        return f"{self.device(device_id)}/state"

    def state_property(self, device_id: str, prop: str) -> str:
        return f"{self.device(device_id)}/state/{prop}"

    def error(self, device_id: str | None = None) -> str:
        """A device's error topic; without a device, the instance's own (an extension of the
        contract table for problems that belong to no device, e.g. a bad meta request)."""
        return f"{self.device(device_id)}/error" if device_id else f"{self.root}/error"

    def events(self, device_id: str) -> str:
        return f"{self.device(device_id)}/events"

    def cmd_response(self, device_id: str) -> str:
        return f"{self.device(device_id)}/cmd/response"

    def group_cmd_response(self, group_id: str) -> str:
        return f"{self.root}/groups/{group_id}/cmd/response"

    @property
    def devices_list(self) -> str:
        return f"{self.root}/meta/devices_list"

    @property
    def info(self) -> str:
        return f"{self.root}/meta/info"

    @property
    def global_events(self) -> str:
        return f"{self.base}/{CONTRACT_VERSION}/global/events"

    # -- Home Assistant
    def ha_command(self, device_id: str, command: str = "set") -> str:
        """Where Home Assistant sends commands for one of our entities (its command_topic)."""
        return f"{self.root}/ha/{device_id}/{command}"

    def ha_state(self, device_id: str) -> str:
        """A state topic in Home Assistant's own shape (the JSON-schema light needs one)."""
        return f"{self.root}/ha/{device_id}/state"

    @property
    def ha_status(self) -> str:
        return f"{self.ha_prefix}/status"

    def ha_config(self, component: str, object_id: str) -> str:
        return f"{self.ha_prefix}/{component}/{object_id}/config"

    # -- subscribed
    def subscriptions(self, ha: bool = False) -> list[str]:
        """Broad filters, so that malformed topics (extra levels) reach us and get an answer
        instead of being silently ignored by the broker's matching.

        No two of them overlap: ``a/#`` already matches ``a`` itself (MQTT 3.1.1 §4.7.1.2), and a
        broker may deliver one copy per matching subscription (§3.3.5; nats-server does), so
        ``cmd`` beside ``cmd/#`` would carry out every command twice."""
        subs = [f"{self.root}/devices/+/cmd/#", f"{self.root}/devices/+/get/#",
                f"{self.root}/groups/+/cmd/#", f"{self.root}/meta/request/#"]
        if ha:
            subs += [f"{self.root}/ha/+/+/#", self.ha_status]
        return subs

    def parse(self, topic: str) -> ParsedTopic:
        if topic == self.ha_status:
            return ParsedTopic("ha_status")
        levels = topic.split("/")
        n = len(self._root_levels)
        if levels[:n] != self._root_levels:
            return ParsedTopic("unknown", problem="not under this instance")
        rest = levels[n:]
        if len(rest) >= 3 and rest[0] == "devices" and rest[2] in ("cmd", "get"):
            kind = "device_cmd" if rest[2] == "cmd" else "device_get"
            if rest[2] == "cmd" and rest[3:] == ["response"]:
                return ParsedTopic("own_publication")  # our own answers, if a broker echoes
            return ParsedTopic(kind, device_id=rest[1], problem=_problem(rest, 3, rest[1]))
        if len(rest) >= 3 and rest[0] == "groups" and rest[2] == "cmd":
            if rest[3:] == ["response"]:
                return ParsedTopic("own_publication")
            return ParsedTopic("group_cmd", group_id=rest[1], problem=_problem(rest, 3, rest[1]))
        if len(rest) >= 3 and rest[:2] == ["meta", "request"]:
            return ParsedTopic("meta_request", request=rest[2], problem=_problem(rest, 3, rest[2]))
        if len(rest) >= 3 and rest[0] == "ha":
            if rest[2] == "state":
                return ParsedTopic("own_publication")
            return ParsedTopic("ha_command", device_id=rest[1], command=rest[2],
                               problem=_problem(rest, 3, rest[1]))
        if len(rest) == 2 and rest[:2] == ["meta", "request"]:
            return ParsedTopic("meta_request", request="", problem="the request type is missing")
        return ParsedTopic("unknown", problem="not a topic of the contract")


def _problem(rest: list[str], expected_len: int, ident: str) -> str | None:
    if not ident:
        return "an empty id level"
    if len(rest) > expected_len:
        extra = "/".join(rest[expected_len:])
        return f"unexpected extra topic levels {extra!r}"
    return None


def global_id(instance_id: str, device_id: str) -> str:
    """The platform-wide id of a device: ``<instance>_<device>``."""
    return f"{instance_id}_{device_id}"
