"""How similar two representations of the same rows are, and how compatible two models' codes are
for retrieval.

Similarity (rows = the same inputs embedded by two models or seeds; widths may differ):
:func:`linear_cka` and :func:`rbf_cka` (centred kernel alignment, Kornblith et al. 2019; 1 =
identical up to rotation and scale), :func:`procrustes_distance` (orthogonal Procrustes distance,
0 = identical up to rotation and scale), :func:`mutual_knn_overlap` (shared nearest neighbours).

Compatibility: :func:`cross_model_retrieval` (queries embedded by the new model, mapped to the
old space, searched in a gallery embedded by the old model) and :func:`compatibility_report`,
which puts it next to old→old and new→new and checks the criterion cross ≥ old→old (Shen et al.,
"Towards backward-compatible representation learning", 2020).

All of them are plain functions on code arrays; mapping new codes to the old space (a fitted
``Alignment``) stays in :mod:`latentforge.transform`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import as_matrix, block_rows, positive_int, same_rows, same_width, sq_distances
from .downstream import knn_accuracy, retrieval_map_at_k


def _paired(A: Any, B: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_matrix(A, "A"), as_matrix(B, "B")
    same_rows(a, b, "A", "B")
    if len(a) < 2:
        raise InputError(f"A and B need at least 2 rows to compare representations, got {len(a)}.")
    return a, b


def _centre_gram(K: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11ᵀ/n (double centring of a kernel matrix)."""
    return K - K.mean(0, keepdims=True) - K.mean(1, keepdims=True) + K.mean()


def _cka_from_grams(K: np.ndarray, L: np.ndarray) -> float:
    Kc, Lc = _centre_gram(K), _centre_gram(L)
    denom = np.linalg.norm(Kc) * np.linalg.norm(Lc)
    if denom == 0:
        raise InputError("a representation is constant over the rows, so CKA is undefined.")
    return float((Kc * Lc).sum() / denom)


def linear_cka(A: np.ndarray, B: np.ndarray) -> float:
    """Linear centred kernel alignment (CKA) between two representations of the same rows.

    ``‖B̃ᵀÃ‖²_F / (‖ÃᵀÃ‖_F ‖B̃ᵀB̃‖_F)`` with column-centred Ã, B̃ [1]_. In [0, 1]; 1 when B
    is A rotated, reflected and/or scaled (and translated); near 0 for independent
    representations with many rows.

    Parameters
    ----------
    A : array-like of shape (n, d_A)
        First representation; row i embeds input i.
    B : array-like of shape (n, d_B)
        Second representation of the same n inputs; widths may differ, rows must correspond.

    Returns
    -------
    float
        The linear CKA, in [0, 1].

    Raises
    ------
    InputError
        When the row counts differ, there are fewer than 2 rows, or a representation is
        constant over the rows.

    References
    ----------
    .. [1] Kornblith, S., Norouzi, M., Lee, H. and Hinton, G. (2019). Similarity of neural
       network representations revisited. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import linear_cka
    >>> A = np.random.default_rng(0).standard_normal((50, 4))
    >>> round(linear_cka(A, A), 6)
    1.0
    >>> round(linear_cka(A, 3.0 * A[:, ::-1] + 1.0), 6)   # permuted, scaled, shifted
    1.0
    """
    a, b = _paired(A, B)
    a, b = a - a.mean(0), b - b.mean(0)
    denom = np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)
    if denom == 0:
        raise InputError("a representation is constant over the rows, so CKA is undefined.")
    return float(np.linalg.norm(b.T @ a) ** 2 / denom)


def rbf_cka(A: np.ndarray, B: np.ndarray, sigma: float = 1.0) -> float:
    """Centred kernel alignment with Gaussian (RBF) kernels between two representations.

    Kernels ``exp(-‖x - x'‖² / (2 (sigma · m)²))``, m the median pairwise distance of that
    representation, so the value is invariant to isotropic scaling as well as rotations and
    translations [1]_. Uses n×n kernels: meant for up to a few thousand rows.

    Parameters
    ----------
    A : array-like of shape (n, d_A)
        First representation; row i embeds input i.
    B : array-like of shape (n, d_B)
        Second representation of the same n inputs; widths may differ.
    sigma : float, default=1.0
        Kernel bandwidth as a multiple of each representation's median pairwise distance.

    Returns
    -------
    float
        The RBF CKA, in [0, 1]; 1 for identical representations up to rotation and scale.

    Raises
    ------
    InputError
        When the row counts differ, there are fewer than 2 rows, ``sigma`` is not positive, or a
        representation has a zero median pairwise distance.

    References
    ----------
    .. [1] Kornblith, S., Norouzi, M., Lee, H. and Hinton, G. (2019). Similarity of neural
       network representations revisited. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import rbf_cka
    >>> A = np.random.default_rng(0).standard_normal((40, 3))
    >>> round(rbf_cka(A, 5.0 * A - 2.0), 6)
    1.0
    """
    a, b = _paired(A, B)
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise InputError(f"sigma must be a positive number (a multiple of the median distance), got {sigma!r}.")
    grams = []
    for x in (a, b):
        d2 = sq_distances(x, x)
        off = d2[~np.eye(len(x), dtype=bool)]
        median = float(np.sqrt(np.median(off)))
        if median == 0:
            raise InputError("a representation has a zero median pairwise distance, so the RBF bandwidth is undefined.")
        grams.append(np.exp(-d2 / (2 * (sigma * median) ** 2)))
    return _cka_from_grams(*grams)


