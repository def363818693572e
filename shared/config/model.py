"""The settings types: one immutable Settings object and the specs it is made of.

Plain frozen dataclasses, built by build.py from a validated instance document and the
environment; programs read them and never change them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from shared.api_token import ApiToken

CONNECTOR_TYPE = "sensor-hub"
VERSION = "0.1.0"

# Service name -> default port. The order is the start order and the dependency order.
DEFAULT_PORTS = {
    "serial_handler": 5001,
    "http_poller": 5002,
    "state_aggregator": 5003,
    "ml_inference": 5004,
}
# Which service owns a device, by the key its source names.
SOURCE_OWNERS = {"board": "serial_handler", "endpoint": "http_poller", "automation": "ml_inference"}


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
    baudrate: int = 115200
    enabled: bool = True
    silence_timeout: float = 30.0
    command_timeout: float = 3.0
    reconnect_max: float = 30.0
    area: str | None = None


@dataclass(frozen=True)
class EndpointSpec:
    endpoint_id: str
    url: str
    name: str
    profile: str = "json"
    poll_interval: float = 30.0
    timeout: float = 5.0
    enabled: bool = True
    area: str | None = None


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    type: str
    name: str
    service: str
    enabled: bool = True
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
    mode: str = "auto"
    min_change: float = 10.0
    interval: float = 60.0
    min_position: int = 0
    max_position: int = 100
    manual_hold: float = 7200.0


@dataclass(frozen=True)
class MlSettings:
    model_path: Path
    threads: int = 1
    confidence_threshold: float = 0.6
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
    log_level: str = "INFO"
    log_format: str = "human"
    mode: str = "production"
    tz: str | None = None
    app_root: Path = Path(".")
    data_dir: Path = Path("data")
    run_dir: Path = Path("data/run")
    """Files of this run only (supervisord's socket, the bridge's health file): a tmpfs in the
    container, where the root file system may be read-only."""
    instances_dir: Path = Path("instances")
    config_file: Path | None = None
    credentials: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
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
