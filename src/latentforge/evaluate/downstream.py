"""Downstream quality of embeddings: probes, k-NN, clustering and retrieval (higher is better).

All of these need labels; without them (``y is None``, or a single class) they raise
:class:`~latentforge.evaluate.MissingLabelsError`, which callers can catch to skip the metric.
Rows whose label is missing (None, NaN, NaT) are left out, with a warning saying how many.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import as_matrix, block_rows, positive_int, same_width, sq_distances
from ._checks import MissingLabelsError, drop_unlabelled, labels


def _split(Z_train: Any, y_train: Any, Z_test: Any, y_test: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a, b = as_matrix(Z_train, "Z_train"), as_matrix(Z_test, "Z_test")
    same_width(a, b, "Z_train", "Z_test")
    a, y_train = drop_unlabelled(a, y_train, "y_train")
    b, y_test = drop_unlabelled(b, y_test, "y_test")
    return a, labels(y_train, "y_train", len(a)), b, labels(y_test, "y_test", len(b), min_classes=1)


def linear_probe_accuracy(
    Z_train: np.ndarray, y_train: np.ndarray, Z_test: np.ndarray, y_test: np.ndarray, max_iter: int = 2000
) -> float:
    """Accuracy on test codes of ``LogisticRegression(max_iter=2000)`` fitted on train codes.

    A linear probe: how much label information a linear classifier can read from the codes
    (scikit-learn defaults otherwise: L2 penalty, C = 1).

    Parameters
    ----------
    Z_train : array-like of shape (n_train, d)
        Training codes.
    y_train : array-like of shape (n_train,)
        Training labels (at least 2 classes).
    Z_test : array-like of shape (n_test, d)
        Test codes, same width.
    y_test : array-like of shape (n_test,)
        Test labels.
    max_iter : int, default=2000
        Iterations of the logistic regression solver.

    Returns
    -------
    float
        Test accuracy, in [0, 1].

    Raises
    ------
    MissingLabelsError
        When ``y_train`` is None or has a single class, or ``y_test`` is None.
    InputError
        When the shapes disagree or an argument is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import linear_probe_accuracy
    >>> Z = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> linear_probe_accuracy(Z, [0, 0, 1, 1], [[-3.0], [3.0]], [0, 1])
    1.0
    """
    from sklearn.linear_model import LogisticRegression

    a, ya, b, yb = _split(Z_train, y_train, Z_test, y_test)
    clf = LogisticRegression(max_iter=max_iter).fit(a, ya)
    return float(clf.score(b, yb))


def linear_probe_cv_accuracy(Z: np.ndarray, y: np.ndarray, n_splits: int = 5, seed: int = 0, max_iter: int = 2000) -> float:
    """Mean accuracy of ``LogisticRegression(max_iter)`` over stratified, shuffled k-fold splits.

    ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)``; ``n_splits`` is reduced to the
    size of the smallest class when that is smaller. Every class needs at least 2 rows.

    Parameters
    ----------
    Z : array-like of shape (n, d)
        Codes.
    y : array-like of shape (n,)
        Labels (at least 2 classes, each with at least 2 rows).
    n_splits : int, default=5
        Number of folds (at least 2).
    seed : int, default=0
        Seed of the fold shuffling.
    max_iter : int, default=2000
        Iterations of the logistic regression solver.

    Returns
    -------
    float
        Mean held-out accuracy over the folds, in [0, 1].

    Raises
    ------
    MissingLabelsError
        When ``y`` is None, has a single class, or a class with fewer than 2 rows.
    InputError
        When the shapes disagree or an argument is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import linear_probe_cv_accuracy
    >>> y = np.repeat([0, 1], 10)
    >>> Z = (2 * y - 1)[:, None] + 0.1 * np.random.default_rng(0).standard_normal((20, 1))
    >>> linear_probe_cv_accuracy(Z, y, n_splits=5)
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    Z, y = drop_unlabelled(as_matrix(Z, "Z"), y, "y")
    y = labels(y, "y", len(Z))
    n_splits = positive_int(n_splits, "n_splits", minimum=2)
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if smallest < 2:
        raise MissingLabelsError("y has a class with fewer than 2 rows, too few for a cross-validated probe.")
    folds = StratifiedKFold(min(n_splits, smallest), shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(max_iter=max_iter), Z, y, cv=folds).mean())


