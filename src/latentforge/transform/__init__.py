"""What to do with embeddings after training (protocols and definitions in ``docs/transform.md``).

- sliceable embeddings: :func:`slicing_curve`, :func:`truncate`, :func:`embed_truncated`, :class:`VarianceOrder`;
- backward-compatible alignment: :func:`fit_alignment`, :func:`align_models`, :class:`Alignment`,
  :func:`load_alignment`, :func:`compatible_embedding`, :class:`CompatibilityLoss`, :func:`model_fingerprint`;
- relative representations and stitching: :func:`relative_representation`, :func:`stitch`;
- similarity and compatibility metrics, defined in :mod:`latentforge.evaluate` and re-exported here:
  :func:`linear_cka`, :func:`rbf_cka`, :func:`procrustes_distance`, :func:`mutual_knn_overlap`,
  :func:`cross_model_retrieval`, :func:`compatibility_report`;
- invariance: :func:`invariance_score`, :func:`invariance_report`, :data:`TRANSFORMS`, :func:`get_transform`,
  :class:`InvarianceLoss`, :func:`parse_invariance_spec`;
- editing: :class:`Editor` (Matrix Subspace Projection, affine steering), :func:`evaluate_edit`.

This package sits above models and metrics: it imports them, nothing below imports it.
"""

# The similarity metrics live in latentforge.evaluate; re-exported so existing imports keep working.
from ..evaluate import (
    compatibility_report,
    cross_model_retrieval,
    linear_cka,
    mutual_knn_overlap,
    procrustes_distance,
    rbf_cka,
)
from ._common import model_fingerprint
from .alignment import (
    METHODS,
    Alignment,
    CompatibilityLoss,
    align_models,
    compatible_embedding,
    fit_alignment,
    load_alignment,
)
from .editing import EDIT_METHODS, Editor, evaluate_edit
from .invariance import (
    TRANSFORMS,
    InvarianceLoss,
    Transformation,
    get_transform,
    invariance_report,
    invariance_score,
    parse_invariance_spec,
)
from .relative import StitchResult, relative_representation, stitch
from .slicing import VarianceOrder, embed_truncated, slicing_curve, truncate

__all__ = [
    "EDIT_METHODS",
    "METHODS",
    "TRANSFORMS",
    "Alignment",
    "CompatibilityLoss",
    "Editor",
    "InvarianceLoss",
    "StitchResult",
    "Transformation",
    "VarianceOrder",
    "align_models",
    "compatibility_report",
    "compatible_embedding",
    "cross_model_retrieval",
    "embed_truncated",
    "evaluate_edit",
    "fit_alignment",
    "get_transform",
    "invariance_report",
    "invariance_score",
    "linear_cka",
    "load_alignment",
    "model_fingerprint",
    "mutual_knn_overlap",
    "parse_invariance_spec",
    "procrustes_distance",
    "rbf_cka",
    "relative_representation",
    "slicing_curve",
    "stitch",
    "truncate",
]
