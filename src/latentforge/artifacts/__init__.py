"""The one on-disk format for everything latentforge saves: a directory with a JSON manifest
(format version, package version, the settings, the weights' SHA-256) and a safetensors file, plus
``history.csv`` and ``metrics.json`` for models. No pickle: loading never executes code.

Kinds: ``model`` (``model.json`` + ``weights.safetensors``), ``sae`` (a sparse autoencoder,
``sae.json`` + ``weights.safetensors``), ``alignment``
(``alignment.json`` + ``alignment.safetensors``) and ``checkpoint`` (a training run's whole state,
``checkpoint.json`` + ``checkpoint.safetensors``, see :mod:`latentforge.train.checkpoint`). Writes are atomic: everything goes to a
temporary sibling directory that is renamed into place only when complete, so an interrupted save
never leaves a directory that loads.

Format versions: 1 (latentforge 0.1; model.json repeated the model and training settings under
``estimator``), 2 (each setting stored once: ``model``, ``train``, ``estimator`` hold disjoint
settings). The loader reads both; the estimator translates version 1.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ..errors import ArtifactError
from .._version import __version__
from ..fsutil import atomic_directory

FORMAT_VERSION = 2
#: manifest file, weights file and required manifest keys of each kind of artifact
KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "model": ("model.json", "weights.safetensors", ("format_version", "package_version", "model", "preprocessing",
                                                   "weights_sha256")),
    "alignment": ("alignment.json", "alignment.safetensors", ("format_version", "method", "weights_sha256")),
    "checkpoint": ("checkpoint.json", "checkpoint.safetensors", ("format_version", "position", "weights_sha256")),
    "sae": ("sae.json", "weights.safetensors", ("format_version", "package_version", "architecture", "module",
                                               "weights_sha256")),
}
#: kinds saved with their training history (history.csv) and metrics (metrics.json)
TRAINED_KINDS = ("model", "sae")


@dataclass
class Artifact:
    """What one artifact directory holds: the manifest's settings, the tensors and, for models,
    the training history and metrics."""

    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    kind: str = "model"


def _write_history(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def manifest_name(kind: str) -> str:
    """The manifest file that marks a directory as an artifact of ``kind``."""
    return KINDS[kind][0]


def save_artifact(path: str | Path, artifact: Artifact) -> Path:
    """Save atomically. The manifest gains the format version, the kind and the weights' checksum."""
    manifest, weights_name, _ = KINDS[artifact.kind]
    weights = save_safetensors({k: v.detach().cpu().contiguous() for k, v in artifact.tensors.items()})
    config = {"format_version": FORMAT_VERSION, "package_version": __version__, "kind": artifact.kind,
              **artifact.config, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    files = {manifest: json.dumps(config, indent=2).encode(), weights_name: weights}
    if artifact.kind in TRAINED_KINDS:
        files["history.csv"] = _write_history(artifact.history).encode()
        files["metrics.json"] = json.dumps(artifact.metrics, indent=2).encode()
    with atomic_directory(path, marker=manifest) as tmp:
        for name, data in files.items():
            _fsync_write(tmp / name, data)
    return Path(path)


def load_artifact(path: str | Path, kind: str = "model") -> Artifact:
    """Load and verify an artifact directory; every failure is an ArtifactError naming the problem."""
    path = Path(path)
    manifest, weights_name, required = KINDS[kind]
    if not path.is_dir():
        raise ArtifactError(f"no {kind} directory at {path}.")
    config_file = path / manifest
    if not config_file.is_file():
        other = next((k for k, (m, _, _) in KINDS.items() if k != kind and (path / m).is_file()), None)
        if other is not None:
            raise ArtifactError(f"{path} is {_article(other)} {other} directory, not {_article(kind)} {kind}.")
        raise ArtifactError(f"{path} is not a latentforge {kind}: {manifest} is missing.")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{config_file} is not valid JSON ({exc}).") from None
    if not isinstance(config, dict):
        raise ArtifactError(f"{config_file} does not hold a JSON object.")
    if config.get("kind", "model") != kind:  # version-1 models have no kind
        raise ArtifactError(f"{config_file} does not describe {_article(kind)} {kind}.")
    missing = [k for k in required if k not in config]
    if missing:
        raise ArtifactError(f"{config_file} lacks the key(s) {', '.join(missing)}.")
    version = config["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ArtifactError(f"{config_file} has the format_version {version!r}; a latentforge {kind} has a "
                            f"whole number from 1 to {FORMAT_VERSION} there.")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path} was saved in format version {version}, newer than this latentforge reads "
            f"({FORMAT_VERSION}); upgrade latentforge to load it.")
    weights_file = path / weights_name
    if not weights_file.is_file():
        raise ArtifactError(f"{path} lacks {weights_name}.")
    raw = weights_file.read_bytes()
    if not isinstance(config["weights_sha256"], str) or hashlib.sha256(raw).hexdigest() != config["weights_sha256"]:
        raise ArtifactError(f"{weights_file} is corrupted or truncated (its checksum does not match {manifest}).")
    try:
        tensors = load_safetensors(raw)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{weights_file} cannot be read ({exc}).") from None
    history: list[dict[str, Any]] = []
    if (path / "history.csv").is_file():
        history = list(csv.DictReader(io.StringIO((path / "history.csv").read_text())))
    metrics: dict[str, Any] = {}
    if (path / "metrics.json").is_file():
        try:
            metrics = json.loads((path / "metrics.json").read_text())
        except json.JSONDecodeError:
            raise ArtifactError(f"{path / 'metrics.json'} is not valid JSON.") from None
    return Artifact(config, tensors, history, metrics, kind)


# -- nested state (optimizer, scheduler, RNG) without pickle -----------------------------------
def encode_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """A JSON-ready copy of a nested state (dicts, lists, numbers, strings, tensors): every tensor
    goes to ``tensors`` under a key starting with ``prefix`` and is replaced by ``{"__tensor__": key}``;
    dicts with non-string keys (an optimizer's per-parameter state) are kept as key/value pairs."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: encode_state(v, tensors, prefix) for k, v in obj.items()}
        return {"__items__": [[k, encode_state(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [encode_state(v, tensors, prefix) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def decode_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode_state` (lists stay lists)."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: decode_state(v, tensors) for k, v in obj["__items__"]}
        return {k: decode_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_state(v, tensors) for v in obj]
    return obj
