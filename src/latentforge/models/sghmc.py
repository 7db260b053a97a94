"""Deprecated: ``latentforge.models.sghmc`` moved to ``latentforge.train.sghmc``; this path is kept for one release."""

from latentforge._deprecation import warn_moved

from latentforge.train.sghmc import SCHEDULES, SGHMC, collection_steps, flatten, sample_sghmc, step_schedule  # noqa: E402

warn_moved(__name__, "latentforge.train.sghmc")

__all__ = ['SCHEDULES', 'SGHMC', 'collection_steps', 'flatten', 'sample_sghmc', 'step_schedule']
