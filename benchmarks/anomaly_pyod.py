"""Anomaly detection: latentforge's detectors against PyOD's AutoEncoder and IsolationForest.

Protocols (benchmarks/README.md, "Shared protocols"), all in one run:
- digits one-class: for each digit k, fit on the training images of k only (train_test_split
  test_size=0.2, stratify, random_state=0); test set = the whole test split, digit k = inlier,
  others = outliers; mean AUROC over k.
- breast_cancer: benign = inliers; fit on 80% of benign (random_state=0), test on the remaining
  benign + all malignant; features standardised with training statistics.
Target: latentforge's best detector has a higher mean AUROC than PyOD's AutoEncoder.

    .venv/bin/python benchmarks/anomaly_pyod.py [--epochs N] [--pyod-epochs 50] [--only breast_cancer]

Without ``--epochs`` latentforge's detectors train with their defaults (``"auto"``: 100 epochs
for the digits images, the table rule of docs/data.md for breast_cancer).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from latentforge import AnomalyDetector
from latentforge.data import load_builtin

OURS = {f"latentforge ae/{s}": ("ae", s) for s in ("recon", "mahalanobis", "combined")}


def detectors(epochs: int, pyod_epochs: int, table: bool):
    budget = {} if epochs is None else {"epochs": epochs}
    out = {name: (lambda m=m, s=s: AnomalyDetector(m, score=s, latent_dim=8 if not table else 4, verbose=False,
                                                     **budget)) for name, (m, s) in OURS.items()}
    try:
        from pyod.models.auto_encoder import AutoEncoder
        from pyod.models.iforest import IForest
    except ImportError:
        print("PyOD not installed (pip install 'latentforge[bench]'): latentforge only")
        return out
    out["PyOD AutoEncoder"] = lambda: AutoEncoder(epoch_num=pyod_epochs, verbose=0, random_state=0)
    out["PyOD IsolationForest"] = lambda: IForest(random_state=0)
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
    args = parser.parse_args()

    digits = load_builtin("digits")
    Xtr, Xte, ytr, yte = train_test_split(digits.X, digits.y, test_size=0.2, stratify=digits.y, random_state=0)
    results: dict[str, dict[str, float]] = {}
    for name, make in (detectors(args.epochs, args.pyod_epochs, table=False) if args.only != "breast_cancer" else {}).items():
        start = time.perf_counter()
        scores = [auroc(make, Xtr[ytr == k], Xte, yte != k, table=False) for k in range(10)]
        results.setdefault(name, {})["digits"] = float(np.mean(scores))
        print(f"digits  {name:<24} mean AUROC {np.mean(scores):.4f}  ({time.perf_counter() - start:.0f}s)", flush=True)

    bc = load_builtin("breast_cancer")
    X, y = bc.X.to_numpy(dtype=float), bc.y                  # y: 0 = malignant, 1 = benign
    benign, malignant = X[y == 1], X[y == 0]
    fit_rows, held = train_test_split(benign, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(fit_rows)
    X_fit = scaler.transform(fit_rows).astype(np.float32)
    X_test = scaler.transform(np.vstack([held, malignant])).astype(np.float32)
    is_out = np.r_[np.zeros(len(held)), np.ones(len(malignant))]
    for name, make in (detectors(args.epochs, args.pyod_epochs, table=True) if args.only != "digits" else {}).items():
        results.setdefault(name, {})["breast_cancer"] = auroc(make, X_fit, X_test, is_out, table=True)
        print(f"breast_cancer  {name:<24} AUROC {results[name]['breast_cancer']:.4f}", flush=True)

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
