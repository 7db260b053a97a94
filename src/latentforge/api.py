"""Deprecated: ``latentforge.api`` moved to ``latentforge.estimator``; this path is kept for one release."""

from latentforge._deprecation import warn_moved

from latentforge.estimator import Autoencoder, ExtraParamsMixin, MAX_SAVED_CODES, SAMPLERS, load  # noqa: E402

warn_moved(__name__, "latentforge.estimator")

__all__ = ['Autoencoder', 'ExtraParamsMixin', 'MAX_SAVED_CODES', 'SAMPLERS', 'load']
