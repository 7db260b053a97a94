"""A feature browser for a sparse autoencoder: one self-contained HTML page that shows, per
dictionary feature, how often it fires, how strongly, on which tokens (top contexts) and which
other features point the same way (decoder cosine).

The statistics come from one streaming pass over an activations directory: activations are read
fragment by fragment in storage order and encoded in bounded batches, so the code matrix (tokens
× features) is never held; what is kept is O(F × (top_contexts + fine histogram bins)).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import iter_chunks
from ..errors import InputError
from ..fsutil import atomic_write
from ..validation import positive_int

# Fine histogram bins per feature (a power of two, so doubling the range merges bin pairs exactly).
FINE_BINS = 128
# Most bins a feature's activation histogram shows (it shows between 19 and 24, see _coarse_histogram).
HIST_BINS = 24
# Codes held at once while encoding: batch rows × F float32 values (64 MiB).
CODE_BUDGET = 1 << 24
NEIGHBOURS = 5
DENSE_ABOVE = 0.1  # a feature firing on more than 10 % of the scanned tokens is "dense"


class _FeatureStats:
    """Running per-feature statistics, merged batch by batch (all vectorised over features).

    ``hist`` is a fine histogram over ``[0, 2**exponent)`` per feature, with ``FINE_BINS`` equal
    bins. The range is the smallest power of two above every value seen; when a batch brings a
    larger value, the range doubles as often as needed and adjacent bins are summed in pairs, so
    the histogram stays exact (every value lies in exactly one fine bin of the final range) with
    no second pass over the data.
    """

    def __init__(self, n_features: int, top: int):
        self.F, self.top = n_features, top
        self.count = np.zeros(n_features, dtype=np.int64)
        self.total = np.zeros(n_features, dtype=np.float64)
        self.max = np.zeros(n_features, dtype=np.float64)
        self.exponent = np.zeros(n_features, dtype=np.int64)  # meaningful where count > 0
        self.hist = np.zeros((n_features, FINE_BINS), dtype=np.int64)
        # top entries per feature, strongest first (value desc, then row asc); -inf / -1 = empty slot
        self.top_values = np.full((n_features, top), -np.inf, dtype=np.float32)
        self.top_rows = np.full((n_features, top), -1, dtype=np.int64)

    def update(self, codes: np.ndarray, rows: np.ndarray) -> None:
        fires = codes > 0
        batch_count = fires.sum(0)
        batch_max = np.maximum(codes.max(0), 0).astype(np.float64)
        self._grow_ranges(batch_max, batch_count > 0)
        self.count += batch_count
        self.total += np.maximum(codes, 0).sum(0, dtype=np.float64)
        self.max = np.maximum(self.max, batch_max)
        # only the firing entries matter from here on (codes are mostly zeros)
        i, f = np.nonzero(fires)
        if not len(f):
            return
        v = codes[i, f]
        # fine histogram: every firing entry binned at once with one bincount
        scale = FINE_BINS / np.ldexp(1.0, self.exponent[f])
        b = np.minimum((v.astype(np.float64) * scale).astype(np.int64), FINE_BINS - 1)
        self.hist += np.bincount(f * FINE_BINS + b, minlength=self.F * FINE_BINS).reshape(self.F, FINE_BINS)
        # top-k: only entries above a feature's current k-th value can enter (strictly above, so
        # the earlier row wins a tie), and few do once the lists are full
        keep = v > self.top_values[f, -1]
        self._merge_top(f[keep], v[keep], rows[i[keep]])

    def _grow_ranges(self, batch_max: np.ndarray, fired: np.ndarray) -> None:
        new_exp = np.frexp(batch_max)[1].astype(np.int64)  # batch_max < 2**new_exp
        first = fired & (self.count == 0)
        self.exponent[first] = new_exp[first]
        shift = np.where(fired & (self.count > 0), new_exp - self.exponent, 0)
        for s in np.unique(shift[shift > 0]):
            sel = np.flatnonzero(shift == s)
            h = self.hist[sel]
            merged = np.zeros_like(h)
            if (1 << int(s)) >= FINE_BINS:  # everything seen so far falls in the first new bin
                merged[:, 0] = h.sum(1)
            else:
                k = FINE_BINS >> int(s)
                merged[:, :k] = h.reshape(len(sel), k, 1 << int(s)).sum(2)
            self.hist[sel] = merged
            self.exponent[sel] += s

    def _merge_top(self, feats: np.ndarray, values: np.ndarray, rows: np.ndarray) -> None:
        if not len(feats):
            return
        touched = np.unique(feats)
        old_v, old_r = self.top_values[touched], self.top_rows[touched]
        held = np.isfinite(old_v)
        feats = np.concatenate([np.repeat(touched, self.top)[held.ravel()], feats])
        values = np.concatenate([old_v[held], values.astype(np.float32)])
        rows = np.concatenate([old_r[held], rows])
        order = np.lexsort((rows, -values, feats))  # by feature, then value desc, then row
        feats, values, rows = feats[order], values[order], rows[order]
        rank = np.arange(len(feats)) - np.searchsorted(feats, feats, side="left")
        top = rank < self.top
        self.top_values[touched] = -np.inf
        self.top_rows[touched] = -1
        self.top_values[feats[top], rank[top]] = values[top]
        self.top_rows[feats[top], rank[top]] = rows[top]

    def top_of(self, f: int) -> list[tuple[float, int]]:
        """(value, row) of feature ``f``'s strongest firing tokens, strongest first."""
        held = np.isfinite(self.top_values[f])
        return [(float(v), int(r)) for v, r in zip(self.top_values[f][held], self.top_rows[f][held])]


