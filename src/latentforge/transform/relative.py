"""Relative representations and zero-shot stitching (Moschella et al., "Relative representations
enable zero-shot latent space communication", 2023).

A relative representation describes each code by its similarity to a fixed set of anchor codes,
so it does not change when the latent space is rotated, reflected or rescaled (and, with
``center=True``, translated) — as happens between two trainings of the same model.

Stitching decodes model B's codes with model A's decoder using only "parallel anchors": the same
anchor inputs embedded by both models. ``method="alignment"`` fits an orthogonal Procrustes map
B → A on the anchor codes (:func:`~latentforge.transform.fit_alignment`). ``method="relative"``
passes only B's relative representation r (cosines to B's anchors) and its norm relative to the
anchors' mean norm; in A's space the direction u solving ``Â u ≈ r`` by least squares (Â: A's
centred anchors, unit rows) is rescaled to that relative norm. No training is involved in either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError, unknown_name_error
from ..evaluate import reconstruction_mse
from ..validation import as_matrix
from ._common import check_fitted, decode_features, embed_features, features
from .alignment import fit_alignment

KINDS = ("cosine", "linear", "euclidean")
STITCH_METHODS = ("alignment", "relative")


def relative_representation(Z: np.ndarray, anchors: np.ndarray, kind: str = "cosine", center: bool = True) -> np.ndarray:
    """Codes Z (n, d) described by their similarity to anchor codes (k, d): an (n, k) array.

    ``kind``: ``"cosine"`` (cosine similarity; invariant to rotations, reflections and isotropic
    scaling of the space), ``"linear"`` (dot product; rotation-invariant only), ``"euclidean"``
    (minus the distance divided by the anchors' mean distance to their centroid; invariant to
    rotations and scaling). ``center=True`` first subtracts the anchors' mean from Z and the
    anchors, adding invariance to translations.
    """
    if kind not in KINDS:
        raise unknown_name_error("relative representation kind", kind, KINDS)
    Z, A = as_matrix(Z, "Z"), as_matrix(anchors, "anchors")
    if A.shape[1] != Z.shape[1]:
        raise InputError(f"the anchors have {A.shape[1]} dimensions but the codes have {Z.shape[1]}; "
                         f"anchors must be codes from the same space.")
    if center:
        mu = A.mean(0)
        Z, A = Z - mu, A - mu
    if kind == "linear":
        return Z @ A.T
    if kind == "euclidean":
        radius = np.linalg.norm(A, axis=1).mean() if center else np.linalg.norm(A - A.mean(0), axis=1).mean()
        if radius == 0:
            raise InputError("all anchors are the same code, so euclidean relative codes are undefined.")
        from scipy.spatial.distance import cdist

        return -cdist(Z, A) / radius
    na, nz = np.linalg.norm(A, axis=1), np.linalg.norm(Z, axis=1)
    if (na == 0).any():
        raise InputError("an anchor is the zero vector (after centring), so its cosine similarity is undefined; "
                         "use more varied anchors.")
    return (Z / np.where(nz == 0, 1, nz)[:, None]) @ (A / na[:, None]).T


@dataclass
class StitchResult:
    """Model B's codes decoded by model A.

    ``reconstruction``: A's decoded output (images (n, C, H, W) or a DataFrame, like
    ``inverse_transform``); ``codes``: B's codes carried into A's space; ``stitching_mse``: MSE of
    the stitched reconstruction against X's features; ``self_mse``: A's own reconstruction MSE
    (the floor); ``naive_mse``: B's raw codes fed to A's decoder (None when widths differ) —
    what stitching without alignment would give.
    """

    reconstruction: Any
    codes: np.ndarray
    stitching_mse: float
    self_mse: float
    naive_mse: float | None
    method: str


def _relative_to_absolute(R: np.ndarray, norms: np.ndarray, anchors_a: np.ndarray) -> np.ndarray:
    """Codes in A's space with cosine profile R to A's anchors and norm ``norms`` · A's anchor radius."""
    mu = anchors_a.mean(0)
    A = anchors_a - mu
    na = np.linalg.norm(A, axis=1)
    if (na == 0).any():
        raise InputError("an anchor of model A is at the anchors' centroid; use more varied anchors.")
    directions = np.linalg.lstsq(A / na[:, None], R.T, rcond=None)[0].T
    length = np.linalg.norm(directions, axis=1, keepdims=True)
    directions = directions / np.where(length == 0, 1, length)
    return mu + directions * (norms[:, None] * na.mean())


def stitch(model_a: Any, model_b: Any, X: Any, anchors_X: Any, method: str = "alignment") -> StitchResult:
    """Decode model B's codes of X with model A's decoder, using ``anchors_X`` (inputs both models
    embed) as the only link between the two latent spaces; see the module docstring."""
    if method not in STITCH_METHODS:
        raise unknown_name_error("stitching method", method, STITCH_METHODS)
    a, b = check_fitted(model_a, "model_a"), check_fitted(model_b, "model_b")
    fa, fb = features(a, X), features(b, X)
    if fa.shape != fb.shape:
        raise InputError(f"the two models preprocess X to different shapes {tuple(fa.shape)} and {tuple(fb.shape)}.")
    anchors_a, anchors_b = embed_features(a, features(a, anchors_X)), embed_features(b, features(b, anchors_X))
    if len(anchors_a) < 2:
        raise InputError(f"stitching needs at least 2 anchors, got {len(anchors_a)}.")
    Z_b = embed_features(b, fb)
    if method == "alignment":
        codes = fit_alignment(anchors_a, anchors_b, "orthogonal").transform(Z_b)
    else:
        if len(anchors_a) < a.model_.latent_dim:
            raise InputError(f"relative stitching needs at least as many anchors as model A's latent size "
                             f"({a.model_.latent_dim}), got {len(anchors_a)}.")
        R = relative_representation(Z_b, anchors_b, "cosine", center=True)
        centred_b = anchors_b - anchors_b.mean(0)
        radius_b = np.linalg.norm(centred_b, axis=1).mean()
        norms = np.linalg.norm(Z_b - anchors_b.mean(0), axis=1) / radius_b   # scale relative to B's anchors
        codes = _relative_to_absolute(R, norms, anchors_a)
    target = fa.numpy()
    stitched = decode_features(a, codes)
    own = decode_features(a, embed_features(a, fa))
    naive = None
    if Z_b.shape[1] == a.model_.latent_dim:
        naive = reconstruction_mse(target, decode_features(a, Z_b))
    return StitchResult(reconstruction=a.inverse_transform(codes), codes=codes,
                        stitching_mse=reconstruction_mse(target, stitched), self_mse=reconstruction_mse(target, own),
                        naive_mse=naive, method=method)

