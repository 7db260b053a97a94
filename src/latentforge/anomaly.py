"""Deprecated: ``latentforge.anomaly`` moved to ``latentforge.estimator``; this path is kept for one release."""

from latentforge._deprecation import warn_moved

from latentforge.estimator import AnomalyDetector, SCORES, UNCERTAINTY_SCORES  # noqa: E402

warn_moved(__name__, "latentforge.estimator")

__all__ = ['AnomalyDetector', 'SCORES', 'UNCERTAINTY_SCORES']
