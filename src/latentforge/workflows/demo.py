"""The main job: ae, vae and swae on one dataset with the same architecture and budget — a
preset of :func:`~latentforge.workflows.compare.run_compare` (one seed, an 80/20 split), so it
writes the same run folder and report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .compare import CompareConfig, run_compare

DEMO_MODELS = ("ae", "vae", "swae")


def run_demo(
    dataset: str = "digits", out: str | Path = "runs/demo", models: tuple[str, ...] = DEMO_MODELS, seed: int = 0,
    verbose: bool | None = None, **shared: Any,
) -> pd.DataFrame:
    """Compare ``models`` on ``dataset`` into ``out`` and return the leaderboard (one row per
    model: ``recon_mse``, ``probe_acc``, ``gen_sw``, ``epochs_run``, ``train_seconds``, ...).

    Split: 20% test (stratified, ``random_state=seed``), the estimator holds out 10% of the rest
    for validation. ``shared``: Autoencoder parameters for every model (e.g. ``epochs``,
    ``latent_dim``); those not given keep the estimator's defaults. ``verbose``: progress bars
    (None: only on a terminal). Re-running with the same settings reuses the finished runs.
    """
    config = CompareConfig(dataset=dataset, models=[{"model": m} for m in models], seeds=[seed], split_seed=seed,
                           test_fraction=0.2, shared=shared)
    return run_compare(config, out, progress=verbose, title=f"latentforge demo: {dataset}")
