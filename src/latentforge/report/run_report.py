"""The report of a run folder (``compare`` and its ``demo`` preset): a sortable leaderboard with
mean ± std over seeds (``± –`` where a model has one run; the best value of a column marked only
where it beats another model's), then per model (its first finished run) training curves,
reconstructions and samples (image grids with the real test images on top; for tables per-column
errors on a scale the columns share, and scatters on the data's first two principal axes), the
embedding map (UMAP when umap-learn is installed, else PCA, with labelled axes), per-dimension
activity and KL bars (KL only for models with a posterior) and anomaly ROC curves where they apply.

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
    column_error_chart,
    embedding_map,
    feature_scatter,
    image_grid,
    latent_dimension_bars,
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
    """The columns present in ``board`` and its rows. Where the board has a ``KEY_std`` column
    each cell gets its spread (``KEY__std``): ``± std`` over a model's runs, or ``± –`` for a
    model with a single finished run (one seed gives no spread; the board's 0.0 is not one)."""
    rows = []
    for rec in board.to_dict(orient="records"):
        row: dict[str, Any] = {}
        for key, _, _ in LEAD_COLUMNS:
            value = rec.get(key)
            finite = isinstance(value, float) and np.isfinite(value)
            row[key] = value if not (isinstance(value, float) and np.isnan(value)) else "—"
            std = rec.get(f"{key}_std")
            if finite and f"{key}_std" in rec:
                several = rec.get("runs_ok", 0) > 1 and isinstance(std, float) and np.isfinite(std)
                row[f"{key}__std"] = f"± {std:.2g}" if several else "± –"
        rows.append(row)
    # an errors column only when a run failed: an empty column would only widen the table
    has_errors = "errors" in board.columns and board["errors"].fillna("").astype(str).str.len().gt(0).any()
    shown = [c for c in LEAD_COLUMNS if (c[0] in board.columns and (c[0] != "errors" or has_errors))
             or c[0] == "model"]
    return shown, rows


def _having(runs: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """Each model's ``key`` entry, for the models whose run has it (a skipped group leaves it out)."""
    return {name: run[key] for name, run in runs.items() if run.get(key) is not None and len(run[key])}


def normalised_column_errors(run: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """A table run's per-column errors on a common scale: (numeric column → RMSE in standard
    deviations of the test column, categorical column → accuracy).

    ``column_errors`` holds the RMSE in the column's own units (``"RMSE NAME"``) and accuracies
    (``"accuracy NAME"``). The standard deviation comes from ``column_std`` (column → standard
    deviation of the test column, in its units) when the run has it; otherwise the ratio is
    computed in feature space from ``test_features`` and ``reconstructions``, where the
    preprocessor puts one standardised column per numeric column first, in column order
    (RMSE / standard deviation does not change under that affine map; rows: those kept for the
    report, every test row up to 1,000)."""
    errors = run.get("column_errors") or {}
    rmse = {k[len("RMSE "):]: float(v) for k, v in errors.items() if k.startswith("RMSE ")}
    accuracy = {k[len("accuracy "):]: float(v) for k, v in errors.items() if k.startswith("accuracy ")}
    stds = run.get("column_std")
    if stds is not None and len(stds):
        scaled = {c: e / float(stds[c]) if c in stds and float(stds[c]) > 0 else np.nan for c, e in rmse.items()}
        return scaled, accuracy
    ref, rec = run.get("test_features"), run.get("reconstructions")
    if not rmse or ref is None or rec is None:
        return {}, accuracy
    ref = np.asarray(ref, dtype=float).reshape(len(ref), -1)
    rec = np.asarray(rec, dtype=float).reshape(len(rec), -1)
    if ref.shape != rec.shape or ref.shape[1] < len(rmse):
        return {}, accuracy
    out = {}
    for j, column in enumerate(rmse):
        std = ref[:, j].std()
        out[column] = float(np.sqrt(np.mean((ref[:, j] - rec[:, j]) ** 2)) / std) if std > 0 else np.nan
    return out, accuracy


def _probe(board: pd.DataFrame | None) -> dict[str, float]:
    if board is None or "probe_acc" not in board.columns:
        return {}
    return {str(m): float(v) for m, v in zip(board["model"], board["probe_acc"])
            if isinstance(v, (int, float)) and np.isfinite(v)}


def report_figures(runs: dict[str, dict[str, Any]], test_images: np.ndarray | None, labels: np.ndarray | None,
                   board: pd.DataFrame | None = None) -> list[Figure]:
    """The report's figures (see the module docstring), as :class:`~latentforge.report.html.Figure`
    objects: each keeps the panels it drew and the numbers it drew."""
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
        errors = {name: normalised_column_errors(run) for name, run in runs.items() if run.get("column_errors")}
        numeric = {n: e[0] for n, e in errors.items() if e[0]}
        categorical = {n: e[1] for n, e in errors.items() if e[1]}
        if numeric or categorical:
            kinds = ([] if not numeric else ["numeric columns as RMSE divided by the column's standard deviation (so "
                                             "a column in the thousands and one in fractions are comparable; 1 = no "
                                             "better than predicting the mean)"]) + \
                    ([] if not categorical else ["categorical columns as the share of rows whose category comes back"])
            sections.append(column_error_chart(numeric, categorical, "Reconstruction error per column on the test "
                                               "split: " + ", ".join(kinds) + "."))
        reference = next(iter(_having(runs, "test_features").values()), None)
        if reference is not None:
            sections.append(feature_scatter(recons, reference, "Reconstructions",
                                            "Test rows and their reconstructions on the data's first two principal "
                                            "axes (preprocessed features).", what="reconstruction"))
            if samples:
                sections.append(feature_scatter(samples, reference, "Samples",
                                                "Generated rows against held-out rows on the data's first two "
                                                "principal axes (preprocessed features).", what="generated rows"))
    codes = _having(runs, "Z_test")
    if codes:
        sections.append(embedding_map(codes, labels, probe=_probe(board)))
    bars = _having(runs, "bars")
    if bars:
        sections.append(latent_dimension_bars(bars))
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
    ``samples``, ``test_features``, ``column_errors``, ``bars``, ``roc``), each optional, and
    ``column_std`` (column → standard deviation of the test column, to scale ``column_errors``;
    see :func:`normalised_column_errors`).
    ``test_images``: the test split's first images, (n, C, H, W) in [0, 1], for image data
    (None for tables); ``labels``: the test labels, to colour the embedding map.
    """
    columns, rows = _leaderboard_rows(board)
    return render_report(Path(out) / "report.html", title, subtitle, columns, rows,
                         report_figures(runs, test_images, labels, board), metric_note=metric_note, sortable=True)
