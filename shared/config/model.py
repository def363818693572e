"""The settings types: one immutable Settings object and the specs it is made of.

Plain frozen dataclasses, built by build.py from a validated instance document and the
environment; programs read them and never change them. A field that the instance file can set
takes its default from the schema (``field_defaults``), never from a number written here, so
that a spec built by hand (tests, tools) matches one built from a file.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.api_token import ApiToken
from shared.config.instance_schema import field_defaults, with_defaults

CONNECTOR_TYPE = "sensor-hub"
VERSION = "0.1.0"

# Service name -> default port, from the schema (config.services). The schema lists the services
# in their start order, which is also their dependency order.
DEFAULT_PORTS: dict[str, int] = {
    name: entry["port"] for name, entry in with_defaults({})["config"]["services"].items()}
# Which service owns a device, by the key its source names.
SOURCE_OWNERS = {"board": "serial_handler", "endpoint": "http_poller", "automation": "ml_inference"}

_DEVICE = field_defaults("devices")
_BOARD = field_defaults("config", "serial_ports")
_ENDPOINT = field_defaults("config", "http_endpoints")
_AUTOMATION = field_defaults("config", "window_automations")
_ML = field_defaults("config", "ml")


@dataclass(frozen=True)
class ServiceAddress:
    name: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        # A wildcard bind is reached through loopback by the programs beside it.
        if self.host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class BoardSpec:
    board_id: str
    port: str
    name: str
    baudrate: int = _BOARD["baudrate"]
    enabled: bool = _BOARD["enabled"]
    silence_timeout: float = float(_BOARD["silence_timeout"])
    command_timeout: float = float(_BOARD["command_timeout"])
    reconnect_max: float = float(_BOARD["reconnect_max"])
    area: str | None = None


@dataclass(frozen=True)
class EndpointSpec:
    endpoint_id: str
    url: str
    name: str
    profile: str = _ENDPOINT["profile"]
    poll_interval: float = float(_ENDPOINT["poll_interval"])
    timeout: float = float(_ENDPOINT["timeout"])
    enabled: bool = _ENDPOINT["enabled"]
    area: str | None = None


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    type: str
    name: str
    service: str
    enabled: bool = _DEVICE["enabled"]
    model: str | None = None
    area: str | None = None
    board: str | None = None
    endpoint: str | None = None
    key: str | None = None
    automation: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def source_id(self) -> str:
        """The board, endpoint or automation the device belongs to."""
        return self.board or self.endpoint or self.automation or ""


@dataclass(frozen=True)
class GroupSpec:
    group_id: str
    name: str
    devices: tuple[str, ...]


@dataclass(frozen=True)
class AutomationSpec:
    automation_id: str
    name: str
    window: str
    sensors: Mapping[str, str]
    mode: str = _AUTOMATION["mode"]
    min_change: float = float(_AUTOMATION["min_change"])
    interval: float = float(_AUTOMATION["interval"])
    min_position: int = _AUTOMATION["min_position"]
    max_position: int = _AUTOMATION["max_position"]
    manual_hold: float = float(_AUTOMATION["manual_hold"])


@dataclass(frozen=True)
class MlSettings:
    model_path: Path
    threads: int = _ML["threads"]
    confidence_threshold: float = float(_ML["confidence_threshold"])
    train_after: int = _ML["train_after"]
    bundled_model: Path | None = None
    """The default weights shipped in the image (``SENSOR_HUB_BUNDLED_MODEL``): copied to a
    missing ``model_path`` instead of training them at start (seconds here, minutes on a Pi)."""


@dataclass(frozen=True)
class TlsSettings:
    ca_file: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class MqttSettings:
    """The broker link. Its defaults are the environment's (env.py reads them from here)."""

    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    base_topic: str = "IoT2mqtt"
    client_prefix: str = "iot2mqtt"
    qos: int = 1
    retain: bool = True
    keepalive: int = 60
    tls: TlsSettings | None = None
    ha_discovery: bool = True
    ha_prefix: str = "homeassistant"

    def client_id(self, instance_id: str, program: str = "") -> str:
        """``<prefix>_<instance>``, suffixed per program so two clients never share an id."""
        base = f"{self.client_prefix}_{instance_id}"
        return f"{base}_{program}" if program else base


@dataclass(frozen=True)
class Settings:
    instance_id: str
    connector_type: str
    friendly_name: str
    enabled: bool
    update_interval: int
    devices: tuple[DeviceSpec, ...]
    groups: tuple[GroupSpec, ...]
    boards: tuple[BoardSpec, ...]
    endpoints: tuple[EndpointSpec, ...]
    automations: tuple[AutomationSpec, ...]
    cache_ttl: float
    services: Mapping[str, ServiceAddress]
    ml: MlSettings
    mqtt: MqttSettings
    # What the environment decides (env.py holds its defaults).
    log_level: str
    log_format: str
    mode: str
    tz: str | None
    app_root: Path
    data_dir: Path
    run_dir: Path
    """Files of this run only (supervisord's socket, the bridge's health file): a tmpfs in the
    container, where the root file system may be read-only."""
    instances_dir: Path
    config_file: Path | None
    credentials: Mapping[str, str] = field(repr=False)
    version: str = VERSION
    api_token: ApiToken | None = field(default=None, repr=False)
    """What state-changing REST calls must carry (shared/api_token.py). ``load_settings`` always
    has one; settings built from a dict have one only if it is given (``SENSOR_HUB_API_TOKEN``),
    and without one the services refuse every state-changing call."""

    def service(self, name: str) -> ServiceAddress:
        try:
            return self.services[name]
        except KeyError:
            raise KeyError(f"unknown service {name!r}; known: {', '.join(self.services)}") from None

    def device(self, device_id: str) -> DeviceSpec:
        for device in self.devices:
            if device.device_id == device_id:
                return device
        raise KeyError(device_id)

    def group(self, group_id: str) -> GroupSpec:
        for group in self.groups:
            if group.group_id == group_id:
                return group
        raise KeyError(group_id)

    def devices_of(self, service: str) -> tuple[DeviceSpec, ...]:
        return tuple(d for d in self.devices if d.service == service)

    def devices_on_board(self, board_id: str) -> tuple[DeviceSpec, ...]:
        return tuple(d for d in self.devices if d.board == board_id)

    def board(self, board_id: str) -> BoardSpec:
        for board in self.boards:
            if board.board_id == board_id:
                return board
        raise KeyError(board_id)

    def endpoint(self, endpoint_id: str) -> EndpointSpec:
        for endpoint in self.endpoints:
            if endpoint.endpoint_id == endpoint_id:
                return endpoint
        raise KeyError(endpoint_id)
