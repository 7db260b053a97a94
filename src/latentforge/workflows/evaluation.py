"""Which metrics apply to a fitted estimator, decided in one place.

:func:`evaluate_estimator` runs every metric group of ``latentforge.evaluate`` that the data and
the model allow, on the test split; a group that cannot apply (no labels, no ground-truth
factors, no one-class setting, no training split) is listed in ``metrics["skipped"]`` with the
reason. ``compare`` (and so ``demo``) and ``latentforge evaluate`` all call it.
:func:`held_out_rows` finds the rows a model's ``fit`` held out for validation
(``latentforge evaluate --split val``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import evaluate as ev
from ..data import Dataset, hash_split
from ..errors import InputError
from ..estimator import AnomalyDetector

#: rows of reconstructions and samples kept for the report: an image grid shows ten; a table's
#: scatter on two principal axes needs a cloud, but not the whole of a large test split.
SHOWN_IMAGES = 10
SHOWN_ROWS = 1000


def held_out_rows(est: Any, n_rows: int, where: str = "the model") -> np.ndarray:
    """Indices of the rows that ``est.fit`` held out for validation, in data of ``n_rows`` rows
    that must be the data it was fitted on (same rows, same order).

    The estimator records the split (``held_out_``): the row indices for data held in memory, the
    seeded hash for a streamed source. These rows were never trained on, but the validation loss on
    them chose the kept epoch (and stopped training early), so figures on them are slightly
    optimistic next to a test split nobody looked at. An InputError (naming ``where``) when the
    model recorded no split, held out no rows, or was fitted on a different number of rows.
    """
    spec = getattr(est, "held_out_", None)
    if not spec:
        raise InputError(f"{where} records no validation split (it was saved by an older latentforge); "
                         f"evaluate it on held-out data of your own, or fit it again.")
    if int(spec["n_rows"]) != n_rows:
        raise InputError(f"{where} was fitted on {spec['n_rows']} rows but the data has {n_rows}; --split val "
                         f"needs the data the model was fitted on.")
    if "rows" in spec:
        rows = np.asarray(spec["rows"], dtype=np.int64)
    else:
        rows = np.flatnonzero(hash_split(np.arange(n_rows, dtype=np.int64), float(spec["hash_fraction"]),
                                         int(spec["hash_seed"])))
    if len(rows) == 0:
        raise InputError(f"{where} held out no rows for validation (val_fraction 0, or too few rows).")
    return rows


def _group(metrics: dict[str, Any], skipped: dict[str, str], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one metric group; missing labels → skipped with the reason, other failures → recorded."""
    try:
        metrics.update(fn())
    except ev.MissingLabelsError as exc:
        skipped[name] = str(exc)
    except Exception as exc:  # one broken metric must not lose the run's other figures
        skipped[name] = f"failed: {type(exc).__name__}: {exc}"


