"""``ModelVersions``: every model the service has used or trained, kept with its metadata.

``DATA_DIR/<model dir>/versions/`` holds one file per version (``<sha12>.pt``, what
model.save_model writes) and ``versions.json``: for each version its parent, the corrections
it was trained on, its validation errors, when it was made, and its status — ``active`` (the one
in use; model_path holds the same bytes), ``accepted`` (passed its checks, not in use now) or
``rejected`` with the reason. Nothing is ever deleted here: a rollback can go to any version.

A version file is loaded with model.load_model (weights_only, format, version, features): a
file that fails is refused with the reason and changes nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from shared.sse import now_iso

from .model import VERSION, LoadedModel, ModelFileError, WindowModel, load_model, save_model

ACTIVE, ACCEPTED, REJECTED = "active", "accepted", "rejected"
INDEX = "versions.json"
CHOICES = 20
"""Versions offered to pick from: a select with a long list is no use, and its options travel in
every discovery message and state (the oldest are still there by REST)."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    file: str
    parent: str | None
    samples: int
    created_at: str
    status: str
    reason: str | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    training_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def version_name(sha256: str) -> str:
    return f"window-v{VERSION}:{sha256[:12]}"


class UnknownVersion(KeyError):
    pass


class ModelVersions:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._versions: dict[str, ModelVersion] = self._read()

    def _read(self) -> dict[str, ModelVersion]:
        try:
            data = json.loads((self.directory / INDEX).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # a damaged index: the version files stay; new versions start a new index
        known = set(ModelVersion.__dataclass_fields__)
        return {v["version"]: ModelVersion(**{k: v[k] for k in v if k in known})
                for v in data.get("versions", []) if isinstance(v, dict) and "version" in v}

    def _write(self) -> None:
        data = {"versions": [v.to_dict() for v in self._versions.values()]}
        fd, tmp = tempfile.mkstemp(prefix=f".{INDEX}.", dir=self.directory)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.directory / INDEX)

    # -- reading

    def list(self) -> list[ModelVersion]:
        with self._lock:
            return list(self._versions.values())

    def get(self, version: str) -> ModelVersion:
        with self._lock:
            found = self._versions.get(version)
        if found is None:
            raise UnknownVersion(version)
        return found

    def find(self, label: str) -> ModelVersion:
        """The version named ``label``: its full name, or the ``<sha12>`` after its colon."""
        with self._lock:
            found = self._versions.get(label) or next(
                (v for v in self._versions.values() if v.version.rpartition(":")[2] == label), None)
        if found is None:
            raise UnknownVersion(label)
        return found

    def choices(self, limit: int = CHOICES) -> list[str]:
        """The versions a person may pick (Home Assistant's select): the newest ``limit`` that were
        not rejected, oldest first, and the active one whatever it is (so it is always a choice)."""
        with self._lock:
            kept = [v.version for v in self._versions.values() if v.status != REJECTED]
            active = next((v.version for v in self._versions.values() if v.status == ACTIVE), None)
        chosen = kept[-limit:]
        if active is not None and active not in chosen:
            chosen = [active, *chosen[1:]] if len(chosen) >= limit else [active, *chosen]
        return chosen

    def active(self) -> ModelVersion | None:
        with self._lock:
            return next((v for v in self._versions.values() if v.status == ACTIVE), None)

    def root(self, version: str) -> ModelVersion:
        """The first model of ``version``'s lineage (the rule's model the learning started from)."""
        current = self.get(version)
        seen = {current.version}
        while current.parent and current.parent in self._versions and current.parent not in seen:
            current = self._versions[current.parent]
            seen.add(current.version)
        return current

    def load(self, version: str) -> LoadedModel:
        """The version's model, checked like any model file; :class:`ModelFileError` says why not."""
        return load_model(self.directory / self.get(version).file)

    # -- writing

    def add_model(self, model: WindowModel, trained: dict[str, Any], *, parent: str | None, samples: int,
                  status: str, reason: str | None, validation: dict[str, Any],
                  training_s: float | None = None) -> ModelVersion:
        tmp = self.directory / ".new.pt"
        sha256 = save_model(model, tmp, trained)
        name = version_name(sha256)
        os.replace(tmp, self.directory / f"{sha256[:12]}.pt")
        return self._add(ModelVersion(name, f"{sha256[:12]}.pt", parent, samples, now_iso(), status, reason,
                                      validation, training_s))

    def add_file(self, loaded: LoadedModel, validation: dict[str, Any]) -> ModelVersion:
        """A model that came from outside (the default weights, a file someone put in place)."""
        target = self.directory / f"{loaded.sha256[:12]}.pt"
        if not target.exists():
            shutil.copyfile(loaded.path, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)
        return self._add(ModelVersion(loaded.version, target.name, None, 0, now_iso(), ACCEPTED, None, validation))

    def _add(self, version: ModelVersion) -> ModelVersion:
        with self._lock:
            existing = self._versions.get(version.version)
            if existing is not None:  # the same bytes again (a deterministic retrain): keep the first record
                return existing
            self._versions[version.version] = version
            self._write()
        return version

    def set_active(self, version: str) -> ModelVersion:
        with self._lock:
            if version not in self._versions:
                raise UnknownVersion(version)
            for name, v in list(self._versions.items()):
                if v.status == ACTIVE and name != version:
                    self._versions[name] = replace(v, status=ACCEPTED)
            chosen = self._versions[version]
            # A rejected version a person rolls back to keeps its reason: the record stays true.
            self._versions[version] = replace(chosen, status=ACTIVE)
            self._write()
            return self._versions[version]


def install(loaded_path: Path, model_path: Path) -> None:
    """Copy a version's file to the service's model file atomically (never a half-written file)."""
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = model_path.with_name(f".{model_path.name}.activate")
    shutil.copyfile(loaded_path, tmp)
    os.replace(tmp, model_path)


__all__ = ["ACCEPTED", "ACTIVE", "REJECTED", "ModelFileError", "ModelVersion", "ModelVersions", "UnknownVersion",
           "install", "version_name"]
