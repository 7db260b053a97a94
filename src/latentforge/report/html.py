"""Build report figures and render them into one self-contained HTML file."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: E402

from .._version import __version__  # noqa: E402
from ..fsutil import atomic_write  # noqa: E402


@dataclass
class Figure:
    title: str
    png: str  # base64
    note: str = ""


def _encode(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def training_curves(histories: dict[str, list[dict[str, float]]]) -> Figure:
    fig, axes = plt.subplots(1, len(histories), figsize=(4.2 * len(histories), 3.2), squeeze=False)
    for ax, (name, hist) in zip(axes[0], histories.items()):
        epochs = [h["epoch"] for h in hist]
        ax.plot(epochs, [h["train_total"] for h in hist], label="train")
        if hist and "val_total" in hist[0]:
            ax.plot(epochs, [h["val_total"] for h in hist], label="validation")
        ax.set_title(name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (total)")
        ax.legend()
    fig.tight_layout()
    return Figure("Training curves", _encode(fig), "Total loss per epoch; the saved weights are those of the best validation epoch.")


def image_grid(rows: dict[str, np.ndarray], title: str, note: str = "", n: int = 10) -> Figure:
    """One row of n images per entry; arrays are (N, C, H, W) in [0, 1]."""
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 1.0), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                img = np.asarray(images[c])
                img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
                ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        axes[r][0].text(-0.15, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.1)
    return Figure(title, _encode(fig), note)


def feature_scatter(rows: dict[str, np.ndarray], reference: np.ndarray, title: str, note: str = "") -> Figure:
    """Tables: the reference and each entry projected on the reference's first two principal axes."""
    ref = np.asarray(reference, dtype=float).reshape(len(reference), -1)
    mean = ref.mean(0)
    _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
    axes2 = vt[:2].T
    fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 3.4), squeeze=False)
    for ax, (name, data) in zip(axes[0], rows.items()):
        p_ref = (ref - mean) @ axes2
        p = (np.asarray(data, dtype=float).reshape(len(data), -1) - mean) @ axes2
        ax.scatter(p_ref[:, 0], p_ref[:, 1], s=6, alpha=0.4, label="held-out data")
        ax.scatter(p[:, 0], p[:, 1], s=6, alpha=0.6, label=name)
        ax.set_title(name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return Figure(title, _encode(fig), note)


def embedding_map(embeddings: dict[str, np.ndarray], labels: np.ndarray | None) -> Figure:
    """2-D PCA of each model's embeddings, coloured by label (numbers or text)."""
    names, codes = (None, None) if labels is None else np.unique(np.asarray(labels).astype(str), return_inverse=True)
    fig, axes = plt.subplots(1, len(embeddings), figsize=(4.2 * len(embeddings), 3.8), squeeze=False)
    for ax, (name, Z) in zip(axes[0], embeddings.items()):
        Z = np.asarray(Z, dtype=float)
        Zc = Z - Z.mean(0)
        _, _, vt = np.linalg.svd(Zc, full_matrices=False)
        P = Zc @ vt[:2].T if Z.shape[1] >= 2 else np.c_[Zc[:, 0], np.zeros(len(Z))]
        sc = ax.scatter(P[:, 0], P[:, 1], c=codes, cmap="tab10", s=7)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        if names is not None and len(names) <= 12:
            handles, _ = sc.legend_elements()
            ax.legend(handles, list(names)[:len(handles)], fontsize=6, loc="best", markerscale=0.7)
    fig.tight_layout()
    return Figure("Embeddings (2-D PCA of the test-set codes)", _encode(fig), "Colour = label.")


def bar_charts(groups: dict[str, dict[str, Any]], title: str, note: str = "", per_dimension: bool = False) -> Figure:
    """One panel per model: named values as horizontal bars, or (``per_dimension``) each named
    vector as bars over latent dimensions."""
    n = len(groups)
    panels = max((len(v) for v in groups.values()), default=1) if per_dimension else 1
    fig, axes = plt.subplots(panels, n, figsize=(4 * n, 2.8 * panels), squeeze=False)
    for c, (name, values) in enumerate(groups.items()):
        if per_dimension:
            for r, (label, vec) in enumerate(values.items()):
                ax = axes[r][c]
                vec = np.atleast_1d(np.asarray(vec, dtype=float))
                ax.bar(np.arange(len(vec)), vec, color="#4c72b0")
                ax.set_title(f"{name}: {label}", fontsize=8)
                ax.set_xlabel("latent dimension", fontsize=7)
            for r in range(len(values), panels):  # a model with fewer vectors leaves no empty frames
                axes[r][c].axis("off")
        else:
            ax = axes[0][c]
            labels = list(values)
            ax.barh(np.arange(len(labels)), [values[k] for k in labels], color="#4c72b0")
            ax.set_yticks(np.arange(len(labels)), labels, fontsize=6)
            ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return Figure(title, _encode(fig), note)


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """ROC curves (false-positive rate, true-positive rate) of each model's anomaly scores."""
    from sklearn.metrics import auc

    fig, ax = plt.subplots(figsize=(4.5, 4))
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return Figure("Anomaly detection", _encode(fig), "Combined score (reconstruction + latent Mahalanobis); "
                                                      "outliers = test rows outside the normal class.")


def metrics_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> tuple[list, list]:
    """(columns, rows) for the template. ``columns``: (key, label, 'min'|'max'|'') — best marked.
    A row may carry ``KEY__text`` to show instead of the number (e.g. mean ± std)."""
    best: dict[str, Any] = {}
    for key, _, direction in columns:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and np.isfinite(r[key])]
        if direction and values:
            best[key] = min(values) if direction == "min" else max(values)
    out_rows = []
    for r in rows:
        cells = {k: r.get(f"{k}__text") or (f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "—")))
                 for k, _, _ in columns}
        sort = {k: (r[k] if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) else "")
                for k, _, _ in columns}
        out_rows.append({"cells": cells, "sort": sort,
                         "best": {k: r.get(k) == best.get(k) for k, _, _ in columns if k in best}})
    return [{"key": k, "label": label} for k, label, _ in columns], out_rows


def render_report(
    path: str | Path, title: str, subtitle: str, columns: list[tuple[str, str, str]], rows: list[dict[str, Any]],
    sections: list[Figure], metric_note: str = "", sortable: bool = False,
) -> Path:
    """Write one self-contained HTML file (atomically); ``sortable`` adds click-to-sort headers."""
    env = Environment(loader=PackageLoader("latentforge.report", "templates"), autoescape=select_autoescape(["html"]))
    cols, table_rows = metrics_table(rows, columns)
    html = env.get_template("report.html").render(
        title=title, subtitle=subtitle, columns=cols, rows=table_rows, sections=sections,
        metric_note=metric_note, version=__version__, sortable=sortable)
    return atomic_write(path, html.encode())
