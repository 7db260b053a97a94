"""Sliceable embeddings: use only the first m units of a code.

A ``matryoshka_ae`` is trained so that its prefixes work alone (Matryoshka Representation
Learning; Starbucks); its prefixes are used as they are (``order="native"``) and decoded by
zero-filling the dropped units, as in its training loss. Any other model can be sliced post hoc
(``order="pca"``): codes are first rotated into decreasing-variance order by a PCA fitted on
training codes, ``c = (z − μ) P`` with P orthogonal — so at full size nothing is lost — and the
prefix ``c[:, :m]`` is decoded by rotating back with the dropped coordinates set to 0, i.e. to
their mean: ``ẑ = μ + c[:, :m] P[:, :m]ᵀ``, the least-squares reconstruction of z from its prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import split_indices
from ..errors import InputError, unknown_name_error
from ..evaluate import knn_accuracy, linear_probe_accuracy, reconstruction_mse
from ..validation import as_matrix
from ._common import check_fitted, decode_features, embed_features, features

ORDERS = ("auto", "native", "pca")


def truncate(Z: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` columns of codes Z (n, d), with 1 ≤ dims ≤ d checked."""
    Z = as_matrix(Z, "Z")
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)) or not 1 <= dims <= Z.shape[1]:
        raise InputError(f"dims must be an integer between 1 and the code size {Z.shape[1]}, got {dims!r}.")
    return Z[:, :int(dims)]


@dataclass
class VarianceOrder:
    """An orthogonal PCA rotation of codes into decreasing-variance order (post-hoc slicing).

    ``transform(Z) = (Z − mean) @ components``; ``inverse_transform(C)`` accepts a prefix
    ``C[:, :m]`` and fills the dropped coordinates with 0 (their mean) before rotating back.
    ``variances`` are the explained variances of the rotated coordinates, descending.
    """

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray

    @classmethod
    def fit(cls, Z: np.ndarray) -> "VarianceOrder":
        """Fit on codes Z (n, d), n ≥ 2."""
        Z = as_matrix(Z, "Z")
        if len(Z) < 2:
            raise InputError(f"a variance ordering needs at least 2 rows of codes, got {len(Z)}.")
        mean = Z.mean(0)
        # full_matrices keeps a complete d×d orthogonal basis even when n < d
        _, s, vt = np.linalg.svd(Z - mean, full_matrices=True)
        variances = np.zeros(Z.shape[1])
        variances[:len(s)] = s ** 2 / (len(Z) - 1)
        return cls(mean=mean, components=vt.T, variances=variances)

    @classmethod
    def from_estimator(cls, model: Any) -> "VarianceOrder":
        """Fit on the training codes saved with a fitted estimator (``train_codes_``), so the
        ordering is the same every time the model is loaded."""
        return cls.fit(check_fitted(model).train_codes_)

    def transform(self, Z: np.ndarray) -> np.ndarray:
        """Codes (n, d) → rotated codes (n, d), highest-variance coordinate first."""
        Z = as_matrix(Z, "Z")
        if Z.shape[1] != len(self.mean):
            raise InputError(f"Z has {Z.shape[1]} columns but the ordering was fitted on {len(self.mean)}.")
        return (Z - self.mean) @ self.components

    def inverse_transform(self, C: np.ndarray) -> np.ndarray:
        """Rotated codes or a prefix of them (n, m ≤ d) → codes (n, d), dropped coordinates at their mean."""
        C = as_matrix(C, "C")
        m = C.shape[1]
        if m > len(self.mean):
            raise InputError(f"C has {m} columns but the codes have only {len(self.mean)}.")
        return self.mean + C @ self.components[:, :m].T


def _order(model: Any, order: str) -> str:
    if order not in ORDERS:
        raise unknown_name_error("slicing order", order, ORDERS)
    if order == "auto":
        return "native" if check_fitted(model).model_.name == "matryoshka_ae" else "pca"
    return order