def _coarse_histogram(fine: np.ndarray, exponent: int, max_value: float) -> tuple[list[int], float]:
    """(counts, bin width): the fine bins up to the maximum, summed in equal groups.

    Groups of ``g`` whole fine bins keep the counts exact; ``g`` is the smallest group that gives
    at most ``HIST_BINS`` bins, so 19 to 24 equal bins cover ``[0, n_bins * width)`` and the last
    one holds the maximum (the range overshoots the maximum by less than one bin).
    """
    fine_width = math.ldexp(1.0, int(exponent)) / FINE_BINS
    used = min(int(max_value / fine_width) + 1, FINE_BINS)
    group = -(-used // HIST_BINS)
    n_bins = -(-used // group)
    padded = np.zeros(n_bins * group, dtype=np.int64)
    take = min(len(padded), FINE_BINS)
    padded[:take] = fine[:take]
    return padded.reshape(n_bins, group).sum(1).tolist(), fine_width * group


def _nearest_features(components: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cosines), each (F, k): the ``k`` other features with the highest decoder cosine.

    Signed cosine (the most similar directions, not the most anti-aligned), computed in blocks
    of rows so only a (block, F) similarity matrix exists at once.
    """
    W = np.asarray(components, dtype=np.float32)
    norms = np.linalg.norm(W, axis=1, keepdims=True)
    W = W / np.where(norms > 0, norms, 1)
    F = len(W)
    k = min(k, F - 1)
    ids = np.zeros((F, k), dtype=np.int64)
    cos = np.zeros((F, k), dtype=np.float32)
    if k <= 0:
        return ids, cos
    for a in range(0, F, block):
        b = min(a + block, F)
        S = W[a:b] @ W.T
        S[np.arange(b - a), np.arange(a, b)] = -np.inf  # a feature is not its own neighbour
        part = np.argpartition(-S, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(S, part, 1)
        order = np.argsort(-vals, axis=1, kind="stable")
        ids[a:b] = np.take_along_axis(part, order, 1)
        cos[a:b] = np.take_along_axis(vals, order, 1)
    return ids, cos


def _log_density_histogram(density: np.ndarray, n_tokens: int) -> dict[str, Any]:
    """Counts of log10(density) in quarter-decade bins from one token in ``n_tokens`` up to 1."""
    alive = density[density > 0]
    lo = math.floor(math.log10(1.0 / max(n_tokens, 1)) * 4) / 4  # a whole quarter-decade below 1/n
    step = 0.25
    n_bins = max(1, round(-lo / step))
    edges = lo + step * np.arange(n_bins + 1)
    counts = np.histogram(np.log10(alive), bins=edges)[0] if len(alive) else np.zeros(n_bins, dtype=np.int64)
    return {"lo": lo, "step": step, "counts": counts.tolist(), "dead": int((density == 0).sum())}


def _round(values: np.ndarray, digits: int = 4) -> list:
    """Floats (any shape, as nested lists) with ``digits`` significant digits: the page needs no
    more and stays small."""
    values = np.asarray(values, dtype=np.float64)
    flat = [float(f"{v:.{digits}g}") for v in values.ravel().tolist()]
    return np.asarray(flat).reshape(values.shape).tolist() if values.ndim > 1 else flat


def _pick_detailed(features: int | Sequence[int] | None, count: np.ndarray) -> np.ndarray:
    F = len(count)
    if features is None:
        return np.arange(F)
    if isinstance(features, (int, np.integer)) and not isinstance(features, bool):
        n = positive_int(features, "features")
        order = np.argsort(-count, kind="stable")  # most frequent first, ties by id
        return np.sort(order[:n][count[order[:n]] > 0])
    ids = np.unique(np.asarray(list(features), dtype=np.int64))
    if len(ids) and (ids.min() < 0 or ids.max() >= F):
        raise InputError(f"features must be ids between 0 and {F - 1}, got {ids.min()}..{ids.max()}.")
    return ids


def _embed_json(data: Any) -> str:
    """Strict JSON that can sit inside a <script> element: '<', '>' and '&' are escaped as \\u
    sequences (still the same JSON), so no token string can close the element."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_feature_browser(
    out: str | Path,
    *,
    encode: Callable[[np.ndarray], np.ndarray],
    components: np.ndarray,
    store: Any,
    max_tokens: int = 200_000,
    top_contexts: int = 10,
    title: str = "SAE features",
    features: int | Sequence[int] | None = None,
) -> Path:
    """Scan an activations directory with a sparse autoencoder and write a feature browser page.

    Parameters
    ----------
    out : path of the HTML file to write (atomically; folders are created).
    encode : ``encode(activations) -> codes``: raw activations ``(n, d)`` float32 to dense codes
        ``(n, F)`` (mostly zeros); a feature "fires" on a token where its code is > 0.
    components : ``(F, d)`` decoder dictionary rows (normalised here before the cosines).
    store : an :class:`~latentforge.sae.store.ActivationStore` (or anything with its API:
        ``source()``, ``contexts(rows)``, ``n_tokens``, ``d``, ``manifest``).
    max_tokens : tokens scanned, the first ones in storage order.
    top_contexts : strongest firing tokens kept per feature, shown with their context.
    title : the page's title.
    features : which features get full details (activation histogram and top contexts).
        None: all. An int N: the N features that fire most often (dead features never count).
        A sequence of ids: those. Every feature stays in the list with its density, maximum and
        nearest features whatever this is; dead features are always listed, marked dead.

    Returns
    -------
    Path
        ``out``.

    Notes
    -----
    One pass, bounded memory: codes exist for one batch of about ``2**24 / F`` tokens at a time;
    per feature the pass keeps its firing count (density = count / tokens scanned), the sum and
    maximum of its activations, the running top ``top_contexts`` (value, row) (per batch only the
    entries above a feature's current k-th value are merged, with one ``lexsort``; ties keep the
    earlier row), and a 128-bin histogram of its non-zero values over a power-of-two range that
    doubles (merging bin pairs) when larger values come, so the counts are exact and need no
    second pass. The page shows them regrouped into 19-24 equal bins from 0 to just above the
    maximum. Nearest features: the 5 highest signed cosines between decoder rows (most similar
    directions; anti-aligned ones are not listed), computed in blocks of 1,024 rows.

    Token strings are stored once in a table the contexts index into, and a context shared by
    several features once: F = 16,384 with 10 contexts each gave 5.8 MB over 20,000 tokens, and
    stays under about 18 MB even when all F × 10 contexts are distinct rows. Contexts come from
    ``store.contexts(rows)`` (8 tokens before, 4 after each), one read for every distinct row.

    Examples
    --------
    >>> from latentforge.sae import open_activations  # doctest: +SKIP
    >>> write_feature_browser("features.html", encode=sae.transform, components=sae.components_,
    ...                       store=open_activations("acts"))  # doctest: +SKIP
    PosixPath('features.html')
    """
    max_tokens = positive_int(max_tokens, "max_tokens")
    top_contexts = positive_int(top_contexts, "top_contexts")
    W = np.asarray(components, dtype=np.float32)
    if W.ndim != 2:
        raise InputError(f"components must be a (features, d) matrix, got shape {W.shape}.")
    F, d = W.shape
    if int(store.d) != d:
        raise InputError(f"components have {d} columns but the activations have d = {store.d}.")

    stats = _FeatureStats(F, top_contexts)
    batch = max(1, CODE_BUDGET // F)
    seen = 0
    for chunk in iter_chunks(store.source(), shuffle=False):
        data = chunk.data.to_numpy(dtype=np.float32) if hasattr(chunk.data, "to_numpy") else chunk.data
        data = np.asarray(data, dtype=np.float32).reshape(len(chunk.rows), -1)
        take = min(len(data), max_tokens - seen)
        for a in range(0, take, batch):
            b = min(a + batch, take)
            codes = np.asarray(encode(data[a:b]), dtype=np.float32)
            if codes.shape != (b - a, F):
                raise InputError(f"encode returned codes of shape {codes.shape} for {b - a} rows; "
                                 f"expected ({b - a}, {F}) to match components.")
            if not np.isfinite(codes).all():
                raise InputError("encode returned non-finite codes (NaN or inf); check the autoencoder's weights.")
            stats.update(codes, np.asarray(chunk.rows[a:b], dtype=np.int64))
        seen += take
        if seen >= max_tokens:
            break
    if seen == 0:
        raise InputError("the activations store has no tokens to scan.")

    density = stats.count / seen
    mean = np.where(stats.count > 0, stats.total / np.maximum(stats.count, 1), 0.0)
    nn_ids, nn_cos = _nearest_features(W, NEIGHBOURS)

    # contexts: one entry per distinct row (rows are often shared between features)
    row_ref: dict[int, int] = {}
    contexts: list[list[Any]] = []
    detail: dict[str, Any] = {}
    shown = [f for f in _pick_detailed(features, stats.count).tolist() if stats.count[f] > 0]
    tops = {f: stats.top_of(f) for f in shown}
    wanted = list(dict.fromkeys(row for f in shown for _, row in tops[f]))
    for row, (tokens, at) in zip(wanted, store.contexts(wanted)):  # one read for all of them
        row_ref[row] = len(contexts)
        contexts.append([[str(t) for t in tokens], int(at), row])
    for f in shown:
        refs = [[row_ref[row], float(f"{value:.4g}")] for value, row in tops[f]]
        counts, width = _coarse_histogram(stats.hist[f], int(stats.exponent[f]), float(stats.max[f]))
        detail[str(f)] = {"hist": counts, "width": float(f"{width:.6g}"), "ctx": refs}
    # token strings once in a table, the most used first so the common ones get short indices
    uses = Counter(t for c in contexts for t in c[0])
    token_table = [t for t, _ in uses.most_common()]
    token_index = {t: i for i, t in enumerate(token_table)}
    for c in contexts:
        c[0] = [token_index[t] for t in c[0]]

    manifest = dict(getattr(store, "manifest", {}) or {})
    meta = {
        "model": str(manifest.get("model", "")), "model_class": str(manifest.get("model_class", "")),
        "layer": str(manifest.get("layer", "")), "tokens": int(seen), "store_tokens": int(store.n_tokens),
        "F": int(F), "d": int(d), "top_contexts": top_contexts,
        "dead": float((stats.count == 0).mean()), "dense": float((density > DENSE_ABOVE).mean()),
        "dense_above": DENSE_ABOVE, "detailed": len(detail), "alive": int((stats.count > 0).sum()),
    }
    data = {
        "meta": meta, "tokens": token_table, "contexts": contexts,
        "count": stats.count.tolist(), "max": _round(stats.max), "mean": _round(mean),
        "nn": nn_ids.tolist(), "nn_cos": _round(nn_cos, 3), "detail": detail,
        "density_hist": _log_density_histogram(density, seen),
    }
    return _render(out, title, meta, data)


def _render(out: str | Path, title: str, meta: dict[str, Any], data: dict[str, Any]) -> Path:
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    from .._version import __version__

    env = Environment(loader=PackageLoader("latentforge.report", "templates"), autoescape=select_autoescape(["html"]))
    html = env.get_template("sae_features.html").render(
        title=title, meta=meta, data_json=Markup(_embed_json(data)), version=__version__)
    return atomic_write(out, html.encode("utf-8"))


__all__ = ["write_feature_browser"]
