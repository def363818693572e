"""Simulated network sensors for the HTTP poller: ESPHome, Shelly Gen2, Tasmota, the sensor-hub
firmware's HTTP mode and plain JSON, on loopback (``python -m firmware.emulator.network``)."""
from .model import SimulatedDevice
from .server import NetworkSimulator

__all__ = ["NetworkSimulator", "SimulatedDevice"]
