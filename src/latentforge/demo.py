"""Deprecated: ``latentforge.demo`` moved to ``latentforge.workflows.demo``; this path is kept for one release."""

from latentforge._deprecation import warn_moved

from latentforge.workflows.demo import DEMO_MODELS, run_demo  # noqa: E402

warn_moved(__name__, "latentforge.workflows.demo")

__all__ = ['DEMO_MODELS', 'run_demo']
