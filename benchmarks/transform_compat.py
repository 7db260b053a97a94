"""Backward compatibility: can a retrained model's queries search a gallery embedded by the old model?

Protocol (digits by default): ``train_test_split(test_size=0.2, stratify=y, random_state=0)``; the
gallery is the training split, the queries the test split; relevance = same label. The old model
is an ``ae`` (latent ``--old-dim``, seed 0); new models are ``ae`` with another seed at the same
latent size and at a larger one (``--new-dim``). Alignments are fitted post hoc on the gallery
rows (embedded by both models, as one would on a sample of the database). Also measured: a new
model trained with ``CompatibilityLoss`` (no post-hoc map). Reported: top-1 (nearest gallery
item has the query's label) and mAP@10 for old→old, new→new and new→old (cross).
Target: cross top-1 after orthogonal/extension alignment ≥ 95% of new→new and above old→old.

    .venv/bin/python benchmarks/transform_compat.py [--epochs 50] [--seeds 2] [--dataset digits] [--plot PATH]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from latentforge import Autoencoder
from latentforge.data import load_builtin
from latentforge.transform import CompatibilityLoss, cross_model_retrieval, fit_alignment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits",
                        help="a built-in dataset, e.g. mnist5k (the first 5,000 MNIST images; needs the mnist extra)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=2, help="number of (old, new) seed pairs")
    parser.add_argument("--old-dim", type=int, default=8)
    parser.add_argument("--new-dim", type=int, default=16)
    parser.add_argument("--compat-weight", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", default=None, help="write a PNG bar chart here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)                        # BLAS threads too: scikit-learn probes on a loaded machine
    ds = load_builtin(args.dataset)
    Xg, Xq, yg, yq = train_test_split(ds.X, ds.y, test_size=0.2, stratify=ds.y, random_state=0)
    started = time.perf_counter()
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}

    def record(scenario: str, name: str, Zq: np.ndarray, Zg: np.ndarray) -> None:
        rows.setdefault((scenario, name), []).append(cross_model_retrieval(Zq, yq, Zg, yg, k=10))

    for pair in range(args.seeds):
        common = dict(epochs=args.epochs, verbose=False, device="cpu")
        old = Autoencoder("ae", args.old_dim, seed=2 * pair, **common).fit(Xg, yg)
        Zg_old, Zq_old = old.transform(Xg), old.transform(Xq)
        for scenario, new_dim in ((f"ae{args.old_dim}→ae{args.old_dim}", args.old_dim),
                                  (f"ae{args.old_dim}→ae{args.new_dim}", args.new_dim)):
            new = Autoencoder("ae", new_dim, seed=2 * pair + 1, **common).fit(Xg, yg)
            Zg_new, Zq_new = new.transform(Xg), new.transform(Xq)
            record(scenario, "old→old", Zq_old, Zg_old)
            record(scenario, "new→new", Zq_new, Zg_new)
            if new_dim == args.old_dim:
                record(scenario, "cross, no alignment", Zq_new, Zg_old)
            for method in ("orthogonal", "linear", "extension"):
                alignment = fit_alignment(Zg_old, Zg_new, method)
                record(scenario, f"cross, {method}", alignment.transform(Zq_new, old_space_only=True), Zg_old)
                if method == "extension" and new_dim > args.old_dim:   # after a backfill: full extended codes
                    record(scenario, "extension→extension", alignment.transform(Zq_new), alignment.transform(Zg_new))
            compat = CompatibilityLoss(old, args.compat_weight)
            trained = Autoencoder("ae", new_dim, seed=2 * pair + 1, regularizers=(compat,),
                                  **common).fit(Xg, yg)
            Tg, Tq = trained.transform(Xg), trained.transform(Xq)
            record(scenario, "cross, CompatibilityLoss", Tq[:, :args.old_dim], Zg_old)
            record(scenario, "CompatibilityLoss new→new", Tq, Tg)

    print(f"# {args.dataset}: gallery {len(Xg)} (train split), queries {len(Xq)} (test split); "
          f"{platform.machine()} torch {torch.__version__}, {args.threads} thread(s); ae, default architecture, "
          f"{args.epochs} epochs max; CompatibilityLoss weight {args.compat_weight:g}; {args.seeds} seed pair(s) "
          f"(mean ± std)")
    print(f"{'scenario':<12} {'retrieval':<28} {'top-1':>13} {'mAP@10':>13} {'/ new→new':>10} {'> old→old':>10}")
    summary = {}
    for (scenario, name), values in rows.items():
        top1 = np.array([v["top1"] for v in values])
        mapk = np.array([v["map_at_k"] for v in values])
        summary[(scenario, name)] = top1.mean()
        base_new = np.mean([v["top1"] for v in rows[(scenario, "new→new")]])
        base_old = np.mean([v["top1"] for v in rows[(scenario, "old→old")]])
        ratio, above = "", ""
        if name.startswith("cross"):
            ratio, above = f"{top1.mean() / base_new:.3f}", "yes" if top1.mean() > base_old else "no"
        print(f"{scenario:<12} {name:<28} {top1.mean():.4f}±{top1.std():.4f} {mapk.mean():.4f}±{mapk.std():.4f} "
              f"{ratio:>10} {above:>10}")
    for scenario in dict.fromkeys(s for s, _ in rows):
        new_top1, old_top1 = summary[(scenario, "new→new")], summary[(scenario, "old→old")]
        for method in ("orthogonal", "extension"):
            cross = summary[(scenario, f"cross, {method}")]
            met = cross >= 0.95 * new_top1 and cross > old_top1
            print(f"target {scenario} {method}: cross top-1 {cross:.4f} vs 0.95·new→new {0.95 * new_top1:.4f} "
                  f"and old→old {old_top1:.4f}: {'met' if met else 'NOT met'}")
    print(f"wall time {time.perf_counter() - started:.0f} s")
    if args.plot:
        _plot(rows, args.plot)


def _plot(rows: dict[tuple[str, str], list[dict[str, float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(s for s, _ in rows))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.8 * len(scenarios), 3.4))
    for ax, scenario in zip(np.atleast_1d(axes), scenarios):
        names = [n for s, n in rows if s == scenario]
        means = [np.mean([v["top1"] for v in rows[(scenario, n)]]) for n in names]
        colours = ["#3a7" if n.startswith("cross") else "#888" for n in names]
        low = 0.8
        ax.barh(range(len(names)), [max(m, low) for m in means], color=colours)
        for i, m in enumerate(means):        # values as text: the unaligned bar lies far below the axis start
            ax.text(max(m, low) + 0.002, i, f"{m:.3f}", va="center", fontsize=7)
        ax.set_yticks(range(len(names)), [n.replace("cross, ", "cross ") for n in names], fontsize=7)
        ax.axvline(means[names.index("old→old")], color="k", lw=0.8, ls=":")
        ax.set_xlim(low, 1.02)
        ax.set_title(scenario, fontsize=9)
        ax.set_xlabel("retrieval top-1 (dotted: old→old)", fontsize=8)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