def evaluate_estimator(
    est: Any, test: Dataset, train: Dataset | None = None, *, one_class: dict[str, Any] | None = None,
    n_generated: int | None = None, two_sample_permutations: int = 200, seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate a fitted ``Autoencoder`` on ``test``; returns ``(metrics, details)``.

    ``metrics``: the figures by name (``recon_mse``, ``gen_sw``, ``probe_acc``, ...) plus
    ``"skipped"``, a mapping of metric group → why it did not apply or how it failed.
    ``details``: arrays for the report: ``Z_test`` (test codes), ``reconstructions`` and
    ``samples`` (features; ten rows for images, up to 1,000 for tables, where ``test_features``
    is the reference), ``column_errors`` (tables), ``bars`` (per-dimension KL/activity) and
    ``roc`` (``fpr``/``tpr``, with ``one_class``).

    With ``train`` the downstream metrics fit on training codes and score test codes; without it
    (one dataset, as ``latentforge evaluate MODEL DATA``) the linear probe is cross-validated on
    the test codes (``probe_cv_acc``), retrieval queries the test codes against themselves and
    k-NN accuracy is skipped. ``one_class={"normal_label": v}`` scores rows with another label as
    anomalies. ``n_generated`` samples (default: as many as test rows) are drawn with ``seed``,
    which also seeds the cross-validation.
    """
    metrics: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    features = est.features(test.X)
    Z_test = est.transform(test.X)
    shown = test.subset(np.arange(min(len(test), SHOWN_IMAGES if test.kind == "image" else SHOWN_ROWS)))
    details: dict[str, Any] = {"Z_test": Z_test, "reconstructions": est.features(est.reconstruct(shown.X))}
    if test.kind == "table":
        details["test_features"] = features[:len(shown)]
    metrics["recon_mse"] = float(est.score_samples(test.X).mean())
    if test.kind == "table":
        def table_errors() -> dict[str, Any]:
            columns = est.preprocessor_.columns_
            numeric = [c["name"] for c in columns if c["role"] == "numeric"]
            errs = ev.table_reconstruction_errors(
                test.X, est.reconstruct(test.X), numeric, [c["name"] for c in columns if c["role"] == "categorical"])
            details["column_errors"] = {**{f"RMSE {k}": v for k, v in errs["numeric_rmse"].items()},
                                        **{f"accuracy {k}": v for k, v in errs["categorical_accuracy"].items()}}
            # the report shows RMSE in standard deviations of each column
            details["column_std"] = {c: float(np.nanstd(pd.to_numeric(test.X[c], errors="coerce"))) for c in numeric}
            return {k: v for k, v in errs.items() if isinstance(v, (int, float))}
        _group(metrics, skipped, "table reconstruction", table_errors)

    def generation() -> dict[str, Any]:
        generated = est.features(est.sample(n_generated or len(test), seed=seed))
        details["samples"] = generated[:len(shown)]
        return {
            "gen_sw": ev.generation_sw(generated, features),
            "gen_sliced_mmd": ev.generation_sliced_mmd(generated, features),
            "gen_two_sample_p": ev.generation_two_sample_pvalue(generated, features,
                                                                n_permutations=two_sample_permutations),
            "gen_frechet": ev.generation_frechet(generated, features),
            **{f"gen_{k}": v for k, v in ev.precision_recall_knn(features, generated).items()},
        }
    _group(metrics, skipped, "generation", generation)
    _downstream(metrics, skipped, Z_test, test, train, est, seed)
    _group(metrics, skipped, "latent health", lambda: _latent_health(est, features, Z_test, details))
    if test.factors is not None:
        _group(metrics, skipped, "disentanglement", lambda: {
            "mig": ev.mig(Z_test, test.factors),
            **{f"dci_{k}": v for k, v in ev.dci(Z_test, test.factors).items()},
            **{f"infomec_{k}": v for k, v in ev.infomec(Z_test, test.factors).items()},
        })
    else:
        skipped["disentanglement"] = "the dataset has no ground-truth factors"
    if one_class is not None:
        def anomaly() -> dict[str, Any]:
            from sklearn.metrics import roc_curve

            if test.y is None:
                raise ev.MissingLabelsError("one_class needs test labels to tell normal rows from anomalies.")
            is_out = np.asarray(test.y) != one_class["normal_label"]
            scores = AnomalyDetector.from_autoencoder(est, score="combined").decision_function(test.X)
            fpr, tpr, _ = roc_curve(is_out, scores)
            details["roc"] = {"fpr": fpr, "tpr": tpr}
            return {"anomaly_auroc": ev.auroc(scores, is_out), "anomaly_auprc": ev.auprc(scores, is_out)}
        _group(metrics, skipped, "anomaly", anomaly)
    else:
        skipped["anomaly"] = "no one_class setting names the normal label"
    metrics["skipped"] = skipped
    return metrics, details


def _downstream(metrics: dict[str, Any], skipped: dict[str, str], Z_test: np.ndarray, test: Dataset,
                train: Dataset | None, est: Any, seed: int) -> None:
    """Label metrics on the codes: train → test with a training split, else within the test split."""
    if train is None:
        _group(metrics, skipped, "downstream", lambda: {
            "probe_cv_acc": ev.linear_probe_cv_accuracy(Z_test, test.y, seed=seed),
            **{f"kmeans_{k}": v for k, v in ev.kmeans_clustering_scores(Z_test, test.y).items()},
            "retrieval_map10": ev.retrieval_map_at_k(Z_test, test.y, Z_test, test.y, k=10, exclude_self=True),
        })
        skipped["k-NN accuracy"] = "it needs a training split (only test data was given)"
        return
    Z_train = est.transform(train.X)
    _group(metrics, skipped, "downstream", lambda: {
        "probe_acc": ev.linear_probe_accuracy(Z_train, train.y, Z_test, test.y),
        "knn_acc": ev.knn_accuracy(Z_train, train.y, Z_test, test.y),
        **{f"kmeans_{k}": v for k, v in ev.kmeans_clustering_scores(Z_test, test.y).items()},
        "retrieval_map10": ev.retrieval_map_at_k(Z_test, test.y, Z_train, train.y, k=10),
    })


def _latent_health(est: Any, features: np.ndarray, Z_test: np.ndarray, details: dict[str, Any]) -> dict[str, Any]:
    """Effective rank and active units; KL and collapse for models with a posterior; codebook use
    for quantised models (``codebook_size()`` is None for the others)."""
    out: dict[str, Any] = {"effective_rank": ev.effective_rank(Z_test)}
    model = est.model_
    device = next(model.parameters()).device
    with torch.no_grad():
        enc = {k: v.cpu().numpy() for k, v in model.eval().encode(torch.from_numpy(features).to(device)).items()}
    if "logvar" in enc:  # encode returns the posterior's parameters where the model has one
        mu, logvar = enc["mu"], enc["logvar"]
        kl = ev.kl_per_dimension(mu, logvar)
        details["bars"] = {"KL per dimension (nats)": kl, "activity (variance of the mean)": ev.unit_activity(mu)}
        out.update(kl_total=float(kl.sum()), active_units=ev.active_units(mu),
                   posterior_collapse=ev.posterior_collapse(mu, logvar)["collapsed"])
    else:
        details["bars"] = {"activity (variance of the code)": ev.unit_activity(Z_test)}
        out["active_units"] = ev.active_units(Z_test)
    size = model.codebook_size()
    if size is not None:
        out.update({f"codebook_{k}": v for k, v in ev.codebook_usage(enc["indices"].ravel(), size).items()})
    return out