def procrustes_distance(A: np.ndarray, B: np.ndarray) -> float:
    """Orthogonal Procrustes distance ``2 - 2 ‖ÃᵀB̃‖_*`` between two representations [1]_.

    Ã, B̃: column-centred and scaled to unit Frobenius norm; ``‖·‖_*`` is the nuclear norm, so
    the value is ``min_R ‖Ã R − B̃‖²_F`` over orthogonal R (the narrower matrix zero-padded).
    In [0, 2]; 0 when B is a rotated/reflected, scaled and translated copy of A.

    Parameters
    ----------
    A : array-like of shape (n, d_A)
        First representation; row i embeds input i.
    B : array-like of shape (n, d_B)
        Second representation of the same n inputs; widths may differ.

    Returns
    -------
    float
        The distance, in [0, 2]; lower is more similar.

    Raises
    ------
    InputError
        When the row counts differ, there are fewer than 2 rows, or a representation is
        constant over the rows.

    References
    ----------
    .. [1] Ding, F., Denain, J.-S. and Steinhardt, J. (2021). Grounding representation
       similarity with statistical testing. NeurIPS.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import procrustes_distance
    >>> A = np.random.default_rng(0).standard_normal((30, 2))
    >>> c, s = np.cos(0.7), np.sin(0.7)
    >>> rotated = 2.0 * A @ np.array([[c, -s], [s, c]]) + 1.0
    >>> round(procrustes_distance(A, rotated), 6)
    0.0
    """
    a, b = _paired(A, B)
    a, b = a - a.mean(0), b - b.mean(0)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise InputError("a representation is constant over the rows, so the Procrustes distance is undefined.")
    nuclear = np.linalg.svd((a / na).T @ (b / nb), compute_uv=False).sum()
    return float(max(0.0, 2.0 - 2.0 * nuclear))


