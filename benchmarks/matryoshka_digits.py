"""Matryoshka autoencoder prefixes against separately trained autoencoders of each size (digits).

One ``matryoshka_ae`` with latent 16 (its default hyper-parameters unless ``--param`` says
otherwise) is compared, at every prefix size m in its list (and at 2, 4, 8, 16 in any case), with
a plain ``ae`` trained with latent_dim = m and the same training settings: test reconstruction
MSE (pixels in [0, 1]; the prefix decoded by ``model_.reconstruct_prefix``) and linear-probe
accuracy (``LogisticRegression(max_iter=2000)`` on the first m code units of the training split,
scored on the test split). Protocol of the digits benchmark: ``train_test_split(test_size=0.2,
stratify=y, random_state=0)``, default architecture and training (the estimator keeps 10% of the
training split for validation and early stopping); seeds change initialisation and shuffling.
Targets (MRL: prefixes "at the same level of accuracy" as separate models): at every size, probe
accuracy within 2 points of the separate ``ae`` and MSE at most 10% above it (means over seeds).

    .venv/bin/python benchmarks/matryoshka_digits.py [--seeds 3] [--epochs 100] [--latent-dim 16]
        [--param prefix_decoder=shared --param prefix_sizes=2,4,8,16 ...]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from latentforge import Autoencoder
from latentforge.data import load_builtin

PROBE_TARGET = 2.0      # points of accuracy below the separate ae, at most
MSE_TARGET = 1.10       # prefix MSE / separate ae MSE, at most


def probe(Z_train: np.ndarray, y_train: np.ndarray, Z_test: np.ndarray, y_test: np.ndarray) -> float:
    return float(LogisticRegression(max_iter=2000).fit(Z_train, y_train).score(Z_test, y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a matryoshka_ae hyper-parameter (repeatable); defaults otherwise")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = dict(p.split("=", 1) for p in args.param)
    ds = load_builtin("digits")
    Xtr, Xte, ytr, yte = train_test_split(ds.X, ds.y, test_size=0.2, stratify=ds.y, random_state=0)
    x_test = torch.from_numpy(Xte.reshape(len(Xte), -1))
    started = time.perf_counter()
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    sizes: list[int] = []
    epochs_run: list[int] = []
    for seed in range(args.seeds):
        common = dict(epochs=args.epochs, seed=seed, verbose=False, device="cpu")
        mat = Autoencoder("matryoshka_ae", args.latent_dim, **params, **common).fit(Xtr, ytr)
        epochs_run.append(len(mat.history_))
        sizes = sorted(set(mat.model_.prefix_sizes) | {m for m in (2, 4, 8, 16) if m <= args.latent_dim})
        Z_train, Z_test = mat.transform(Xtr), mat.transform(Xte)
        for m in sizes:
            with torch.no_grad():
                mse = float((mat.model_.reconstruct_prefix(x_test, m) - x_test).pow(2).mean())
            results.setdefault(("matryoshka", m), []).append((mse, probe(Z_train[:, :m], ytr, Z_test[:, :m], yte)))
            ae = Autoencoder("ae", m, **common).fit(Xtr, ytr)
            results.setdefault(("ae", m), []).append(
                (float(ae.score_samples(Xte).mean()), probe(ae.transform(Xtr), ytr, ae.transform(Xte), yte)))
    hp = {**type(mat.model_).hyperparameters, **params}
    print(f"# {datetime.date.today()} digits, {platform.machine()} torch {torch.__version__}, {args.threads} thread(s); "
          f"matryoshka_ae latent {args.latent_dim}, {hp}; {args.epochs} epochs max (matryoshka ran {epochs_run}); "
          f"seeds 0..{args.seeds - 1} (mean ± std)")
    print(f"{'size':>4} | {'matryoshka MSE':>15} {'separate ae MSE':>16} {'ratio':>6} | "
          f"{'matryoshka probe':>16} {'separate ae probe':>17} {'gap (pts)':>9}")
    worst_gap, worst_ratio = float("inf"), 0.0
    for m in sizes:
        mat_r, ae_r = np.array(results[("matryoshka", m)]), np.array(results[("ae", m)])
        ratio = mat_r[:, 0].mean() / ae_r[:, 0].mean()
        gap = 100 * (mat_r[:, 1].mean() - ae_r[:, 1].mean())
        worst_gap, worst_ratio = min(worst_gap, gap), max(worst_ratio, ratio)
        cell = lambda a: f"{a.mean():.4f}±{a.std():.4f}"  # noqa: E731
        print(f"{m:>4} | {cell(mat_r[:, 0]):>15} {cell(ae_r[:, 0]):>16} {ratio:>6.3f} | "
              f"{cell(mat_r[:, 1]):>16} {cell(ae_r[:, 1]):>17} {gap:>+9.1f}")
    met = worst_gap >= -PROBE_TARGET and worst_ratio <= MSE_TARGET
    print(f"worst probe gap {worst_gap:+.1f} points (target ≥ {-PROBE_TARGET:+.1f}), worst MSE ratio {worst_ratio:.3f} "
          f"(target ≤ {MSE_TARGET:.2f}): target {'MET' if met else 'NOT met'}")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
