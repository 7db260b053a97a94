"""The scikit-learn style estimators: :class:`Autoencoder` (embed, generate, reconstruct, score)
and :class:`AnomalyDetector`; :mod:`.samplers` generates from codes fitted after training."""

from .anomaly import SCORES, UNCERTAINTY_SCORES, AnomalyDetector
from .autoencoder import MAX_SAVED_CODES, SAMPLERS, Autoencoder, load
from .base import ExtraParamsMixin, NotFittedError, require_fitted
from .streaming import iter_applied, iter_embeddings, iter_reconstructions, iter_scores
from .samplers import CODE_SAMPLERS, EmpiricalCodeSampler, GaussianMixtureSampler, fit_code_sampler

__all__ = ["AnomalyDetector", "Autoencoder", "CODE_SAMPLERS", "EmpiricalCodeSampler", "ExtraParamsMixin",
           "GaussianMixtureSampler", "MAX_SAVED_CODES", "NotFittedError", "SAMPLERS", "SCORES", "UNCERTAINTY_SCORES", "fit_code_sampler",
           "iter_applied", "iter_embeddings", "iter_reconstructions", "iter_scores", "load", "require_fitted"]
