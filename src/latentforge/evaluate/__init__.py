"""Metrics for a representation: plain functions on NumPy arrays (protocols in ``docs/evaluation.md``).

Every metric of latentforge lives here and takes arrays (anything ``np.asarray`` accepts; images
and other N-d rows are flattened per row), never a model: nothing here trains or needs a GPU,
and random choices (directions, splits, feature maps) take a ``seed``. Each function documents
its Parameters, Returns and a runnable example in numpydoc form.

- reconstruction: :func:`reconstruction_mse`, :func:`reconstruction_bce`, :func:`table_reconstruction_errors`;
- generation: :func:`generation_sw`, :func:`generation_sliced_mmd`, :func:`generation_two_sample_pvalue`,
  :func:`frechet_distance`, :func:`frechet_gaussian`, :func:`generation_frechet`,
  :func:`random_relu_features`, :func:`precision_recall_knn`;
- downstream: :func:`linear_probe_accuracy`, :func:`linear_probe_cv_accuracy`, :func:`knn_accuracy`,
  :func:`kmeans_clustering_scores`, :func:`retrieval_map_at_k`;
- latent health: :func:`active_units`, :func:`unit_activity`, :func:`kl_per_dimension`,
  :func:`effective_rank`, :func:`codebook_usage`, :func:`posterior_collapse`;
- disentanglement: :func:`mig`, :func:`dci`, :func:`infomec`, :func:`discretize`;
- anomaly: :func:`auroc`, :func:`auprc`, :func:`mahalanobis_scores`, :func:`combine_scores`;
- representation similarity and cross-model compatibility: :func:`linear_cka`, :func:`rbf_cka`,
  :func:`procrustes_distance`, :func:`mutual_knn_overlap`, :func:`cross_model_retrieval`,
  :func:`compatibility_report` (formerly in ``latentforge.transform.similarity``, which still
  re-exports them for one release with a DeprecationWarning).

Bad input raises :class:`latentforge.errors.InputError`; a label- or factor-dependent metric
without usable labels raises its subclass :class:`MissingLabelsError`, so that a caller running
many metrics can record "skipped: <message>" and go on.
"""

from ._checks import MissingLabelsError
from .anomaly import auprc, auroc, combine_scores, mahalanobis_scores
from .disentanglement import dci, discretize, infomec, mig
from .downstream import (
    kmeans_clustering_scores,
    knn_accuracy,
    linear_probe_accuracy,
    linear_probe_cv_accuracy,
    retrieval_map_at_k,
)
from .generation import (
    frechet_distance,
    frechet_gaussian,
    generation_frechet,
    generation_sliced_mmd,
    generation_sw,
    generation_two_sample_pvalue,
    precision_recall_knn,
    random_relu_features,
)
from .latent import active_units, codebook_usage, effective_rank, kl_per_dimension, posterior_collapse, unit_activity
from .reconstruction import reconstruction_bce, reconstruction_mse, table_reconstruction_errors
from .similarity import (
    compatibility_report,
    cross_model_retrieval,
    linear_cka,
    mutual_knn_overlap,
    procrustes_distance,
    rbf_cka,
)

__all__ = [
    "MissingLabelsError",
    "active_units",
    "auprc",
    "auroc",
    "codebook_usage",
    "combine_scores",
    "compatibility_report",
    "cross_model_retrieval",
    "dci",
    "discretize",
    "effective_rank",
    "frechet_distance",
    "frechet_gaussian",
    "generation_frechet",
    "generation_sliced_mmd",
    "generation_sw",
    "generation_two_sample_pvalue",
    "infomec",
    "kl_per_dimension",
    "kmeans_clustering_scores",
    "knn_accuracy",
    "linear_cka",
    "linear_probe_accuracy",
    "linear_probe_cv_accuracy",
    "mahalanobis_scores",
    "mig",
    "mutual_knn_overlap",
    "posterior_collapse",
    "precision_recall_knn",
    "procrustes_distance",
    "random_relu_features",
    "rbf_cka",
    "reconstruction_bce",
    "reconstruction_mse",
    "retrieval_map_at_k",
    "table_reconstruction_errors",
    "unit_activity",
]
