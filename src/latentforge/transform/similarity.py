"""Deprecated: the similarity and compatibility metrics moved to :mod:`latentforge.evaluate`.

This module only re-exports them for one release; import them from ``latentforge.evaluate``
(or, as before, from ``latentforge.transform``).
"""

from __future__ import annotations

import warnings

from ..evaluate import (
    compatibility_report,
    cross_model_retrieval,
    linear_cka,
    mutual_knn_overlap,
    procrustes_distance,
    rbf_cka,
)

__all__ = [
    "compatibility_report",
    "cross_model_retrieval",
    "linear_cka",
    "mutual_knn_overlap",
    "procrustes_distance",
    "rbf_cka",
]

warnings.warn("latentforge.transform.similarity is deprecated; import these names from latentforge.evaluate",
              DeprecationWarning, stacklevel=2)
