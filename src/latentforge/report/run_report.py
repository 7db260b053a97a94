"""The report of a run folder (``compare`` and its ``demo`` preset): a sortable leaderboard with
mean ± std over seeds, then per model (its first finished run) training curves, reconstructions
and samples (image grids with the real test images on top; for tables per-column errors and
scatters on the data's first two principal axes), the embedding map, per-dimension KL/activity
bars and anomaly ROC curves where they apply.

It takes plain arrays and mappings, never datasets or estimators: the report sits below the
workflows that produce them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .html import (
    Figure,
    bar_charts,
    embedding_map,
    feature_scatter,
    image_grid,
    render_report,
    roc_curves,
    training_curves,
)

LEAD_COLUMNS = [
    ("model", "model", ""), ("recon_mse", "recon. MSE ↓", "min"), ("probe_acc", "linear probe ↑", "max"),
    ("knn_acc", "k-NN ↑", "max"), ("retrieval_map10", "mAP@10 ↑", "max"), ("gen_sw", "gen. SW₂ ↓", "min"),
    ("gen_frechet", "gen. Fréchet ↓", "min"), ("gen_precision", "precision ↑", "max"),
    ("gen_recall", "recall ↑", "max"), ("active_units", "active units", ""), ("mig", "MIG ↑", "max"),
    ("anomaly_auroc", "anomaly AUROC ↑", "max"), ("epochs_run", "epochs", ""), ("train_seconds", "train s", ""),
    ("runs_ok", "runs ok", ""), ("errors", "errors", ""),
]


def _leaderboard_rows(board: pd.DataFrame) -> tuple[list[tuple[str, str, str]], list[dict[str, Any]]]:
    """The columns present in ``board`` and its rows, with ``mean ± std`` texts over several seeds."""
    rows = []
    for rec in board.to_dict(orient="records"):
        row: dict[str, Any] = {}
        for key, _, _ in LEAD_COLUMNS:
            value = rec.get(key)
            if isinstance(value, float) and f"{key}_std" in rec and rec.get("runs_ok", 0) > 1:
                row[key] = value
                row[f"{key}__text"] = f"{value:.4g} ± {rec[f'{key}_std']:.2g}"
            else:
                row[key] = value if not (isinstance(value, float) and np.isnan(value)) else "—"
        rows.append(row)
    # an errors column only when a run failed: an empty column would only widen the table
    has_errors = "errors" in board.columns and board["errors"].fillna("").astype(str).str.len().gt(0).any()
    shown = [c for c in LEAD_COLUMNS if (c[0] in board.columns and (c[0] != "errors" or has_errors))
             or c[0] == "model"]
    return shown, rows


def _having(runs: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """Each model's ``key`` entry, for the models whose run has it (a skipped group leaves it out)."""
    return {name: run[key] for name, run in runs.items() if run.get(key) is not None and len(run[key])}


def _figures(runs: dict[str, dict[str, Any]], test_images: np.ndarray | None, labels: np.ndarray | None) -> list[Figure]:
    if not runs:
        return []
    sections = [training_curves(_having(runs, "history"))]
    recons, samples = _having(runs, "reconstructions"), _having(runs, "samples")
    if test_images is not None:
        shape = test_images.shape[1:]
        as_images = {name: np.asarray(a).reshape((-1, *shape)) for name, a in recons.items()}
        sections.append(image_grid({"test data": test_images[:10], **as_images}, "Reconstructions",
                                   "Top row: the first ten held-out test images; below: each model's reconstruction."))
        if samples:
            sections.append(image_grid({n: np.asarray(a).reshape((-1, *shape)) for n, a in samples.items()}, "Samples",
                                       "Ten generated images per model (its default sampler: the prior, or a "
                                       "mixture fitted on the codes)."))
    else:
        errors = _having(runs, "column_errors")
        if errors:
            sections.append(bar_charts(errors, "Per-column reconstruction error",
                                       "RMSE in the column's own units (numeric) and accuracy (categorical) on the test split."))
        reference = next(iter(_having(runs, "test_features").values()), None)
        if reference is not None:
            sections.append(feature_scatter(recons, reference, "Reconstructions",
                                            "Test rows and their reconstructions on the data's first two principal axes."))
            if samples:
                sections.append(feature_scatter(samples, reference, "Samples",
                                                "Generated rows against held-out rows on the data's first two principal axes."))
    codes = _having(runs, "Z_test")
    if codes:
        sections.append(embedding_map(codes, labels))
    bars = _having(runs, "bars")
    if bars:
        sections.append(bar_charts(bars, "Latent dimensions", "Per-dimension KL to the prior (VAE-type models) and "
                                   "activity (variance over the test set of the code or posterior mean).", per_dimension=True))
    roc = _having(runs, "roc")
    if roc:
        sections.append(roc_curves({name: (r["fpr"], r["tpr"]) for name, r in roc.items()}))
    return sections


def write_run_report(
    out: str | Path, title: str, subtitle: str, board: pd.DataFrame, runs: dict[str, dict[str, Any]], *,
    test_images: np.ndarray | None = None, labels: np.ndarray | None = None, metric_note: str = "",
) -> Path:
    """Write ``out/report.html`` (atomically) and return its path.

    ``board``: the leaderboard (one row per model, ``KEY`` and ``KEY_std`` columns). ``runs``:
    per model name the run to picture: ``history`` (list of epoch records) and the arrays of
    ``latentforge.workflows.evaluate_estimator``'s details (``Z_test``, ``reconstructions``,
    ``samples``, ``test_features``, ``column_errors``, ``bars``, ``roc``), each optional.
    ``test_images``: the test split's first images, (n, C, H, W) in [0, 1], for image data
    (None for tables); ``labels``: the test labels, to colour the embedding map.
    """
    columns, rows = _leaderboard_rows(board)
    return render_report(Path(out) / "report.html", title, subtitle, columns, rows,
                         _figures(runs, test_images, labels), metric_note=metric_note, sortable=True)
