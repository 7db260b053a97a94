"""Deprecated: ``latentforge.compare`` moved to ``latentforge.workflows.compare``; this path is kept for one release."""

from latentforge._deprecation import warn_moved

from latentforge.workflows.compare import CompareConfig, leaderboard, load_compare_config, run_compare  # noqa: E402

warn_moved(__name__, "latentforge.workflows.compare")

__all__ = ['CompareConfig', 'leaderboard', 'load_compare_config', 'run_compare']
