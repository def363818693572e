"""``Learner``: corrections in, versions out, off the request path (docs/automation.md, "Learning").

One background thread of the worker trains; predictions keep being served by the model in use
until a candidate passes its gate (learning.train_candidate) and is swapped in whole. An update
starts when ``train_after`` corrections came in since the last one, or on demand (``POST
/train``). Training runs on one torch thread, so it takes one core at most.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared.errors import Conflict, NotFound

from . import learning
from .corrections import CorrectionStore, why_not_a_correction
from .model import ModelFileError
from .recommender import Recommender
from .versions import ACCEPTED, REJECTED, ModelVersion, ModelVersions, UnknownVersion, install

log = logging.getLogger(__name__)

TRAIN_AFTER = 10
"""New corrections that start an update by themselves."""


class Learner:
    def __init__(self, data_dir: Path, model_path: Path, recommender: Recommender, *, train_after: int = TRAIN_AFTER,
                 seed: int = learning.SEED, on_trained: Callable[[ModelVersion], None] | None = None,
                 on_synced: Callable[[], None] | None = None) -> None:
        self.model_path = model_path
        self.recommender = recommender
        self.train_after = train_after
        self.seed = seed
        self.store = CorrectionStore(data_dir / "learning" / "corrections.sqlite")
        self.versions = ModelVersions(model_path.parent / "versions")
        self._on_trained = on_trained
        self._on_synced = on_synced  # told when sync() recorded the model in use (the automations' state names it)
        self._cond = threading.Condition()
        self._wanted = False
        self._stopping = False
        self._train_lock = threading.Lock()
        self._trained_upto = self.store.last_id()  # after a restart: only corrections newer than now start one
        self.training = False
        self.updates = 0
        self.last_error: str | None = None
        self.last_update: dict[str, Any] | None = None
        self._synced: str | None = None

    # -- the thread

    def start(self) -> Learner:
        threading.Thread(target=self._run, name="learner", daemon=True).start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _run(self) -> None:
        warm = False
        while not self._stopping:
            self.sync()
            current = self.recommender.current()
            if current is not None and not warm:
                learning.warm_up(current.model, self.seed)
                warm = True
            with self._cond:
                due = self._wanted or self.store.last_id() - self._trained_upto >= self.train_after
                if not due:
                    self._cond.wait(1.0)
                    continue
                self._wanted = False
            if self.recommender.current() is None:
                continue
            try:
                self.train_once()
            except Exception as exc:  # noqa: BLE001 - a failed update must not end the thread
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("model update failed")

    def request(self) -> None:
        with self._cond:
            self._wanted = True
            self._cond.notify_all()

    # -- versions

    def sync(self) -> None:
        """Keep the versions' record and the model in use agreeing: the first model is recorded as
        a version; a model file refused at start falls back to the last active version."""
        loaded = self.recommender.current()
        if loaded is None:
            active = self.versions.active()
            _, detail = self.recommender.health()
            if active is not None and detail.startswith("failed"):
                try:
                    good = self.versions.load(active.version)
                except ModelFileError as exc:
                    log.error("the last active version %s cannot be loaded either: %s", active.version, exc)
                    return
                self.recommender.use(good, reason=f"{detail}; serving the last active version {active.version}")
                self._synced = good.version
            return
        if loaded.version == self._synced:
            return
        try:
            self.versions.get(loaded.version)
        except UnknownVersion:
            self.versions.add_file(loaded, self._judge(loaded.model, raw_ece=not loaded.trained.get("calibration")))
        self.versions.set_active(loaded.version)
        self._synced = loaded.version
        if self._on_synced is not None:
            self._on_synced()

    def _judge(self, model: Any, raw_ece: bool) -> dict[str, Any]:
        corrections = self.store.all()
        _, held = learning.split(corrections)
        judged = learning.judge(model, held, corrections, self.seed, raw_ece)
        return {k: v for k, v in judged.items() if k != "calibration"}

    def train_once(self) -> ModelVersion | None:
        """One update now (in the caller's thread): the new version, active or rejected."""
        with self._train_lock:
            loaded = self.recommender.current()
            if loaded is None:
                return None
            self.sync()
            corrections = self.store.all()
            upto = corrections[-1].id if corrections else 0
            if not corrections:
                self._trained_upto = upto
                return None
            self.training = True
            try:
                root = self.versions.root(loaded.version)
                candidate = learning.train_candidate(loaded.model, corrections,
                                                     root_rule_mae=root.validation.get("rule_mae"), seed=self.seed)
            finally:
                self.training = False
            self._trained_upto = upto
            validation = {k: v for k, v in candidate.validation.items() if k != "calibration"}
            version = self.versions.add_model(
                candidate.model, candidate.facts, parent=loaded.version, samples=candidate.samples,
                status=ACCEPTED if candidate.accepted else REJECTED, reason=candidate.reason,  # active once in use
                validation=validation, training_s=candidate.training_s)
            if not candidate.accepted:
                log.info("candidate %s rejected: %s", version.version, version.reason)
            else:
                self._activate(version.version)
                log.info("candidate %s active (held-out corrections error %s, was %s)", version.version,
                         validation.get("corrections_mae"), validation.get("parent_corrections_mae"))
            recorded = self.versions.get(version.version)
            # The same corrections give the same bytes: the record may be an earlier update's.
            self.last_update = {**recorded.to_dict(), "status": "active" if candidate.accepted else REJECTED,
                                "reason": candidate.reason, "training_s": candidate.training_s,
                                "validation": validation}
            self.updates += 1  # after last_update: a reader that sees the count sees the update
            if self._on_trained is not None:
                self._on_trained(recorded)
            return recorded

    def activate(self, version: str) -> ModelVersion:
        """Roll back (or forward) to ``version``: checked first; a file that fails changes nothing."""
        try:
            self.versions.get(version)
        except UnknownVersion:
            raise NotFound("UNKNOWN_VERSION", f"No model version {version!r}.",
                           known=[v.version for v in self.versions.list()]) from None
        with self._train_lock:
            return self._activate(version)

    def _activate(self, version: str) -> ModelVersion:
        try:
            loaded = self.versions.load(version)
        except ModelFileError as exc:
            raise Conflict("MODEL_INVALID", f"Version {version} cannot be used: {exc}") from None
        install(loaded.path, self.model_path)
        self.recommender.use(replace(loaded, path=self.model_path))
        self._synced = loaded.version
        return self.versions.set_active(version)

    # -- corrections

    def correct(self, body: Mapping[str, Any], automation: Any | None) -> dict[str, Any]:
        """A person's command as a sample. ``automation``: the Automation whose window it is (its
        latest inputs stand in for missing ``inputs``, and the counting rule applies)."""
        sample = dict(body)
        if automation is not None and sample.get("inputs") is None:
            reason = why_not_a_correction(automation.mode, automation.moment, automation.last_move_at,
                                          float(sample.get("at") or time.time()))
            if reason is not None:
                return {"stored": False, "reason": reason}
            sample["inputs"] = automation.moment[2].to_dict()
            sample.setdefault("window", automation.spec.window)
            sample.setdefault("automation", automation.spec.automation_id)
        stored = self.store.add(sample)
        if stored is None:
            return {"stored": False, "reason": "invalid sample (missing or invalid inputs): ignored and counted",
                    "invalid": dict(self.store.invalid)}
        with self._cond:
            self._cond.notify_all()
        return {"stored": True, "correction": stored.to_dict()}

    def info(self) -> dict[str, Any]:
        active = self.versions.active()
        return {"active_version": active.version if active else None,
                "validation": active.validation if active else None,
                "corrections": self.store.count(), "invalid_corrections": dict(self.store.invalid),
                "new_since_update": max(self.store.last_id() - self._trained_upto, 0),
                "train_after": self.train_after, "training": self.training, "updates": self.updates,
                "last_update": self.last_update,
                "last_error": self.last_error}
