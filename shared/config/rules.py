"""The cross-field rules: what a JSON Schema cannot express about an instance document.

References between sections, uniqueness, names. One small function per rule, each testable
alone, collected in ``RULES`` in the order their problems are reported. A rule never raises
on a document the schema rejects: it reads the sections through ``InstanceDocument``, which
turns a wrong type into an empty section (the schema's own problems already name it). Rules
read the document with the schema's defaults filled in, so none of them repeats a default.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.config.device_types import DEVICE_TYPES, WINDOW_TYPE, type_for_role
from shared.config.instance_schema import with_defaults
from shared.config.model import DEFAULT_PORTS, SOURCE_OWNERS

UNKNOWN_TYPE = "?"
"""A device whose type the schema rejects: its type is not reported again as a mismatch."""


@dataclass(frozen=True)
class InstanceDocument:
    """An instance document as the rules read it (``read``: defaults filled in), with the names
    it must match."""

    doc: dict[str, Any]
    instance_name: str | None = None
    """INSTANCE_NAME, when known: the instance id must equal it."""
    file_stem: str | None = None
    """The file's name without ``.json``, when read from a file: the instance id must equal it."""

    @classmethod
    def read(cls, doc: dict[str, Any], instance_name: str | None = None,
             file_stem: str | None = None) -> InstanceDocument:
        return cls(with_defaults(doc), instance_name, file_stem)

    @property
    def config(self) -> dict[str, Any]:
        return _mapping(self.doc.get("config"))

    @property
    def devices(self) -> list[Any]:
        return _listed(self.doc.get("devices"))

    @property
    def groups(self) -> list[Any]:
        return _listed(self.doc.get("groups"))

    @property
    def boards(self) -> list[Any]:
        return _listed(self.config.get("serial_ports"))

    @property
    def endpoints(self) -> list[Any]:
        return _listed(self.config.get("http_endpoints"))

    @property
    def automations(self) -> list[Any]:
        return _listed(self.config.get("window_automations"))

    @property
    def services(self) -> dict[str, Any]:
        return _mapping(self.config.get("services"))

    @functools.cached_property
    def device_types(self) -> dict[str, str]:
        """device_id -> type of every configured device (UNKNOWN_TYPE where the type is invalid)."""
        return {d["device_id"]: d["type"] if d.get("type") in DEVICE_TYPES else UNKNOWN_TYPE
                for d in self.devices if isinstance(d, dict) and isinstance(d.get("device_id"), str)}


Rule = Callable[[InstanceDocument], list[str]]
ItemCheck = Callable[[InstanceDocument, int, dict[str, Any]], list[str]]
"""A rule about one entry of a section: (document, index, entry) -> problems."""


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ids(items: list[Any], key: str) -> set[str]:
    return {i[key] for i in items if isinstance(i, dict) and isinstance(i.get(key), str)}


def each(section: str, *checks: ItemCheck) -> Rule:
    """A rule that runs ``checks`` on every entry of ``section`` (an InstanceDocument property),
    entry by entry, so that the problems of one entry stay together."""
    def rule(document: InstanceDocument) -> list[str]:
        return [problem for index, item in enumerate(getattr(document, section)) if isinstance(item, dict)
                for check in checks for problem in check(document, index, item)]
    rule.__name__ = rule.__qualname__ = f"each_{section}"
    return rule


# --------------------------------------------------------------------------- the instance's names


def instance_id_matches_instance_name(document: InstanceDocument) -> list[str]:
    instance_id = document.doc.get("instance_id")
    if isinstance(instance_id, str) and document.instance_name and instance_id != document.instance_name:
        return [f"instance_id: {instance_id!r} does not match INSTANCE_NAME {document.instance_name!r}"]
    return []


def instance_id_matches_file_name(document: InstanceDocument) -> list[str]:
    instance_id = document.doc.get("instance_id")
    if isinstance(instance_id, str) and document.file_stem and instance_id != document.file_stem:
        return [f"instance_id: {instance_id!r} does not match the file name {document.file_stem + '.json'!r}"]
    return []


# --------------------------------------------------------------------------- uniqueness


def _duplicates(items: list[Any], key: str, where: str) -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(key), str):
            continue
        ident = item[key]
        if ident in seen:
            problems.append(f"{where}[{index}].{key}: {ident!r} is a duplicate "
                            f"(already used by {where}[{seen[ident]}])")
        else:
            seen[ident] = index
    return problems


def ids_are_unique(document: InstanceDocument) -> list[str]:
    """Each id names one entry of its section: devices, groups, boards, endpoints, automations."""
    return (_duplicates(document.devices, "device_id", "devices")
            + _duplicates(document.groups, "group_id", "groups")
            + _duplicates(document.boards, "board_id", "config.serial_ports")
            + _duplicates(document.endpoints, "endpoint_id", "config.http_endpoints")
            + _duplicates(document.automations, "automation_id", "config.window_automations"))


def one_board_per_port(document: InstanceDocument) -> list[str]:
    """A serial port can be opened only once."""
    return _duplicates(document.boards, "port", "config.serial_ports")


# --------------------------------------------------------------------------- devices

# The section a source kind points into: (InstanceDocument property, id key, JSON path).
_SOURCE_SECTIONS = {"board": ("boards", "board_id", "config.serial_ports"),
                    "endpoint": ("endpoints", "endpoint_id", "config.http_endpoints"),
                    "automation": ("automations", "automation_id", "config.window_automations")}


