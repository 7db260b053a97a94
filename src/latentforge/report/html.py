"""Build report figures and render them into one self-contained HTML file.

Every figure is sized for a page about 1,200 px wide (the report's column at a 1280 px window):
at most three panels a row (more models wrap onto further rows), legends outside the axes, tick
labels at 8 pt or more (about 12 px at the 110 dpi the PNGs are written at). A :class:`Figure`
keeps, besides the PNG, the titles of the panels it drew and the numbers it drew, so tests and
callers can check a figure without reading pixels.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
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

#: panels per figure row: three fill the page's ~1,200 px at 110 dpi without being scaled down
MAX_COLUMNS = 3
#: font sizes (pt): ticks and legends, axis labels, panel titles
TICK, LABEL, TITLE = 8, 9, 10
#: the most columns the per-column error chart shows (the largest errors first beyond that)
MAX_TABLE_COLUMNS = 40
#: a label with at most this many distinct values gets a legend; more numeric values get a colour bar
MAX_LEGEND_CLASSES = 20


@dataclass
class Figure:
    """One report section: ``title``, the PNG (base64) and a ``note`` under the title.

    ``panels``: the titles of the axes drawn (a panel without data is never drawn);
    ``values``: the numbers drawn, by panel (for tests and for anyone re-using the report).
    """

    title: str
    png: str  # base64
    note: str = ""
    panels: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


def _encode(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _style(ax: Any) -> None:
    ax.tick_params(labelsize=TICK)


def _panel_grid(n: int, width: float, height: float, columns: int = MAX_COLUMNS) -> tuple[Any, list[Any]]:
    """A figure with ``n`` panels, at most ``columns`` a row; grid cells past ``n`` are removed
    (no empty frames). Returns (figure, the n axes in order)."""
    ncols = max(1, min(n, columns))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        fig.delaxes(ax)
    for ax in flat[:n]:
        _style(ax)
    return fig, flat[:n]


def training_curves(histories: dict[str, list[dict[str, float]]]) -> Figure:
    fig, axes = _panel_grid(len(histories), 3.5, 2.8)
    has_val = False
    for ax, (name, hist) in zip(axes, histories.items()):
        epochs = [h["epoch"] for h in hist]
        ax.plot(epochs, [h["train_total"] for h in hist], color="C0", marker="." if len(hist) < 3 else None)
        if hist and "val_total" in hist[0]:
            has_val = True
            ax.plot(epochs, [h["val_total"] for h in hist], color="C1", marker="." if len(hist) < 3 else None)
        ax.set_title(name, fontsize=TITLE)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if len(epochs) == 1:  # one point: one tick, not a fractional axis around it
            ax.set_xticks(epochs)
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
        ax.set_xlabel("epoch", fontsize=LABEL)
        ax.set_ylabel("loss (total)", fontsize=LABEL)
    handles = [plt.Line2D([], [], color="C0", label="train")]
    if has_val:
        handles.append(plt.Line2D([], [], color="C1", label="validation"))
    fig.tight_layout()
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles),
               fontsize=TICK, frameon=False)
    return Figure("Training curves", _encode(fig), "Total loss per epoch; the saved weights are those of the best "
                  "validation epoch.", panels=list(histories))


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
        axes[r][0].text(-0.15, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center", fontsize=LABEL)
    fig.subplots_adjust(wspace=0.05, hspace=0.1)
    return Figure(title, _encode(fig), note, panels=list(rows))


def _principal_axes(X: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, the first ``k`` principal directions as columns, their shares of the variance)."""
    mean = X.mean(0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    total = float((s ** 2).sum())
    share = (s ** 2) / total if total > 0 else np.zeros_like(s)
    return mean, vt[:k].T, share[:k]


def feature_scatter(rows: dict[str, np.ndarray], reference: np.ndarray, title: str, note: str = "",
                    what: str = "model") -> Figure:
    """Tables: the reference and each entry projected on the reference's first two principal axes."""
    ref = np.asarray(reference, dtype=float).reshape(len(reference), -1)
    mean, axes2, share = _principal_axes(ref)
    fig, axes = _panel_grid(len(rows), 3.5, 3.0)
    p_ref = (ref - mean) @ axes2
    for ax, (name, data) in zip(axes, rows.items()):
        p = (np.asarray(data, dtype=float).reshape(len(data), -1) - mean) @ axes2
        ax.scatter(p_ref[:, 0], p_ref[:, 1], s=6, alpha=0.4, color="C0")
        if p.shape[1] > 1:
            ax.scatter(p[:, 0], p[:, 1], s=6, alpha=0.6, color="C1")
        ax.set_title(name, fontsize=TITLE)
        ax.set_xlabel(f"PC 1 of the data ({share[0]:.0%} var.)", fontsize=LABEL)
        if len(share) > 1:
            ax.set_ylabel(f"PC 2 ({share[1]:.0%} var.)", fontsize=LABEL)
    fig.tight_layout()
    handles = [plt.Line2D([], [], ls="", marker="o", color="C0", alpha=0.5, label="held-out test rows"),
               plt.Line2D([], [], ls="", marker="o", color="C1", label=what)]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=TICK, frameon=False)
    return Figure(title, _encode(fig), note, panels=list(rows))