def _knn_indices(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k nearest other rows (Euclidean; ties by index)."""
    out = np.empty((len(X), k), dtype=np.int64)
    step = block_rows(len(X))
    for start in range(0, len(X), step):
        d = sq_distances(X[start:start + step], X)
        d[np.arange(len(d)), np.arange(start, start + len(d))] = np.inf
        out[start:start + step] = np.argsort(d, axis=1, kind="stable")[:, :k]
    return out


def mutual_knn_overlap(A: np.ndarray, B: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each row's k nearest neighbours (itself excluded) shared by A and B.

    Neighbours are Euclidean, ties broken by row index. 1 when the neighbourhoods agree (e.g. B
    a rotated or scaled copy of A); about ``k / (n - 1)`` for unrelated representations.

    Parameters
    ----------
    A : array-like of shape (n, d_A)
        First representation; row i embeds input i.
    B : array-like of shape (n, d_B)
        Second representation of the same n inputs; widths may differ.
    k : int, default=10
        Neighbours per row; must be smaller than n.

    Returns
    -------
    float
        The mean overlap, in [0, 1].

    Raises
    ------
    InputError
        When the row counts differ, there are fewer than 2 rows, or ``k`` is not in [1, n).

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import mutual_knn_overlap
    >>> A = np.random.default_rng(0).standard_normal((40, 3))
    >>> mutual_knn_overlap(A, 10.0 * A, k=5)
    1.0
    """
    a, b = _paired(A, B)
    k = positive_int(k, "k")
    if k >= len(a):
        raise InputError(f"k = {k} must be smaller than the {len(a)} rows.")
    na, nb = _knn_indices(a, k), _knn_indices(b, k)
    shared = [len(np.intersect1d(r, s, assume_unique=True)) for r, s in zip(na, nb)]
    return float(np.mean(shared) / k)


def cross_model_retrieval(
    Z_query: np.ndarray, y_query: np.ndarray, Z_gallery: np.ndarray, y_gallery: np.ndarray, k: int = 10,
    metric: str = "euclidean",
) -> dict[str, float]:
    """Label-based retrieval quality of queries against a gallery: top-1 accuracy and mAP@k.

    ``top1``: fraction of queries whose nearest gallery item has the query's label (1-NN
    accuracy, Euclidean); ``map_at_k``: :func:`retrieval_map_at_k` with ``k`` and ``metric``.
    For compatibility, queries are the new model's codes mapped to the old space
    (``Alignment.transform(Z_new, old_space_only=True)`` in :mod:`latentforge.transform`) and
    the gallery holds old-model codes.

    Parameters
    ----------
    Z_query : array-like of shape (n_query, d)
        Query codes, in the gallery's space.
    y_query : array-like of shape (n_query,)
        Query labels.
    Z_gallery : array-like of shape (n_gallery, d)
        Gallery codes; same width as the queries.
    y_gallery : array-like of shape (n_gallery,)
        Gallery labels (at least 2 distinct values).
    k : int, default=10
        Depth of the ranking for mAP@k.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance used for mAP@k (top-1 is always Euclidean).

    Returns
    -------
    dict
        ``{"top1": float, "map_at_k": float}``, both in [0, 1], higher is better.

    Raises
    ------
    MissingLabelsError
        When labels are missing, the gallery has a single class, or no query label occurs in
        the gallery.
    InputError
        When the widths differ or an argument is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import cross_model_retrieval
    >>> gallery = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> queries = np.array([[0.05, 0.1], [5.0, 5.1]])
    >>> cross_model_retrieval(queries, [0, 1], gallery, [0, 0, 1, 1], k=2)
    {'top1': 1.0, 'map_at_k': 1.0}
    """
    q, g = as_matrix(Z_query, "Z_query"), as_matrix(Z_gallery, "Z_gallery")
    same_width(q, g, "Z_query", "Z_gallery")
    return {"top1": knn_accuracy(g, y_gallery, q, y_query, k=1),
            "map_at_k": retrieval_map_at_k(q, y_query, g, y_gallery, k=k, metric=metric)}


def compatibility_report(
    Z_query_old: np.ndarray, Z_query_new: np.ndarray, y_query: np.ndarray,
    Z_gallery_old: np.ndarray, Z_gallery_new: np.ndarray, y_gallery: np.ndarray,
    Z_query_cross: np.ndarray | None = None, k: int = 10,
) -> dict[str, Any]:
    """Retrieval old→old, new→new and cross (new queries → old gallery), with the verdicts.

    Each direction is scored with :func:`cross_model_retrieval`. The new model is backward
    compatible when its cross-model retrieval is at least as good as the old model's own [1]_:
    cross top-1 ≥ old→old top-1 and cross mAP ≥ old→old mAP.

    Parameters
    ----------
    Z_query_old, Z_query_new : array-like of shape (n_query, d_old) and (n_query, d_new)
        The queries embedded by the old and by the new model.
    y_query : array-like of shape (n_query,)
        Query labels.
    Z_gallery_old, Z_gallery_new : array-like of shape (n_gallery, d_old) and (n_gallery, d_new)
        The gallery embedded by the old and by the new model.
    y_gallery : array-like of shape (n_gallery,)
        Gallery labels.
    Z_query_cross : array-like of shape (n_query, d_old), optional
        The new model's query codes mapped into the old space; default ``Z_query_new`` itself,
        for a model trained to be compatible.
    k : int, default=10
        Depth of the ranking for mAP@k.

    Returns
    -------
    dict
        ``{"old->old": {...}, "new->new": {...}, "new->old": {...}, "compatible": bool,
        "cross_over_new": float}``: the three :func:`cross_model_retrieval` results,
        ``compatible`` = cross top-1 ≥ old→old top-1 and cross mAP ≥ old→old mAP, and
        ``cross_over_new`` = cross top-1 / new→new top-1 (NaN when new→new top-1 is 0).

    Raises
    ------
    MissingLabelsError
        When labels are missing or no query label occurs in the gallery.
    InputError
        When shapes disagree or an argument is invalid.

    References
    ----------
    .. [1] Shen, Y., Xiong, Y., Xia, W. and Soatto, S. (2020). Towards backward-compatible
       representation learning. CVPR.

    Examples
    --------
    A new model whose codes are the old ones with their axes permuted: new→new retrieval is as
    good as old→old, its raw codes cannot search the old gallery, mapped back they can.

    >>> import numpy as np
    >>> from latentforge.evaluate import compatibility_report
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 10)
    >>> old_q, old_g = (np.eye(3)[y] * 4 + 0.3 * rng.standard_normal((30, 3)) for _ in range(2))
    >>> new_q, new_g = np.roll(old_q, 1, axis=1), np.roll(old_g, 1, axis=1)
    >>> raw = compatibility_report(old_q, new_q, y, old_g, new_g, y, k=5)
    >>> raw["new->new"]["top1"], raw["new->old"]["top1"], raw["compatible"]
    (1.0, 0.0, False)
    >>> mapped = compatibility_report(old_q, new_q, y, old_g, new_g, y, Z_query_cross=np.roll(new_q, -1, axis=1), k=5)
    >>> mapped["new->old"], mapped["compatible"]
    ({'top1': 1.0, 'map_at_k': 1.0}, True)
    """
    cross = Z_query_new if Z_query_cross is None else Z_query_cross
    report: dict[str, Any] = {
        "old->old": cross_model_retrieval(Z_query_old, y_query, Z_gallery_old, y_gallery, k),
        "new->new": cross_model_retrieval(Z_query_new, y_query, Z_gallery_new, y_gallery, k),
        "new->old": cross_model_retrieval(cross, y_query, Z_gallery_old, y_gallery, k),
    }
    c, o, n = report["new->old"], report["old->old"], report["new->new"]
    report["compatible"] = bool(c["top1"] >= o["top1"] and c["map_at_k"] >= o["map_at_k"])
    report["cross_over_new"] = c["top1"] / n["top1"] if n["top1"] > 0 else float("nan")
    return report
