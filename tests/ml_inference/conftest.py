"""Fixtures for ml_inference: the default model trained once per session, and the service
served on loopback with a copy of it."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.ml_inference.app import create_app
from services.ml_inference.service import MlInference
from shared.config import Settings
from testkit.helpers import wait_for
from testkit.served import ServedService
from tests.conftest import Started

AUTOMATION = "living_window_auto"
SWITCH = "living_window_auto_switch"


def install_model(default_model: Path, data_dir: Path) -> Path:
    """Put a copy of the default model where ``config.ml.model_path`` (models/window.pt) points."""
    target = data_dir / "models" / "window.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(default_model, target)
    return target


def with_switch(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Overrides for make_settings: the example instance plus the automation's switch device."""
    from testkit.example import example_document

    devices = example_document()["devices"] + [
        {"device_id": SWITCH, "name": "Living room fresh air", "type": "switch", "source": {"automation": AUTOMATION}}]
    return {"devices": devices, **(extra or {})}


class MlService(ServedService):
    """ml_inference served on loopback, with a follower recording its /events."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service = MlInference(settings)
        super().__init__(create_app(settings, self.service), self.service, settings.api_token)

    def states(self, device_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e.data["state"] for e in self.events if e.kind == "state" and e.data.get("device_id") == device_id]

    def wait_ready(self) -> None:
        wait_for(lambda: self.get("/health").status_code == 200, 60, interval=0.05, message="model loaded")

@pytest.fixture
def ml_service(make_settings: Callable[..., Settings], cleanup: Started, default_model: Path,
               tmp_path: Path) -> Callable[..., MlService]:
    """``start(overrides=None, model=True)``: the service with the example automation and its switch.
    ``model``: True installs the default model, False none (the service creates it), bytes are
    written as the model file."""

    def start(overrides: dict[str, Any] | None = None, model: bool | bytes = True) -> MlService:
        settings = make_settings(with_switch(overrides))
        if model is True:
            install_model(default_model, settings.data_dir)
        elif model:
            settings.ml.model_path.parent.mkdir(parents=True, exist_ok=True)
            settings.ml.model_path.write_bytes(model)
        return cleanup.add(MlService(settings))

    return start