def _umap_module() -> Any:
    """``umap`` (umap-learn) when it is installed, else None: the embedding map then uses PCA."""
    try:
        import umap  # type: ignore[import-not-found]
    except ImportError:
        return None
    return umap


def _map_2d(Z: np.ndarray, method: str) -> tuple[np.ndarray, tuple[str, str]]:
    """Codes → 2-D points and the two axis labels, by ``method`` ("umap" or "pca")."""
    if Z.shape[1] < 2:  # a one-dimensional code is drawn as it is
        return np.c_[Z[:, 0] - Z[:, 0].mean(), np.zeros(len(Z))], ("the code (1-D)", "")
    if method == "umap":
        umap = _umap_module()
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(Z) - 1), random_state=0)
        return np.asarray(reducer.fit_transform(Z), dtype=float), ("UMAP 1", "UMAP 2")
    mean, axes2, share = _principal_axes(Z)
    return (Z - mean) @ axes2, (f"PC 1 ({share[0]:.0%} var.)", f"PC 2 ({share[1]:.0%} var.)")


def embedding_map(embeddings: dict[str, np.ndarray], labels: np.ndarray | None,
                  probe: dict[str, float] | None = None, method: str | None = None) -> Figure:
    """A 2-D map of each model's test codes, coloured by label (classes, or a colour bar for
    many numeric values). ``method``: "umap" (needs umap-learn) or "pca"; by default UMAP when
    it is installed, else PCA. ``probe``: each model's linear-probe accuracy, shown in its title."""
    method = method or ("umap" if _umap_module() is not None else "pca")
    usable = {n: np.asarray(Z, dtype=float) for n, Z in embeddings.items()}
    if method == "umap" and any(len(Z) < 10 for Z in usable.values()):
        method = "pca"  # UMAP needs a neighbourhood; a handful of rows is shown by PCA
    lab = None if labels is None else np.asarray(labels)
    numeric = lab is not None and lab.dtype.kind in "iufb"
    classes, codes = (None, None) if lab is None else np.unique(lab.astype(str) if not numeric else lab,
                                                                  return_inverse=True)
    continuous = lab is not None and numeric and len(classes) > MAX_LEGEND_CLASSES
    palette = np.asarray(plt.get_cmap("tab10" if classes is None or len(classes) <= 10 else "tab20").colors)
    fig, axes = _panel_grid(len(usable), 3.3, 3.0)
    scatter = None
    for ax, (name, Z) in zip(axes, usable.items()):
        P, (xlabel, ylabel) = _map_2d(Z, method)
        if lab is None:  # one colour: no colour map without values to map
            ax.scatter(P[:, 0], P[:, 1], s=7, color="C0")
        elif continuous:
            scatter = ax.scatter(P[:, 0], P[:, 1], c=lab.astype(float), cmap="viridis", s=7)
        else:
            ax.scatter(P[:, 0], P[:, 1], c=palette[codes % len(palette)], s=7)
        title = name if not probe or probe.get(name) is None else f"{name} (linear probe {probe[name]:.2f})"
        ax.set_title(title, fontsize=TITLE)
        ax.set_xlabel(xlabel, fontsize=LABEL)
        ax.set_ylabel(ylabel, fontsize=LABEL)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if scatter is not None:  # many numeric label values: a colour bar beside the panels
        bar = fig.colorbar(scatter, ax=axes, fraction=0.03, pad=0.02)
        bar.ax.tick_params(labelsize=TICK)
        bar.set_label("label", fontsize=LABEL)
    elif classes is not None and len(classes) <= MAX_LEGEND_CLASSES:
        handles = [plt.Line2D([], [], ls="", marker="o", markersize=5, color=palette[i % len(palette)], label=str(c))
                   for i, c in enumerate(classes)]
        fig.legend(handles=handles, title="label", loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=TICK,
                   title_fontsize=TICK, frameon=False, ncol=1 if len(classes) <= 12 else 2)
    used = "UMAP" if method == "umap" else "PCA"
    if method == "umap":
        what = ("Each point is a test row, placed by UMAP (umap-learn, 15 neighbours, random_state 0) of that model's "
                "codes: UMAP keeps neighbourhoods, not distances or cluster sizes.")
    else:
        what = ("Each point is a test row, placed by the first two principal components of that model's codes (the "
                "axes give the share of the codes' variance each holds).")
    if lab is None:
        colour = ""
    elif not continuous and len(classes) > MAX_LEGEND_CLASSES:
        colour = " Colour = label (colours repeat beyond 20 classes)."
    else:
        colour = " Colour = label."
    note = what + colour
    if lab is not None:
        note += (" A 2-D projection can hide a separation that the linear probe, fitted on all the code's dimensions, "
                 "finds: classes that overlap here can still be told apart along other directions.")
    if method == "pca" and _umap_module() is None:
        note += " Install umap-learn (pip install 'latentforge[umap]') for a UMAP map."
    return Figure(f"Embeddings (2-D {used} of the test-set codes)", _encode(fig), note, panels=list(usable),
                  values={"method": method})


