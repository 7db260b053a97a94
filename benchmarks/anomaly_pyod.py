"""Anomaly detection: latentforge's detectors against PyOD's AutoEncoder and IsolationForest.

Protocols (benchmarks/README.md, "Shared protocols"), all in one run:
- digits one-class: for each digit k, fit on the training images of k only (train_test_split
  test_size=0.2, stratify, random_state=0); test set = the whole test split, digit k = inlier,
  others = outliers; mean AUROC over k.
- breast_cancer: benign = inliers; fit on 80% of benign (random_state=0), test on the remaining
  benign + all malignant; features standardised with training statistics.
Target: latentforge's best detector has a higher mean AUROC than PyOD's AutoEncoder.

    .venv/bin/python benchmarks/anomaly_pyod.py [--epochs N] [--pyod-epochs 50] [--only breast_cancer] [--seeds 1]

Without ``--epochs`` latentforge's detectors train with their defaults (``"auto"``: 100 epochs
for the digits images, the table rule of docs/data.md for breast_cancer).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from latentforge import AnomalyDetector
from latentforge.data import load_builtin

OURS = {f"latentforge ae/{s}": ("ae", s) for s in ("recon", "mahalanobis", "combined")}


def detectors(epochs: int, pyod_epochs: int, table: bool, seed: int = 0):
    budget = {} if epochs is None else {"epochs": epochs}
    out = {name: (lambda m=m, s=s: AnomalyDetector(m, score=s, latent_dim=8 if not table else 4, verbose=False,
                                                     seed=seed, **budget)) for name, (m, s) in OURS.items()}
    try:
        from pyod.models.auto_encoder import AutoEncoder
        from pyod.models.iforest import IForest
    except ImportError:
        print("PyOD not installed (pip install 'latentforge[bench]'): latentforge only")
        return out
    out["PyOD AutoEncoder"] = lambda: AutoEncoder(epoch_num=pyod_epochs, verbose=0, random_state=seed)
    out["PyOD IsolationForest"] = lambda: IForest(random_state=seed)
    return out


def auroc(make, X_fit, X_test, is_outlier, table: bool) -> float:
    det = make()
    flat = (lambda a: a.reshape(len(a), -1)) if not isinstance(det, AnomalyDetector) else (lambda a: a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det.fit(flat(X_fit))
        return roc_auc_score(is_outlier, det.decision_function(flat(X_test)))  # PyOD and ours: higher = outlier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="latentforge epochs (default: its own, 'auto')")
    parser.add_argument("--only", choices=("digits", "breast_cancer"), help="run one of the two protocols")
    parser.add_argument("--pyod-epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=1, help="every detector at seeds 0..N-1; means are reported")
    args = parser.parse_args()
    seeds = range(args.seeds)

    digits = load_builtin("digits")
    Xtr, Xte, ytr, yte = train_test_split(digits.X, digits.y, test_size=0.2, stratify=digits.y, random_state=0)
    runs: dict[str, dict[str, list[float]]] = {}  # detector → protocol → AUROC per seed
    for seed in seeds if args.only != "breast_cancer" else ():
        for name, make in detectors(args.epochs, args.pyod_epochs, table=False, seed=seed).items():
            start = time.perf_counter()
            scores = [auroc(make, Xtr[ytr == k], Xte, yte != k, table=False) for k in range(10)]
            runs.setdefault(name, {}).setdefault("digits", []).append(float(np.mean(scores)))
            print(f"digits  seed {seed}  {name:<24} mean AUROC {np.mean(scores):.4f}  "
                  f"({time.perf_counter() - start:.0f}s)", flush=True)

    bc = load_builtin("breast_cancer")
    X, y = bc.X.to_numpy(dtype=float), bc.y                  # y: 0 = malignant, 1 = benign
    benign, malignant = X[y == 1], X[y == 0]
    fit_rows, held = train_test_split(benign, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(fit_rows)
    X_fit = scaler.transform(fit_rows).astype(np.float32)
    X_test = scaler.transform(np.vstack([held, malignant])).astype(np.float32)
    is_out = np.r_[np.zeros(len(held)), np.ones(len(malignant))]
    for seed in seeds if args.only != "digits" else ():
        for name, make in detectors(args.epochs, args.pyod_epochs, table=True, seed=seed).items():
            runs.setdefault(name, {}).setdefault("breast_cancer", []).append(auroc(make, X_fit, X_test, is_out, True))
            print(f"breast_cancer  seed {seed}  {name:<24} AUROC {runs[name]['breast_cancer'][-1]:.4f}", flush=True)
    if args.only != "digits":  # no learning at all: how far the signal is plain distance from the benign rows
        runs["reference: squared norm of the standardised row"] = {
            "breast_cancer": [roc_auc_score(is_out, (X_test.astype(float) ** 2).sum(1))]}
        runs["reference: Ledoit-Wolf Mahalanobis, all features"] = {
            "breast_cancer": [roc_auc_score(is_out, LedoitWolf().fit(X_fit).mahalanobis(X_test))]}
    results = {name: {data: float(np.mean(v)) for data, v in r.items()} for name, r in runs.items()}

    print(f"\nmeans over seeds 0..{args.seeds - 1}")
    print("\n| detector | digits one-class mean AUROC | breast_cancer AUROC |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r.get('digits', float('nan')):.4f} | {r.get('breast_cancer', float('nan')):.4f} |")
    if "PyOD AutoEncoder" in results:
        ran = [d for d in ("digits", "breast_cancer") if d in results["PyOD AutoEncoder"]]
        best = max(OURS, key=lambda n: sum(results[n][d] for d in ran))
        for data in ran:
            ratio = results[best][data] / results["PyOD AutoEncoder"][data]
            print(f"{data}: best latentforge ({best}) / PyOD AutoEncoder AUROC = {ratio:.4f}")


if __name__ == "__main__":
    main()
