"""Backward-compatible embeddings: map a new model's codes into an old model's space, so that a
gallery embedded by the old model need not be re-embedded ("backfilled").

Post hoc (:func:`fit_alignment`, :func:`align_models`), from the two models' codes of the same
rows. Every method is one affine map ``T(z) = s · (z − μ_new) W + b``:

- ``"orthogonal"``: orthogonal Procrustes (``scipy.linalg.orthogonal_procrustes``). With
  ``center=True`` both code sets are centred (μ_new, μ_old) and ``b = μ_old``; with
  ``scale=True`` one global factor ``s = Σσ / ‖Z̃_new‖²_F`` (σ the singular values of Z̃_newᵀZ̃_old)
  is fitted, so the map is a similarity: distances in the new space are scaled, never distorted.
  When the widths differ the narrower code set is zero-padded and W keeps the columns that land
  in the old space (orthonormal columns or rows).
- ``"linear"``: least squares with an optional ridge penalty ``ridge · ‖W‖²_F`` (s = 1); the
  best linear fit, but it may distort the new geometry.
- ``"extension"``: as in OCA (orthogonal transformation layer) and BT² (basis transformation),
  the new code is rotated by a full orthogonal matrix: the first ``d_old`` output columns are
  the Procrustes map into the old space, the remaining ``d_new − d_old`` columns span what the
  old space cannot hold, ordered by variance (``extra_dims`` keeps fewer). With all extra
  columns kept, the output is a similarity transform of the new code: new→new retrieval on it
  is exactly new→new retrieval on raw new codes, while its first ``d_old`` columns search an
  old gallery.

Training time (:class:`CompatibilityLoss`): a regularizer for ``Autoencoder(regularizers=...)``
that pulls the first ``d_old`` units of the new model's code towards the old model's code of the
same batch (BCT-style influence loss, with BT²'s extra units left free).

Artifacts (:meth:`Alignment.save`, :func:`load_alignment`): a directory with
``alignment.json`` (method, widths, fit error, the two models' fingerprints) and
``alignment.safetensors`` (W, μ_new, b, s); written atomically. :meth:`Alignment.apply` refuses
a model whose fingerprint is not the one the alignment was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
from ..artifacts import Artifact, load_artifact, save_artifact
from ..errors import ArtifactError, InputError, unknown_name_error
from ..estimator import Autoencoder
from ..validation import as_matrix, same_rows
from ._common import check_fitted, embed_features, features, model_fingerprint, network

METHODS = ("orthogonal", "linear", "extension")


@dataclass
class Alignment:
    """A fitted map from a new model's codes to an old model's space: ``s · (z − mean_new) W + offset``.

    ``transform(Z_new)`` gives ``d_out`` columns; the first ``d_old`` of them live in the old
    space (``extension`` adds the extra ones after them). ``old_fingerprint``/``new_fingerprint``
    identify the models (None when fitted from raw arrays).
    """

    method: str
    W: np.ndarray
    mean_new: np.ndarray
    offset: np.ndarray
    scale: float
    d_old: int
    fit_error: float
    old_fingerprint: str | None = None
    new_fingerprint: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def d_new(self) -> int:
        """Width of the new model's codes."""
        return int(self.W.shape[0])

    @property
    def d_out(self) -> int:
        """Width of the mapped codes: d_old, plus the extra columns of an extension."""
        return int(self.W.shape[1])

    def transform(self, Z_new: np.ndarray, old_space_only: bool = False) -> np.ndarray:
        """New-model codes (n, d_new) → (n, d_out) codes; ``old_space_only`` keeps the first d_old."""
        Z = as_matrix(Z_new, "Z_new")
        if Z.shape[1] != self.d_new:
            raise InputError(f"Z_new has {Z.shape[1]} columns but the alignment was fitted on {self.d_new}-dimensional "
                             f"new codes.")
        out = self.scale * (Z - self.mean_new) @ self.W + self.offset
        return out[:, :self.d_old] if old_space_only else out

    def check_models(self, new_model: Any | None = None, old_model: Any | None = None) -> None:
        """InputError unless the given fitted models are the ones this alignment was fitted on."""
        for role, model, stored in (("new", new_model, self.new_fingerprint), ("old", old_model, self.old_fingerprint)):
            if model is None:
                continue
            if stored is None:
                raise InputError(f"this alignment was fitted on raw codes and records no {role} model; "
                                 f"use transform(Z_new) on codes instead.")
            found = model_fingerprint(model)
            if found != stored:
                raise InputError(f"the {role} model is not the one this alignment was fitted on (fingerprint "
                                 f"{found[:12]} ≠ {stored[:12]}); fit a new alignment with latentforge align.")

    def apply(self, new_model: Any, X: Any, old_model: Any | None = None, old_space_only: bool = False) -> np.ndarray:
        """Embed X with the new model and map the codes to the old space, after checking that the
        new model (and ``old_model`` when given) match the fingerprints stored in the alignment."""
        self.check_models(new_model, old_model)
        return self.transform(embed_features(new_model, features(new_model, X)), old_space_only=old_space_only)

    def save(self, path: str | Path) -> Path:
        """Write ``alignment.json`` and ``alignment.safetensors`` into directory ``path`` atomically
        (the artifact format of :mod:`latentforge.artifacts`)."""
        tensors = {"W": torch.from_numpy(self.W.astype(np.float64)),
                   "mean_new": torch.from_numpy(self.mean_new.astype(np.float64)),
                   "offset": torch.from_numpy(self.offset.astype(np.float64))}
        config = {"method": self.method, "d_old": self.d_old, "d_new": self.d_new, "d_out": self.d_out,
                  "scale": self.scale, "fit_error": self.fit_error, "old_fingerprint": self.old_fingerprint,
                  "new_fingerprint": self.new_fingerprint, "info": self.info}
        return save_artifact(path, Artifact(config, tensors, kind="alignment"))


