"""Deprecated: ``latentforge.models.latent_sampler`` moved to ``latentforge.estimator.samplers``; this path is kept for one release."""

from latentforge._deprecation import warn_moved

from latentforge.estimator.samplers import CODE_SAMPLERS, EmpiricalCodeSampler, GaussianMixtureSampler, fit_code_sampler  # noqa: E402

warn_moved(__name__, "latentforge.estimator.samplers")

__all__ = ['CODE_SAMPLERS', 'EmpiricalCodeSampler', 'GaussianMixtureSampler', 'fit_code_sampler']
