"""Sliceable embeddings: probe accuracy against prefix size for one ``matryoshka_ae``, a post-hoc
PCA-ordered ``ae``, and ``ae`` models trained separately at each size.

Protocol (digits by default; ``--dataset mnist5k``): ``train_test_split(test_size=0.2, stratify=y, random_state=0)``; every number
comes from ``latentforge.transform.slicing_curve`` (linear probe = ``LogisticRegression(max_iter=2000)``
on the train split's first m code units, scored on the test split; 5-NN accuracy; test
reconstruction MSE from the prefix). The matryoshka model (latent = largest size, ``prefix_sizes``
= the sizes) is sliced natively; the largest separately trained ``ae`` is also sliced post hoc in
PCA order (rotation fitted on its training codes). Target (MRL's claim): at every size the
matryoshka prefix is within 2 accuracy points of an ``ae`` trained at that size.

    .venv/bin/python benchmarks/transform_slicing.py [--sizes 2,4,8] [--epochs 50] [--seeds 3] [--dataset digits] [--plot PATH]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from latentforge import Autoencoder
from latentforge.data import load_builtin
from latentforge.transform import slicing_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4,8")
    parser.add_argument("--dataset", default="digits", choices=("digits", "mnist5k"),
                        help="mnist5k: the first 5,000 MNIST images (needs the mnist extra), same split rule")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)                        # BLAS threads too: scikit-learn probes on a loaded machine
    sizes = sorted(int(s) for s in args.sizes.split(","))
    ds = load_builtin(args.dataset)
    Xtr, Xte, ytr, yte = train_test_split(ds.X, ds.y, test_size=0.2, stratify=ds.y, random_state=0)
    started = time.perf_counter()
    curves: dict[str, list] = {"matryoshka_ae": [], "ae, PCA order": [], "ae per size": []}
    for seed in range(args.seeds):
        common = dict(epochs=args.epochs, seed=seed, verbose=False, device="cpu")
        mat = Autoencoder("matryoshka_ae", sizes[-1], prefix_sizes=args.sizes, **common).fit(Xtr, ytr)
        curves["matryoshka_ae"].append(slicing_curve(mat, Xtr, ytr, sizes, Xte, yte))
        separate = []
        for m in sizes:
            ae = Autoencoder("ae", m, **common).fit(Xtr, ytr)
            separate.append(slicing_curve(ae, Xtr, ytr, [m], Xte, yte, order="native"))
            if m == sizes[-1]:
                curves["ae, PCA order"].append(slicing_curve(ae, Xtr, ytr, sizes, Xte, yte, order="pca"))
        curves["ae per size"].append(pd.concat(separate, ignore_index=True))
    print(f"# {args.dataset}, {platform.machine()} torch {torch.__version__}, {args.threads} thread(s); default "
          f"architecture, {args.epochs} epochs max; sizes {sizes}; seeds 0..{args.seeds - 1} (mean ± std)")
    stats = {}
    for name, runs in curves.items():
        for column in ("probe_accuracy", "knn_accuracy", "reconstruction_mse"):
            values = np.stack([r[column].to_numpy() for r in runs])
            stats[(name, column)] = (values.mean(0), values.std(0))
    print(f"{'size':>4} | {'probe: matryoshka':>17} {'ae PCA order':>13} {'ae per size':>13} {'mat − sep':>9} | "
          f"{'5-NN: mat':>9} {'PCA':>6} {'sep':>6} | {'MSE: mat':>8} {'PCA':>7} {'sep':>7}")
    met = True
    for i, m in enumerate(sizes):
        cell = lambda name, col: f"{stats[(name, col)][0][i]:.3f}±{stats[(name, col)][1][i]:.3f}"  # noqa: E731
        diff = stats[("matryoshka_ae", "probe_accuracy")][0][i] - stats[("ae per size", "probe_accuracy")][0][i]
        met &= diff >= -0.02
        print(f"{m:>4} | {cell('matryoshka_ae', 'probe_accuracy'):>17} {cell('ae, PCA order', 'probe_accuracy'):>13} "
              f"{cell('ae per size', 'probe_accuracy'):>13} {diff:>+9.3f} | "
              f"{stats[('matryoshka_ae', 'knn_accuracy')][0][i]:>9.3f} {stats[('ae, PCA order', 'knn_accuracy')][0][i]:>6.3f} "
              f"{stats[('ae per size', 'knn_accuracy')][0][i]:>6.3f} | "
              f"{stats[('matryoshka_ae', 'reconstruction_mse')][0][i]:>8.4f} "
              f"{stats[('ae, PCA order', 'reconstruction_mse')][0][i]:>7.4f} "
              f"{stats[('ae per size', 'reconstruction_mse')][0][i]:>7.4f}")
    print(f"target (matryoshka within 2 probe points of a separate ae at every size): {'met' if met else 'NOT met'}")
    print(f"wall time {time.perf_counter() - started:.0f} s")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        for name, style in (("matryoshka_ae", "o-"), ("ae, PCA order", "s--"), ("ae per size", "^:")):
            mean, std = stats[(name, "probe_accuracy")]
            ax.errorbar(sizes, mean, yerr=std, fmt=style, capsize=3, label=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("prefix size m")
        ax.set_ylabel("linear-probe accuracy (test)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=80)


if __name__ == "__main__":
    main()
