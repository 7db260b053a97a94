"""Workflows on top of the estimator: evaluate a fitted model with every metric that applies
(:func:`evaluate_estimator`), compare models × seeds into a run folder with a leaderboard and a
report (:func:`run_compare`), and the demo preset of that comparison (:func:`run_demo`)."""

from .compare import CompareConfig, leaderboard, load_compare_config, run_compare
from .demo import DEMO_MODELS, run_demo
from .evaluation import evaluate_estimator

__all__ = ["DEMO_MODELS", "CompareConfig", "evaluate_estimator", "leaderboard", "load_compare_config",
           "run_compare", "run_demo"]
