"""``Recommender``: the loaded model and the predictions made with it.

The model is loaded in a thread of its own at start, so the service answers (``/health`` 503
"loading") while torch imports and, on a first start, while the default weights are trained.
A file that is missing is created with the default weights, and so is replaced a file holding
the default weights of a version with other inputs (the registry's automation inputs changed);
any other file that exists but cannot be used is never overwritten (it may be someone's own
model): the service stays up, ``/health`` says why, and predictions answer
``MODEL_UNAVAILABLE`` until the file is fixed and reloaded.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.config import MlSettings
from shared.sse import now_iso

from .inputs import WindowInputs, features
from .learning import calibrate
from .model import LoadedModel, ModelFileError, OutdatedDefault, load_model
from .train import write_default

log = logging.getLogger(__name__)

LOADING, TRAINING, READY, FAILED = "loading", "training default weights", "ready", "failed"


class ModelUnavailable(Exception):
    """No usable model right now; ``reason`` says why (loading, training, a broken file)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Recommendation:
    position: float
    confidence: float
    model: str

    def to_dict(self) -> dict[str, Any]:
        return {"position": round(self.position, 1), "confidence": round(self.confidence, 3), "model": self.model}


class Recommender:
    def __init__(self, ml: MlSettings, on_problem: Callable[[str, str], None] | None = None) -> None:
        self.ml = ml
        self._on_problem = on_problem
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._status = LOADING
        self._reason: str | None = None
        self._loaded_at: str | None = None
        self._created_default = False
        self.predictions = 0
        torch.set_num_threads(ml.threads)

    # -- loading

    def start(self) -> Recommender:
        threading.Thread(target=self.load, name="model load", daemon=True).start()
        return self

    def load(self) -> None:
        """(Re)load the model file, creating it with the default weights when it is missing.
        A broken file leaves the previous model in use, if there was one, and says why."""
        path = self.ml.model_path
        try:
            if not path.exists():
                self._create_default(path, "is missing")
            try:
                loaded = load_model(path)
            except OutdatedDefault as exc:
                # Our own default weights from before an automation input was added: replaced,
                # as a missing file would be (a model of anyone else's is never touched).
                log.warning("%s; replacing them with this version's default weights", exc)
                self._create_default(path, "holds the default weights of another version")
                loaded = load_model(path)
        except (ModelFileError, OSError) as exc:
            reason = str(exc)
            with self._lock:
                keep = self._loaded is not None
                self._status, self._reason = (READY if keep else FAILED), reason
            log.error("model: %s%s", reason, " (still using the previous model)" if keep else "")
            if self._on_problem is not None:
                self._on_problem("MODEL_INVALID", reason)
            return
        with self._lock:
            self._loaded, self._status, self._reason, self._loaded_at = loaded, READY, None, now_iso()
        log.info("model %s loaded from %s", loaded.version, path)

    def _create_default(self, path: Path, why: str) -> None:
        """The default weights into ``path``: the image's copy if it fits, else trained here."""
        if self._copy_bundled(path):
            try:
                load_model(path)
                self._created_default = True
                return
            except ModelFileError as exc:  # an image built before the registry changed
                log.warning("the bundled default weights do not fit: %s", exc)
        self._set_status(TRAINING, f"{path} {why}: training the default weights")
        log.info("model file %s %s: training the default weights", path, why)
        sha256, _ = write_default(path)
        self._created_default = True
        log.info("wrote default model %s (sha256 %s)", path, sha256[:12])

    def _copy_bundled(self, path: Path) -> bool:
        """The image's default weights into a missing model file: what training would write
        (the same seed), without the seconds (minutes on a small board) it takes."""
        bundled = self.ml.bundled_model
        if bundled is None or not bundled.is_file():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        shutil.copyfile(bundled, temporary)
        os.replace(temporary, path)  # never a half-written model file
        log.info("model file %s was missing: copied the default weights from %s", path, bundled)
        return True

    def _set_status(self, status: str, reason: str | None) -> None:
        with self._lock:
            self._status, self._reason = status, reason

    def current(self) -> LoadedModel | None:
        return self._loaded

    def use(self, loaded: LoadedModel, reason: str | None = None) -> None:
        """Serve ``loaded`` from now on (a version the learner activated, already checked);
        ``reason``: why the model file itself was not used, when it was not."""
        with self._lock:
            self._loaded, self._status, self._reason, self._loaded_at = loaded, READY, reason, now_iso()
        log.info("model %s in use", loaded.version)

    # -- state

    @property
    def ready(self) -> bool:
        return self._loaded is not None

    def health(self) -> tuple[bool, str]:
        with self._lock:
            if self._loaded is not None and self._reason is None:
                return True, f"{self._loaded.version} loaded"
            if self._loaded is not None:
                return True, f"{self._loaded.version} in use; the file on disk was refused: {self._reason}"
            return False, f"{self._status}: {self._reason}" if self._reason else self._status

    def info(self) -> dict[str, Any]:
        """What ``GET /model`` shows."""
        with self._lock:
            loaded, status, reason, loaded_at = self._loaded, self._status, self._reason, self._loaded_at
        info: dict[str, Any] = {"status": status, "reason": reason, "path": str(self.ml.model_path),
                                "threads": self.ml.threads, "confidence_threshold": self.ml.confidence_threshold,
                                "predictions": self.predictions}
        if loaded is not None:
            parameters = sum(p.numel() for p in loaded.model.parameters())
            info.update(model=loaded.version, sha256=loaded.sha256, loaded_at=loaded_at, parameters=parameters,
                        created_default=self._created_default, trained=loaded.trained)
        return info

    # -- predictions

    def predict(self, batch: Sequence[WindowInputs]) -> tuple[list[Recommendation], float]:
        """One forward pass for the whole batch: the recommendations and the time taken (ms)."""
        loaded = self._loaded
        if loaded is None:
            _, detail = self.health()
            raise ModelUnavailable(detail)
        started = time.perf_counter()
        x = torch.tensor([features(inputs) for inputs in batch], dtype=torch.float32)
        with torch.inference_mode():
            positions, confidences = loaded.model(x)
        table = loaded.trained.get("calibration")  # a learnt version's confidence calibration (learning.py)
        results = [Recommendation(float(p), calibrate(float(c), table), loaded.version)
                   for p, c in zip(positions.tolist(), confidences.tolist(), strict=True)]
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        with self._lock:
            self.predictions += len(results)
        return results, elapsed_ms