def load_alignment(path: str | Path) -> Alignment:
    """Load an alignment directory written by :meth:`Alignment.save`; problems are ArtifactErrors."""
    art = load_artifact(path, kind="alignment")
    config, tensors = art.config, art.tensors
    try:
        alignment = Alignment(
            method=config["method"], W=tensors["W"].numpy(), mean_new=tensors["mean_new"].numpy(),
            offset=tensors["offset"].numpy(), scale=float(config["scale"]), d_old=int(config["d_old"]),
            fit_error=float(config["fit_error"]), old_fingerprint=config.get("old_fingerprint"),
            new_fingerprint=config.get("new_fingerprint"), info=dict(config.get("info") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path} does not hold a loadable alignment ({type(exc).__name__}: {exc}).") from None
    if alignment.W.shape != (config.get("d_new"), config.get("d_out")):
        raise ArtifactError(f"{path} holds a {alignment.W.shape} matrix, not the shape its manifest records.")
    return alignment


def _padded(a: np.ndarray, width: int) -> np.ndarray:
    return np.pad(a, ((0, 0), (0, width - a.shape[1])))


def fit_alignment(
    Z_old: np.ndarray, Z_new: np.ndarray, method: str = "orthogonal", *, center: bool = True, scale: bool = True,
    ridge: float = 0.0, extra_dims: int | None = None,
) -> Alignment:
    """Fit a map from ``Z_new`` (n, d_new) to ``Z_old`` (n, d_old): codes of the same n rows.

    ``method``: ``"orthogonal"`` (Procrustes similarity), ``"linear"`` (least squares, ``ridge``
    penalty), ``"extension"`` (Procrustes part + the new code's extra directions, ``extra_dims``
    of them, default all ``d_new - d_old``). ``center`` fits the translation, ``scale`` the global
    scale factor (orthogonal and extension). ``fit_error`` = residual sum of squares in the old
    space / total sum of squares of the centred old codes (0 = exact, 1 = no better than the mean).
    """
    if method not in METHODS:
        raise unknown_name_error("alignment method", method, METHODS)
    old, new = as_matrix(Z_old, "Z_old"), as_matrix(Z_new, "Z_new")
    same_rows(old, new, "Z_old", "Z_new")
    d_old, d_new = old.shape[1], new.shape[1]
    if len(old) < 2:
        raise InputError(f"an alignment needs at least 2 rows of codes, got {len(old)}.")
    if extra_dims is not None and method != "extension":
        raise InputError(f"extra_dims applies to method 'extension' only, not {method!r}.")
    if not (isinstance(ridge, (int, float)) and ridge >= 0):
        raise InputError(f"ridge must be a non-negative number, got {ridge!r}.")
    mu_new = new.mean(0) if center else np.zeros(d_new)
    mu_old = old.mean(0) if center else np.zeros(d_old)
    A, B = new - mu_new, old - mu_old
    s = 1.0
    if method == "linear":
        if ridge > 0:
            W = scipy.linalg.solve(A.T @ A + ridge * np.eye(d_new), A.T @ B, assume_a="pos")
        else:
            W = scipy.linalg.lstsq(A, B)[0]
        offset = mu_old
    else:
        width = max(d_old, d_new)
        R, sigma_sum = scipy.linalg.orthogonal_procrustes(_padded(A, width), _padded(B, width))
        if scale:
            norm = float((A ** 2).sum())
            if norm == 0:
                raise InputError("Z_new is constant over the rows, so no scaled alignment can be fitted.")
            s = float(sigma_sum) / norm
        R = R[:d_new]                                  # rows of the zero padding of Z_new never contribute
        W = R[:, :d_old]
        offset = mu_old
        if method == "extension" and d_new > d_old:
            complement = R[:, d_old:]                   # orthonormal directions the old space cannot hold
            scores = A @ complement
            # order the extra directions by variance so that extra_dims < d_new - d_old keeps the most
            _, _, vt = np.linalg.svd(scores, full_matrices=False)
            keep = d_new - d_old if extra_dims is None else extra_dims
            if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or not 0 <= keep <= d_new - d_old:
                raise InputError(f"extra_dims must be an integer in [0, {d_new - d_old}], got {extra_dims!r}.")
            W = np.concatenate([W, complement @ vt.T[:, :keep]], axis=1)
            offset = np.concatenate([mu_old, np.zeros(keep)])
        elif method == "extension" and extra_dims:
            raise InputError(f"extra_dims={extra_dims} needs a new code wider than the old one "
                             f"({d_new} ≤ {d_old} columns).")
    fitted = s * A @ W[:, :d_old] + mu_old
    total = float(((old - old.mean(0)) ** 2).sum())
    error = float(((fitted - old) ** 2).sum()) / total if total > 0 else 0.0
    return Alignment(method=method, W=W, mean_new=mu_new, offset=offset, scale=s, d_old=d_old, fit_error=error,
                     info={"center": center, "scale": scale, "ridge": float(ridge), "n_rows": len(old)})


def align_models(old_model: Any, new_model: Any, X: Any, method: str = "orthogonal", **options: Any) -> Alignment:
    """Fit an alignment from two fitted models' codes of the same data X and record their
    fingerprints. ``old_model``/``new_model``: fitted estimators or model directories."""
    old = Autoencoder.load(old_model) if isinstance(old_model, (str, Path)) else check_fitted(old_model, "old_model")
    new = Autoencoder.load(new_model) if isinstance(new_model, (str, Path)) else check_fitted(new_model, "new_model")
    Z_old = embed_features(old, features(old, X))
    Z_new = embed_features(new, features(new, X))
    alignment = fit_alignment(Z_old, Z_new, method, **options)
    alignment.old_fingerprint, alignment.new_fingerprint = model_fingerprint(old), model_fingerprint(new)
    alignment.info.update({"old_model": old.model, "new_model": new.model})
    if isinstance(old_model, (str, Path)):
        alignment.info["old_path"] = str(old_model)
    if isinstance(new_model, (str, Path)):
        alignment.info["new_path"] = str(new_model)
    return alignment


def compatible_embedding(new_model: Any, X: Any, alignment: Alignment | str | Path, old_model: Any | None = None,
                         old_space_only: bool = False) -> np.ndarray:
    """Codes of X by ``new_model`` mapped to the old space by ``alignment`` (an Alignment or its
    directory); ``new_model``/``old_model`` may be fitted estimators or model directories, and are
    checked against the alignment's fingerprints (``old_model`` only when given)."""
    if not isinstance(alignment, Alignment):
        alignment = load_alignment(alignment)
    new = Autoencoder.load(new_model) if isinstance(new_model, (str, Path)) else new_model
    old = Autoencoder.load(old_model) if isinstance(old_model, (str, Path)) else old_model
    return alignment.apply(new, X, old_model=old, old_space_only=old_space_only)


class CompatibilityLoss:
    """Training-time backward compatibility: a regularizer for ``Autoencoder(regularizers=...)``.

    Each batch is embedded by the frozen ``old_model`` (a fitted estimator or its model
    directory); the term ``weight · mean‖z_new[:, :d_old] − z_old‖² / mean‖z_old − z̄_old‖²``
    pulls the first d_old units of the new code onto the old code, leaving any extra units free
    (BT²). The normalisation by the old codes' spread makes ``weight`` independent of their scale;
    the reconstruction term it competes with is a log-likelihood summed over features (about 20
    nats per digits image), hence the default weight of 10.
    The new model must be at least as wide as the old one and take the same preprocessed features
    (the same image size, or a table preprocessed identically).
    """

    def __init__(self, old_model: Any, weight: float = 10.0, name: str = "compatibility"):
        if not (isinstance(weight, (int, float)) and weight >= 0):
            raise InputError(f"the compatibility weight must be a non-negative number, got {weight!r}.")
        self.old = Autoencoder.load(old_model) if isinstance(old_model, (str, Path)) else old_model
        self.old_net = network(self.old)
        self.weight, self.name = float(weight), name

    def __call__(self, model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        d_old = self.old_net.latent_dim
        if model.latent_dim < d_old:
            raise InputError(f"the new model's latent_dim ({model.latent_dim}) must be at least the old model's "
                             f"({d_old}) for a compatibility loss.")
        expected = int(np.prod(self.old_net.input_shape))
        if x.shape[1] != expected:
            raise InputError(f"the old model takes {expected} preprocessed features but the batch has {x.shape[1]}; "
                             f"both models must use the same preprocessing.")
        if len(x) < 2:              # no spread to normalise by in a one-row batch: contribute nothing
            return {self.name: x.new_zeros(())}
        self.old_net.to(x.device).eval()
        with torch.no_grad():
            z_old = self.old_net.embed(x)
        z_new = model.embed(x)[:, :d_old]
        spread = (z_old - z_old.mean(0)).pow(2).sum(1).mean().clamp_min(1e-8)
        return {self.name: self.weight * (z_new - z_old).pow(2).sum(1).mean() / spread}