def embed_truncated(model: Any, X: Any, dims: int, order: str = "auto") -> np.ndarray:
    """Codes of X cut to their first ``dims`` units (for ``latentforge embed --dims``).

    ``order="auto"``: a ``matryoshka_ae``'s own prefixes, any other model's codes in PCA order
    (:meth:`VarianceOrder.from_estimator`, fitted on the training codes stored with the model);
    ``"native"``: the raw first units; ``"pca"``: PCA order for any model.
    """
    order = _order(model, order)
    Z = embed_features(model, features(model, X))
    if order == "pca":
        Z = VarianceOrder.from_estimator(model).transform(Z)
    return truncate(Z, dims)


def _prefix_decoder(order: str, rotation: VarianceOrder | None, d: int):
    """A function mapping a code prefix (n, m) to full-width codes (n, d) the decoder accepts."""
    if order == "pca":
        return rotation.inverse_transform
    return lambda prefix: np.pad(prefix, ((0, 0), (0, d - prefix.shape[1])))  # zero-fill, as matryoshka_ae trains


def _decode_prefix(model: Any, order: str, to_full, prefix: np.ndarray) -> np.ndarray:
    """Features decoded from code prefixes: a matryoshka_ae's own ``decode_prefix`` (it may have a
    decoder part per prefix size), else the full-width codes ``to_full`` makes."""
    net = check_fitted(model).model_
    if order == "native" and net.name == "matryoshka_ae":
        with torch.no_grad():
            out = net.decode_prefix(torch.from_numpy(prefix.astype(np.float32)).to(next(net.parameters()).device))
            return net.likelihood.mean(out).cpu().numpy().astype(np.float64)
    return decode_features(model, to_full(prefix))


def slicing_curve(
    model: Any, X: Any, y: np.ndarray, sizes: Sequence[int], X_test: Any = None, y_test: np.ndarray | None = None,
    *, order: str = "auto", k: int = 5, test_fraction: float = 0.2, seed: int = 0,
) -> pd.DataFrame:
    """Downstream quality of the first m code units for each m in ``sizes``.

    Columns: ``size``, ``probe_accuracy`` (:func:`~latentforge.evaluate.linear_probe_accuracy`
    fitted on X's prefixes, scored on X_test's), ``knn_accuracy`` (k-NN, ``k``),
    ``reconstruction_mse`` (X_test's features against their reconstruction from the prefix, see
    the module docstring), ``order``. Without X_test, a stratified ``test_fraction`` of X is held
    out (seeded). ``order``: ``"auto"`` (native for matryoshka_ae, pca otherwise), ``"native"``,
    ``"pca"`` (the rotation fitted on X's codes).
    """
    order = _order(model, order)
    flat = features(model, X)
    y = np.asarray(y)
    if len(y) != len(flat):
        raise InputError(f"y has {len(y)} labels but X has {len(flat)} rows.")
    if X_test is None:
        if y_test is not None:
            raise InputError("y_test was given without X_test.")
        train, test = split_indices(len(flat), y, test_fraction, seed)
        flat_test, y_test, flat, y = flat[test], y[test], flat[train], y[train]
    else:
        flat_test = features(model, X_test)
        y_test = np.asarray(y_test) if y_test is not None else None
        if y_test is None or len(y_test) != len(flat_test):
            raise InputError("y_test must give one label per row of X_test.")
    Z, Z_test = embed_features(model, flat), embed_features(model, flat_test)
    d = Z.shape[1]
    sizes = list(sizes)
    bad = [m for m in sizes if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= d]
    if not sizes or bad:
        raise InputError(f"sizes must be integers between 1 and the code size {d}, got {sizes!r}.")
    rotation = VarianceOrder.fit(Z) if order == "pca" else None
    if rotation is not None:
        Z, Z_test = rotation.transform(Z), rotation.transform(Z_test)
    to_full = _prefix_decoder(order, rotation, d)
    target = flat_test.numpy()
    rows = []
    for m in sizes:
        rows.append({
            "size": int(m),
            "probe_accuracy": linear_probe_accuracy(Z[:, :m], y, Z_test[:, :m], y_test),
            "knn_accuracy": knn_accuracy(Z[:, :m], y, Z_test[:, :m], y_test, k=k),
            "reconstruction_mse": reconstruction_mse(target, _decode_prefix(model, order, to_full, Z_test[:, :m])),
            "order": order,
        })
    return pd.DataFrame(rows)