def _source(device: dict[str, Any]) -> dict[str, Any] | None:
    source = device.get("source")
    return source if isinstance(source, dict) else None


def _source_kind(source: dict[str, Any]) -> str | None:
    """board, endpoint or automation when the source names exactly one of them."""
    kinds = [k for k in SOURCE_OWNERS if k in source]
    return kinds[0] if len(kinds) == 1 else None


def source_names_one_kind(document: InstanceDocument, index: int, device: dict[str, Any]) -> list[str]:
    source = _source(device)
    kinds = [k for k in SOURCE_OWNERS if k in source] if source else []
    if not source or len(kinds) == 1:  # an empty source is the schema's to report (minProperties)
        return []
    found = " and ".join(kinds) if kinds else "none of them"
    return [f"devices[{index}].source: must name exactly one of board, endpoint or automation (found {found})"]


def source_is_configured(document: InstanceDocument, index: int, device: dict[str, Any]) -> list[str]:
    """The board, endpoint or automation a device names is in its section."""
    source = _source(device)
    kind = _source_kind(source) if source else None
    if kind is None or not isinstance(source[kind], str):
        return []
    section, key, where = _SOURCE_SECTIONS[kind]
    known = _ids(getattr(document, section), key)
    if source[kind] in known:
        return []
    choices = ", ".join(sorted(known)) or "none are configured"
    return [f"devices[{index}].source.{kind}: {source[kind]!r} is not in {where} (known: {choices})"]


def key_only_for_endpoints(document: InstanceDocument, index: int, device: dict[str, Any]) -> list[str]:
    source = _source(device)
    kind = _source_kind(source) if source else None
    if kind is not None and kind != "endpoint" and "key" in source:
        return [f"devices[{index}].source.key: only an endpoint source takes a key"]
    return []


# --------------------------------------------------------------------------- groups


def group_members_are_devices(document: InstanceDocument) -> list[str]:
    problems = []
    for gi, group in enumerate(document.groups):
        if not isinstance(group, dict) or not isinstance(group.get("devices"), list):
            continue
        for mi, member in enumerate(group["devices"]):
            if isinstance(member, str) and member not in document.device_types:
                problems.append(f"groups[{gi}].devices[{mi}]: {member!r} is not a configured device")
    return problems


# --------------------------------------------------------------------------- window automations


def _device_of_type(document: InstanceDocument, where: str, ref: str, wanted: str) -> list[str]:
    if ref not in document.device_types:
        return [f"{where}: {ref!r} is not a configured device"]
    found = document.device_types[ref]
    if found not in (wanted, UNKNOWN_TYPE):
        return [f"{where}: {ref!r} is a {found} device, expected a {wanted} device"]
    return []


def window_is_a_window_device(document: InstanceDocument, index: int, automation: dict[str, Any]) -> list[str]:
    window = automation.get("window")
    if not isinstance(window, str):
        return []
    return _device_of_type(document, f"config.window_automations[{index}].window", window, WINDOW_TYPE)


def sensors_fit_their_roles(document: InstanceDocument, index: int, automation: dict[str, Any]) -> list[str]:
    """Each sensor is a configured device of the type its role needs."""
    sensors = automation.get("sensors")
    if not isinstance(sensors, dict):
        return []
    return [problem for role, ref in sensors.items() if isinstance(ref, str)
            for problem in _device_of_type(document, f"config.window_automations[{index}].sensors.{role}", ref,
                                           type_for_role(role))]


def positions_in_order(document: InstanceDocument, index: int, automation: dict[str, Any]) -> list[str]:
    low, high = automation.get("min_position"), automation.get("max_position")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        return [f"config.window_automations[{index}].min_position: {low} is above max_position {high}"]
    return []


# --------------------------------------------------------------------------- services


def service_ports_differ(document: InstanceDocument) -> list[str]:
    """Two services never listen on the same address and port."""
    problems = []
    used: dict[tuple[str, int], str] = {}
    for name in DEFAULT_PORTS:  # in start order, so the later service is the one named
        entry = _mapping(document.services.get(name))
        port, host = entry.get("port"), entry.get("host")
        if isinstance(port, int) and isinstance(host, str):
            if (host, port) in used:
                problems.append(f"config.services.{name}.port: {port} is already used by {used[(host, port)]}")
            used[(host, port)] = name
    return problems


DEVICE_CHECKS: tuple[ItemCheck, ...] = (source_names_one_kind, source_is_configured, key_only_for_endpoints)
AUTOMATION_CHECKS: tuple[ItemCheck, ...] = (window_is_a_window_device, sensors_fit_their_roles, positions_in_order)

RULES: tuple[Rule, ...] = (
    instance_id_matches_instance_name,
    instance_id_matches_file_name,
    ids_are_unique,
    one_board_per_port,
    each("devices", *DEVICE_CHECKS),
    group_members_are_devices,
    each("automations", *AUTOMATION_CHECKS),
    service_ports_differ,
)


def cross_field_problems(doc: dict[str, Any], instance_name: str | None = None,
                         file_stem: str | None = None) -> list[str]:
    """Every rule's problems, in the order of RULES."""
    document = InstanceDocument.read(doc, instance_name, file_stem)
    return [problem for rule in RULES for problem in rule(document)]