def column_error_chart(numeric: dict[str, dict[str, float]], categorical: dict[str, dict[str, float]],
                       note: str = "") -> Figure:
    """Per-column reconstruction error of every model, grouped by column: ``numeric`` maps model →
    {column: RMSE in standard deviations of the column}, ``categorical`` model → {column:
    accuracy}. Two panels with their own axes (only the ones with data); beyond
    :data:`MAX_TABLE_COLUMNS` columns the largest errors (lowest accuracies) are shown."""
    models = list(dict.fromkeys([*numeric, *categorical]))
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    panels: list[tuple[str, dict[str, dict[str, float]], bool]] = []
    if any(numeric.values()):
        panels.append(("numeric columns: RMSE / standard deviation of the column", numeric, True))
    if any(categorical.values()):
        panels.append(("categorical columns: accuracy", categorical, False))
    shown: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for title, data, is_error in panels:
        columns = list(dict.fromkeys(c for values in data.values() for c in values))
        totals[title] = len(columns)
        if len(columns) > MAX_TABLE_COLUMNS:
            worst = {c: np.nanmean([v.get(c, np.nan) for v in data.values()]) for c in columns}
            keep = sorted(columns, key=lambda c: -worst[c] if is_error else worst[c])[:MAX_TABLE_COLUMNS]
            columns = [c for c in columns if c in keep]
        shown[title] = columns
    heights = [0.3 + len(shown[t]) * (0.11 * len(models) + 0.1) for t, _, _ in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.5, sum(heights) + 0.7 * len(panels)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    values: dict[str, dict[str, dict[str, float]]] = {}
    for ax, (title, data, is_error) in zip(axes[:, 0], panels):
        _style(ax)
        columns = shown[title]
        step = 0.8 / max(1, len(models))
        for i, m in enumerate(models):
            ys = np.arange(len(columns)) - 0.4 + step * (i + 0.5)
            xs = [data.get(m, {}).get(c, np.nan) for c in columns]
            ax.barh(ys, xs, height=step * 0.9, color=colours[m], label=m)
        ax.set_yticks(np.arange(len(columns)), columns)
        ax.set_ylim(len(columns) - 0.5, -0.5)  # the first column on top, no margins
        ax.set_title(title, fontsize=TITLE, loc="left")
        if is_error:
            ax.axvline(1.0, color="grey", ls="--", lw=0.8)
            ax.set_xlabel("RMSE in standard deviations of the column (1 = no better than predicting the mean) ↓",
                          fontsize=LABEL)
        else:
            ax.set_xlim(0, 1)
            ax.set_xlabel("share of test rows whose category is reconstructed ↑", fontsize=LABEL)
        ax.grid(axis="x", color="#e6e9ef", lw=0.6)
        ax.set_axisbelow(True)
        values[title] = {m: {c: data.get(m, {}).get(c, np.nan) for c in columns} for m in models}
    fig.tight_layout()
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[m], label=m) for m in models]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=TICK, frameon=False,
               title="model", title_fontsize=TICK)
    if any(len(shown[t]) < n for t, n in totals.items()):
        note += f" Only the {MAX_TABLE_COLUMNS} columns with the largest errors are shown."
    return Figure("Per-column reconstruction error", _encode(fig), note.strip(), panels=[t for t, _, _ in panels],
                  values=values)


