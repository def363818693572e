"""``WindowModel`` and its file: a state dict with the facts needed to refuse a file that does
not fit (format, version, feature list), written atomically, identified by its SHA-256.

A model file is what ``torch.save`` writes for ``{"format", "version", "features", "hidden",
"trained", "state_dict"}``; a bare ``model.state_dict()`` is accepted too (the features are then
assumed to be this version's). Files are read with ``weights_only=True``: a model file can
never run code.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .inputs import FEATURES

FORMAT = "sensor-hub/window-model"
VERSION = 1
HIDDEN = 32


class WindowModel(nn.Module):
    """Features (inputs.FEATURES) -> (opening 0..100 %, confidence 0..1).

    Two small hidden layers; two sigmoid heads. The confidence head learns how clear-cut the
    teacher's answer is for such inputs (rule.py), so it is low near a threshold or when an
    input that matters is unknown."""

    def __init__(self, features: int = len(FEATURES), hidden: int = HIDDEN) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.Tanh(),
                                  nn.Linear(hidden, hidden), nn.Tanh())
        self.position = nn.Linear(hidden, 1)
        self.confidence = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x)
        position = 100.0 * torch.sigmoid(self.position(hidden)).squeeze(-1)
        confidence = torch.sigmoid(self.confidence(hidden)).squeeze(-1)
        return position, confidence


class ModelFileError(Exception):
    """The model file cannot be used; the message says why and what to do."""


class OutdatedDefault(ModelFileError):
    """The file holds the default weights of another version, trained on other features (a device
    type's automation input was added since): the service may replace it with its own default."""


DEFAULT_TEACHER = "comfort rule"
"""How train.py's facts name the teacher of the default weights (a model of your own says otherwise)."""


@dataclass(frozen=True)
class LoadedModel:
    model: WindowModel
    path: Path
    sha256: str
    trained: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """What every prediction names: the format version and the first 12 hex of the file's hash."""
        return f"window-v{VERSION}:{self.sha256[:12]}"


def save_model(model: WindowModel, path: Path, trained: dict[str, Any] | None = None) -> str:
    """Write ``model`` to ``path`` atomically (a reader sees the old file or the new one, never
    half of one); returns the file's SHA-256."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, "features": list(FEATURES),
                "hidden": model.position.in_features, "trained": dict(trained or {}),
                "state_dict": model.state_dict()}, buffer)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def load_model(path: Path) -> LoadedModel:
    """The model in ``path``, checked to fit, in eval mode; or :class:`ModelFileError`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror}") from None
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        text = str(exc)
        if "Unsupported global" in text:
            raise ModelFileError(f"model file {path} holds Python objects besides tensors, which a model file may "
                                 "not (it could run code when loaded); save model.state_dict()") from None
        # torch's message is a page of advice; the cause is the line after "WeightsUnpickler error:".
        cause = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n")[0] if "WeightsUnpickler error:" \
            in text else _short(exc)
        raise ModelFileError(f"model file {path} is not a readable torch file ({cause or type(exc).__name__}); "
                             "replace it, or delete it to get the default weights") from None
    state, hidden, trained = _unwrap(content, path)
    model = WindowModel(hidden=hidden)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, KeyError) as exc:
        raise ModelFileError(f"model file {path} does not fit WindowModel ({_short(exc)})") from None
    model.eval()
    with torch.inference_mode():
        position, confidence = model(torch.zeros(1, len(FEATURES)))
    if not (torch.isfinite(position).all() and torch.isfinite(confidence).all()):
        raise ModelFileError(f"model file {path} holds weights that give non-finite outputs")
    return LoadedModel(model, path, sha256, trained)


def _unwrap(content: Any, path: Path) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """The state dict, hidden size and training facts of a file's content."""
    if isinstance(content, dict) and "state_dict" in content:
        if content.get("format") != FORMAT:
            raise ModelFileError(f"model file {path} is not a window model (format {content.get('format')!r}, "
                                 f"expected {FORMAT!r})")
        if content.get("version") != VERSION:
            raise ModelFileError(f"model file {path} is version {content.get('version')!r}; this service "
                                 f"reads version {VERSION}")
        if list(content.get("features") or []) != list(FEATURES):
            trained = content.get("trained") if isinstance(content.get("trained"), dict) else {}
            default = str(trained.get("teacher", "")).startswith(DEFAULT_TEACHER)
            error = OutdatedDefault if default else ModelFileError
            raise error(f"model file {path} was trained on the features {content.get('features')}, "
                        f"this service encodes {list(FEATURES)}")
        state, trained = content["state_dict"], content.get("trained") or {}
    elif isinstance(content, dict) and content and all(isinstance(v, torch.Tensor) for v in content.values()):
        state, trained = content, {}
    else:
        raise ModelFileError(f"model file {path} holds {type(content).__name__}, not a window model state dict")
    if not isinstance(state, dict) or not isinstance(state.get("position.weight"), torch.Tensor):
        raise ModelFileError(f"model file {path} does not fit WindowModel (no position head)")
    hidden = int(state["position.weight"].shape[-1])
    return state, hidden, trained if isinstance(trained, dict) else {}


def _short(exc: BaseException) -> str:
    """The first sentence of an exception's message (torch's go on with pages of advice)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.split(". ", 1)[0]
    return text if len(text) <= 240 else text[:237] + "..."