def knn_accuracy(Z_train: np.ndarray, y_train: np.ndarray, Z_test: np.ndarray, y_test: np.ndarray, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour majority vote (Euclidean, uniform weights) on test codes.

    scikit-learn's ``KNeighborsClassifier(n_neighbors=k)``; a tied vote goes to the smallest label.

    Parameters
    ----------
    Z_train : array-like of shape (n_train, d)
        Codes of the labelled neighbours.
    y_train : array-like of shape (n_train,)
        Their labels (at least 2 classes).
    Z_test : array-like of shape (n_test, d)
        Codes to classify, same width.
    y_test : array-like of shape (n_test,)
        Their true labels.
    k : int, default=5
        Neighbours per vote, at most ``n_train``.

    Returns
    -------
    float
        Test accuracy, in [0, 1].

    Raises
    ------
    MissingLabelsError
        When ``y_train`` is None or has a single class, or ``y_test`` is None.
    InputError
        When the shapes disagree or an argument is invalid.

    Examples
    --------
    >>> from latentforge.evaluate import knn_accuracy
    >>> Z_train = [[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]]
    >>> knn_accuracy(Z_train, [0, 0, 0, 1, 1, 1], [[0.05], [5.05]], [0, 1], k=3)
    1.0
    >>> knn_accuracy(Z_train, [0, 0, 0, 1, 1, 1], [[0.05], [5.05]], [1, 1], k=3)
    0.5
    """
    from sklearn.neighbors import KNeighborsClassifier

    a, ya, b, yb = _split(Z_train, y_train, Z_test, y_test)
    k = positive_int(k, "k")
    if k > len(a):
        raise InputError(f"k = {k} is larger than the {len(a)} training rows.")
    return float(KNeighborsClassifier(n_neighbors=k).fit(a, ya).score(b, yb))


def kmeans_clustering_scores(Z: np.ndarray, y: np.ndarray, n_clusters: int | None = None, seed: int = 0) -> dict[str, float]:
    """How well k-means clusters of the codes recover the labels: NMI and ARI.

    ``KMeans(n_clusters, n_init=10, random_state=seed)`` on the codes, then the clusters are
    compared with the labels by ``normalized_mutual_info_score`` (in [0, 1]) and
    ``adjusted_rand_score`` (≤ 1, 0 for chance).

    Parameters
    ----------
    Z : array-like of shape (n, d)
        Codes.
    y : array-like of shape (n,)
        Labels (at least 2 classes).
    n_clusters : int, optional
        Number of clusters; default the number of distinct labels.
    seed : int, default=0
        Seed of the k-means initialisation.

    Returns
    -------
    dict
        ``{"nmi": float, "ari": float}``.

    Raises
    ------
    MissingLabelsError
        When ``y`` is None or has a single class.
    InputError
        When the shapes disagree or an argument is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.evaluate import kmeans_clustering_scores
    >>> Z = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1]])
    >>> scores = kmeans_clustering_scores(Z, [0, 0, 0, 1, 1, 1])
    >>> round(scores["nmi"], 6), round(scores["ari"], 6)
    (1.0, 1.0)
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    Z, y = drop_unlabelled(as_matrix(Z, "Z"), y, "y")
    y = labels(y, "y", len(Z))
    n_clusters = len(np.unique(y)) if n_clusters is None else positive_int(n_clusters, "n_clusters")
    if n_clusters > len(Z):
        raise InputError(f"n_clusters = {n_clusters} is larger than the {len(Z)} rows of Z.")
    pred = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(Z)
    return {"nmi": float(normalized_mutual_info_score(y, pred)), "ari": float(adjusted_rand_score(y, pred))}