def latent_dimension_bars(groups: dict[str, dict[str, np.ndarray]]) -> Figure:
    """Per-dimension bars: a block of rows per quantity (activity first, then KL to the prior);
    in each block a model's panel sits in the same grid cell as in the first. A model without a
    quantity gets no panel (an empty frame would read as zeros), a block row with no panel at all
    is dropped, and the note says in one line which models lack what. ``groups``: model →
    {label: vector}; labels that differ only in their parenthesis (``activity (variance of the
    code)`` / ``activity (variance of the mean)``) are one quantity."""
    def quantity(label: str) -> str:
        return label.split(" (")[0]

    models = list(groups)
    order = sorted(dict.fromkeys(quantity(k) for v in groups.values() for k in v),
                   key=lambda q: (not q.startswith("activity"), q))
    ncols = max(1, min(len(models), MAX_COLUMNS))
    cells: list[tuple[int, int, str, str]] = []  # (grid row, grid column, model, label)
    n_rows = 0
    for q in order:
        entries = [(i, m, k) for i, m in enumerate(models) for k in groups[m] if quantity(k) == q]
        used = {r: n_rows + j for j, r in enumerate(sorted({i // ncols for i, _, _ in entries}))}
        cells += [(used[i // ncols], i % ncols, m, k) for i, m, k in entries]
        n_rows += len(used)
    fig = plt.figure(figsize=(3.5 * ncols, 2.5 * max(1, n_rows)))
    grid = fig.add_gridspec(max(1, n_rows), ncols)
    panels, values = [], {}
    for r, c, m, label in cells:
        vec = np.atleast_1d(np.asarray(groups[m][label], dtype=float))
        ax = fig.add_subplot(grid[r, c])
        _style(ax)
        ax.bar(np.arange(len(vec)), vec, color="#4c72b0")
        ax.set_title(m, fontsize=TITLE)
        ax.set_ylabel(label, fontsize=LABEL if len(label) <= 26 else TICK)
        ax.set_xlabel("latent dimension", fontsize=LABEL)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        panels.append(f"{m}: {label}")
        values[f"{m}: {label}"] = vec
    fig.tight_layout()
    note = ("Per-dimension activity (variance over the test set of the code, or of the posterior mean) and, for "
            "models with a posterior (VAE-type), KL to the prior in nats.")
    for q in order:
        having = [m for m in models if any(quantity(k) == q for k in groups[m])]
        if len(having) < len(models):
            why = ("the others have deterministic codes, so no KL to the prior" if q.startswith("KL")
                   else "the others' runs did not record it")
            note += f" {q} is drawn for {', '.join(having)} only: {why}."
    return Figure("Latent dimensions", _encode(fig), note, panels=panels, values=values)


def bar_charts(groups: dict[str, dict[str, Any]], title: str, note: str = "", per_dimension: bool = False) -> Figure:
    """One panel per model: named values as horizontal bars, or (``per_dimension``) each named
    vector as bars over latent dimensions (:func:`latent_dimension_bars`)."""
    if per_dimension:
        fig = latent_dimension_bars(groups)
        return Figure(title, fig.png, note or fig.note, fig.panels, fig.values)
    fig, axes = _panel_grid(len(groups), 3.5, 0.5 + 0.22 * max((len(v) for v in groups.values()), default=1))
    for ax, (name, values) in zip(axes, groups.items()):
        labels = list(values)
        ax.barh(np.arange(len(labels)), [values[k] for k in labels], color="#4c72b0")
        ax.set_yticks(np.arange(len(labels)), labels, fontsize=TICK)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=TITLE)
    fig.tight_layout()
    return Figure(title, _encode(fig), note, panels=list(groups))


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """ROC curves (false-positive rate, true-positive rate) of each model's anomaly scores."""
    from sklearn.metrics import auc

    fig, ax = plt.subplots(figsize=(4.5, 4))
    _style(ax)
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUROC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set_xlabel("false-positive rate", fontsize=LABEL)
    ax.set_ylabel("true-positive rate", fontsize=LABEL)
    ax.legend(fontsize=TICK, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    return Figure("Anomaly detection", _encode(fig), "Combined score (reconstruction + latent Mahalanobis); "
                                                      "outliers = test rows outside the normal class.",
                  panels=["ROC"])


def _display(value: float) -> float:
    """The value as the table shows it (4 significant digits): ties are judged on what is read."""
    return float(f"{value:.4g}")


def metrics_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> tuple[list, list]:
    """(columns, rows) for the template. ``columns``: (key, label, 'min'|'max'|'').

    A cell is marked best when its value (as shown, 4 significant digits) is the best of its
    column and strictly better than at least one other row's: when every row ties nothing is
    marked. A row may carry ``KEY__text`` to show instead of the number and ``KEY__std``, a
    spread shown after it on the same line (``± 0.02``, or ``± –`` where it is unknown)."""
    best: dict[str, Any] = {}
    for key, _, direction in columns:
        values = [_display(r[key]) for r in rows
                  if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) and np.isfinite(r[key])]
        if direction and len(set(values)) > 1:
            best[key] = min(values) if direction == "min" else max(values)
    out_rows = []
    for r in rows:
        cells = {k: r.get(f"{k}__text") or (f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "—")))
                 for k, _, _ in columns}
        spread = {k: r[f"{k}__std"] for k, _, _ in columns if r.get(f"{k}__std")}
        sort = {k: (r[k] if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) else "")
                for k, _, _ in columns}
        marked = {k: isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) and np.isfinite(r[k])
                  and _display(r[k]) == best[k] for k, _, _ in columns if k in best}
        # long text (an error message) may wrap in its cell; numbers and their spread never do
        text = {k for k in cells if sort[k] == "" and len(cells[k]) > 24}
        out_rows.append({"cells": cells, "std": spread, "sort": sort, "best": marked, "text": text})
    # an arrow stays with the last word when a long header takes two lines
    labels = {k: label.replace(" ↓", "\u00a0↓").replace(" ↑", "\u00a0↑") for k, label, _ in columns}
    return [{"key": k, "label": labels[k]} for k, _, _ in columns], out_rows


def render_report(
    path: str | Path, title: str, subtitle: str, columns: list[tuple[str, str, str]], rows: list[dict[str, Any]],
    sections: list[Figure], metric_note: str = "", sortable: bool = False,
) -> Path:
    """Write one self-contained HTML file (atomically); ``sortable`` adds click-to-sort headers."""
    env = Environment(loader=PackageLoader("latentforge.report", "templates"), autoescape=select_autoescape(["html"]))
    cols, table_rows = metrics_table(rows, columns)
    html = env.get_template("report.html").render(
        title=title, subtitle=subtitle, columns=cols, rows=table_rows, sections=sections,
        metric_note=metric_note, version=__version__, sortable=sortable,
        has_spread=any(r["std"] for r in table_rows))
    return atomic_write(path, html.encode())
