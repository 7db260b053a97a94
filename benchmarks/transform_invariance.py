"""Invariance option: does ``InvarianceLoss`` make embeddings move less under noise, masking and
shifts, and what does it cost in linear-probe accuracy?

Protocol (digits by default; ``--dataset mnist5k``): ``train_test_split(test_size=0.2, stratify=y, random_state=0)``; a plain ``ae``
(latent 8, default architecture) against the same model trained with
``regularizers=(InvarianceLoss(t, weight),)`` for t in noise, mask and shift (default strengths:
noise std 0.1, mask p 0.2, shift ±1 px). Scores on the test split: the displacement ratio
``invariance_score`` (0 = invariant, lower is more invariant) under each transformation,
seeded, and the linear-probe accuracy (``LogisticRegression(max_iter=2000)``, train → test).
Target: the option lowers the ratio under its transformation (raises invariance) at a probe cost
of at most 1 point.

    .venv/bin/python benchmarks/transform_invariance.py [--epochs 50] [--seeds 2] [--weight 1.0] [--dataset digits] [--plot PATH]
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
from latentforge.evaluate import linear_probe_accuracy
from latentforge.transform import InvarianceLoss, invariance_score

TRANSFORMS = ("noise", "mask", "shift")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--dataset", default="digits", choices=("digits", "mnist5k"),
                        help="mnist5k: the first 5,000 MNIST images (needs the mnist extra), same split rule")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--weight", type=float, default=1.0)
    parser.add_argument("--cov-weight", type=float, default=0.5)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)                        # BLAS threads too: scikit-learn probes on a loaded machine
    ds = load_builtin(args.dataset)
    Xtr, Xte, ytr, yte = train_test_split(ds.X, ds.y, test_size=0.2, stratify=ds.y, random_state=0)
    started = time.perf_counter()
    results: dict[str, list[dict[str, float]]] = {}
    for seed in range(args.seeds):
        common = dict(epochs=args.epochs, seed=seed, verbose=False, device="cpu")
        variants = {"ae": ()}
        variants.update({f"ae + {t}:{args.weight:g}": (InvarianceLoss(t, args.weight, cov_weight=args.cov_weight,
                                                                       seed=seed),) for t in TRANSFORMS})
        for name, regularizers in variants.items():
            est = Autoencoder("ae", args.latent_dim, regularizers=regularizers, **common).fit(Xtr, ytr)
            row = {t: invariance_score(est, Xte, t, seed=100 + seed) for t in TRANSFORMS}
            row["probe"] = linear_probe_accuracy(est.transform(Xtr), ytr, est.transform(Xte), yte)
            row["mse"] = float(est.score_samples(Xte).mean())
            results.setdefault(name, []).append(row)
    print(f"# {args.dataset}, {platform.machine()} torch {torch.__version__}, {args.threads} thread(s); ae latent "
          f"{args.latent_dim}, default architecture, {args.epochs} epochs max; InvarianceLoss weight {args.weight:g}, "
          f"cov_weight {args.cov_weight:g}; seeds 0..{args.seeds - 1} (mean ± std)")
    print("displacement ratio under each transformation (lower = more invariant), test probe accuracy, test MSE")
    print(f"{'model':<18} " + " ".join(f"{t:>15}" for t in TRANSFORMS) + f" {'probe':>13} {'recon MSE':>9}")
    mean = {name: {k: np.mean([r[k] for r in rows]) for k in rows[0]} for name, rows in results.items()}
    for name, rows in results.items():
        cells = [f"{mean[name][t]:.4f}±{np.std([r[t] for r in rows]):.4f}" for t in TRANSFORMS]
        print(f"{name:<18} " + " ".join(f"{c:>15}" for c in cells) +
              f" {mean[name]['probe']:.3f}±{np.std([r['probe'] for r in rows]):.3f} {mean[name]['mse']:>9.4f}")
    for t in TRANSFORMS:
        name = f"ae + {t}:{args.weight:g}"
        lower = mean[name][t] < mean["ae"][t]
        cost = mean["ae"]["probe"] - mean[name]["probe"]
        print(f"target {t}: ratio {mean['ae'][t]:.4f} → {mean[name][t]:.4f} ({'lower' if lower else 'NOT lower'}), "
              f"probe cost {100 * cost:+.1f} points ({'met' if lower and cost <= 0.01 else 'NOT met'})")
    print(f"wall time {time.perf_counter() - started:.0f} s")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.2, 3.0))
        width = 0.8 / len(results)
        for i, name in enumerate(results):
            ax.bar(np.arange(len(TRANSFORMS)) + i * width, [mean[name][t] for t in TRANSFORMS], width,
                   label=f"{name} (probe {mean[name]['probe']:.3f})")
        ax.set_xticks(np.arange(len(TRANSFORMS)) + width * (len(results) - 1) / 2, TRANSFORMS)
        ax.set_ylabel("displacement ratio (lower = invariant)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=80)


if __name__ == "__main__":
    main()