def retrieval_map_at_k(
    Z_query: np.ndarray, y_query: np.ndarray, Z_gallery: np.ndarray, y_gallery: np.ndarray, k: int = 10,
    metric: str = "euclidean", exclude_self: bool = False,
) -> float:
    """Mean average precision at k of nearest-neighbour retrieval, relevance = same label.

    For each query the gallery is ranked by distance (``"euclidean"`` or ``"cosine"``; ties keep
    gallery order) and ``AP@k = (1 / min(k, R)) * sum_{i <= k} P@i * rel_i``, where ``rel_i`` says
    whether the i-th result has the query's label, ``P@i`` is the fraction of relevant results in
    the top i, and ``R`` is the number of relevant gallery items; a perfect ranking scores 1.
    Queries with no relevant gallery item (R = 0) are left out of the mean.

    ``exclude_self=True`` is for querying a gallery with itself: the query set must be the
    gallery (same rows, same order), and gallery item i is removed from query i's ranking.

    Parameters
    ----------
    Z_query : array-like of shape (n_query, d)
        Query codes.
    y_query : array-like of shape (n_query,)
        Query labels.
    Z_gallery : array-like of shape (n_gallery, d)
        Gallery codes, same width.
    y_gallery : array-like of shape (n_gallery,)
        Gallery labels.
    k : int, default=10
        Depth of the ranking.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance used to rank the gallery; cosine needs non-zero codes.
    exclude_self : bool, default=False
        Remove each query's own row from its ranking (queries = gallery).

    Returns
    -------
    float
        mAP@k, in [0, 1].

    Raises
    ------
    MissingLabelsError
        When labels are None, or no query label occurs in the gallery.
    InputError
        When the shapes disagree or an argument is invalid.

    Examples
    --------
    >>> from latentforge.evaluate import retrieval_map_at_k
    >>> gallery = [[0.0], [1.0], [10.0], [11.0]]
    >>> retrieval_map_at_k([[0.5], [10.5]], [0, 1], gallery, [0, 0, 1, 1], k=2)
    1.0
    >>> retrieval_map_at_k([[0.0]], [1], gallery, [0, 1, 0, 0], k=2)   # the only relevant item comes 2nd
    0.5
    """
    q, g = as_matrix(Z_query, "Z_query"), as_matrix(Z_gallery, "Z_gallery")
    same_width(q, g, "Z_query", "Z_gallery")
    q, y_query = drop_unlabelled(q, y_query, "y_query")
    g, y_gallery = drop_unlabelled(g, y_gallery, "y_gallery")
    yq = labels(y_query, "y_query", len(q), min_classes=1)
    yg = labels(y_gallery, "y_gallery", len(g), min_classes=1)
    k = positive_int(k, "k")
    if metric not in ("euclidean", "cosine"):
        raise InputError(f"metric must be 'euclidean' or 'cosine', got {metric!r}.")
    if exclude_self and (q.shape != g.shape or not np.array_equal(q, g)):
        raise InputError("exclude_self=True needs Z_query to be the gallery itself (same rows in the same order).")
    if metric == "cosine":
        norm_q, norm_g = np.linalg.norm(q, axis=1, keepdims=True), np.linalg.norm(g, axis=1, keepdims=True)
        if (norm_q == 0).any() or (norm_g == 0).any():
            raise InputError("cosine retrieval needs non-zero codes; a row of Z_query or Z_gallery is all zeros.")
        q, g = q / norm_q, g / norm_g
    n_gallery = len(g) - int(exclude_self)
    if n_gallery < 1:
        raise InputError("the gallery is empty once each query's own row is excluded.")
    depth = min(k, n_gallery)
    sum_ap, counted = 0.0, 0
    step = block_rows(len(g))
    for start in range(0, len(q), step):
        block = slice(start, start + step)
        if metric == "cosine":
            dist = -(q[block] @ g.T)
        else:
            dist = sq_distances(q[block], g)
        rows = np.arange(len(dist))
        if exclude_self:
            dist[rows, rows + start] = np.inf
        order = np.argsort(dist, axis=1, kind="stable")[:, :depth]
        relevant = yg[order] == yq[block, None]                         # (b, depth)
        n_relevant = (yg[None, :] == yq[block, None]).sum(1) - int(exclude_self)
        precision_at_i = np.cumsum(relevant, axis=1) / np.arange(1, depth + 1)
        has = n_relevant > 0
        ap = (precision_at_i * relevant).sum(1)[has] / np.minimum(k, n_relevant[has])
        sum_ap += float(ap.sum())
        counted += int(has.sum())
    if counted == 0:
        raise MissingLabelsError("no query label occurs in the gallery, so no retrieval can be relevant.")
    return sum_ap / counted
