"""HTTP device profiles, one small module per dialect (docs/http-devices.md)."""
from __future__ import annotations

from .base import Profile, Reading, key_of
from .esphome import EsphomeProfile
from .plain_json import JsonProfile
from .sensor_hub import SensorHubProfile
from .shelly import ShellyProfile
from .tasmota import TasmotaProfile

PROFILES: dict[str, type[Profile]] = {p.name: p for p in (
    EsphomeProfile, ShellyProfile, TasmotaProfile, SensorHubProfile, JsonProfile)}

__all__ = ["PROFILES", "Profile", "Reading", "key_of"]
