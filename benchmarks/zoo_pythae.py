"""Our models against pythae's at the same architecture: interleaved throughput, then quality.

For every model both libraries have (a pair is run when our name is in ``MODELS`` and pythae has
the class), pythae's encoder and decoder are custom ``BaseEncoder``/``BaseDecoder`` nets built with
*our* ``blocks.mlp`` — the default digits network, 64-512-256 (LayerNorm, ReLU) to the encoder head
and 8-256-512-64 back — so both sides train the same weights shapes. Our hyper-parameters are copied
onto pythae's config where the concept maps (IWAE K, MIWAE/PIWAE M and K, InfoVAE α/λ/kernel, WAE
λ/kernel, VQ codebook size/commitment/EMA decay, 2 groups of 4 quantised as two 4-d vectors, ...);
pythae's FactorVAE discriminator (the paper's 5 x 1000) is replaced by ours (3 x 256, leaky ReLU, two
logits out as pythae reads them); our β-VAE runs without its capacity schedule (pythae's BetaVAE has
none); our IAF without its context vector (pythae's has none). Pixels: ours use the Bernoulli likelihood, pythae's decoder
ends in a sigmoid and its VAE family uses ``reconstruction_loss="bce"``; AE, WAE, VQ-VAE and RAE have
only pythae's MSE.

Throughput (one thread, CPU time of this process, so other load on the machine skews it less):
each repeat fits ours then pythae's (ABBA order across repeats) for ``--epochs`` epochs on the
1,437 training images, batch 64, lr 1e-3, no validation and no early stopping, after one warm-up
fit of each. Two definitions, both reported:

* **fit** — end to end: ``Autoencoder(...).fit`` (preprocessing, model build, training, the codes
  and reference errors kept after fit) vs ``TrainingPipeline(...)(train_data)`` (model build,
  data checks, training, pythae's progress bars and final model save to a temporary directory);
  samples/s = epochs × 1,437 / CPU seconds;
* **epoch** — in the loop: CPU time between the ends of the first and last epochs (our ``on_epoch``
  hook, pythae's ``on_epoch_end`` callback), so set-up and tear-down drop out.

Median over ``--repeats``; ratio = ours / pythae (target ≥ 1.5).

Quality (``--quality-epochs``, default 100, the digits protocol): ours with its defaults (10%
stratified validation, patience 30); pythae on the same 90% with the 10% as ``eval_data`` (its
best-on-eval model). Test MSE, linear probe, generation SW₂ as in ``zoo_digits.py``; pythae's
samplers: N(0, I) (VAMP: its VampPrior, SVAE: uniform on the sphere), a 10-component GMM on codes
for AE/RAE, and for VQ-VAE resampled training codes (as our default).

    /work/zoobench/bin/python benchmarks/zoo_pythae.py [--models ae,vae] [--epochs 5] [--repeats 3]
        [--quality-epochs 100] [--no-quality] [--no-timing] [--recipe ours|pythae] [--sides ours,pythae]
        [--seed 0] [--sw-seeds 1] [--out results.jsonl]

``--recipe pythae`` trains our side the way pythae's trainer does (Adam at a constant lr, no weight
decay, no gradient clipping, all epochs, best-on-validation weights), to tell a gap due to the model
from one due to the training recipe; ``--sides ours`` refits only our side; ``--seed`` changes both
sides' training and sampling seeds; ``--sw-seeds N`` adds SW₂ over N sampling seeds of each fitted
model (mean ± sd: the sampling part of the SW₂ noise). pythae's flow posteriors (VAE_LinNF,
VAE_IAF) are evaluated through their flow, as ours are: codes flow(μ), reconstruction
decoder(flow(μ)) (pythae's ``embed`` gives the pre-flow μ, whose decoding its decoder never saw in
training; that reconstruction's MSE is kept as ``mse_premean``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from latentforge import Autoencoder
from latentforge.models import MODELS
from latentforge.models.blocks import mlp

from latentforge.evaluate.generation import generation_sw
from zoo_digits import row, split

LATENT, BATCH, LR, HIDDEN = 8, 64, 1e-3, (512, 256)


def hp_of(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    return {**MODELS[name].hyperparameters, **overrides}


def _gauss(h):
    return dict(embedding=h[:, :LATENT], log_covariance=h[:, LATENT:])


# (label, our model, our overrides, pythae class, pythae config from our hp, encoder head, sampler, trainer)
def pairs() -> list[tuple]:
    bce = {"reconstruction_loss": "bce"}

    def mmd(h, scales: Any = "single"):
        out = {"kernel_choice": h["kernel"], "kernel_bandwidth": h["kernel_scale"]}
        return {**out, "scales": None} if scales == "single" else out
    return [
        ("ae", "ae", {}, "AE", lambda h: {}, "det", "gmm", "base"),
        ("vae", "vae", {}, "VAE", lambda h: bce, "gauss", "normal", "base"),
        ("beta_vae (β=4, no capacity)", "beta_vae", {"capacity_max": 0.0}, "BetaVAE",
         lambda h: {**bce, "beta": h["beta"]}, "gauss", "normal", "base"),
        ("iwae", "iwae", {}, "IWAE", lambda h: {**bce, "number_samples": h["n_samples"]}, "gauss", "normal", "base"),
        ("miwae", "miwae", {}, "MIWAE", lambda h: {**bce, "number_samples": h["n_samples"],
                                                  "number_gradient_estimates": h["n_groups"]}, "gauss", "normal", "base"),
        ("piwae", "piwae", {}, "PIWAE", lambda h: {**bce, "number_samples": h["n_samples"],
                                                  "number_gradient_estimates": h["n_groups"]}, "gauss", "normal",
         "coupled"),
        ("ciwae", "ciwae", {}, "CIWAE", lambda h: {**bce, "number_samples": h["n_samples"], "beta": h["beta"]},
         "gauss", "normal", "base"),
        # our MMD has one kernel scale: pythae's scales=None is the same kernel (its default sums 7 scales)
        ("info_vae", "info_vae", {}, "INFOVAE_MMD", lambda h: {**bce, **mmd(h), "alpha": h["alpha"], "lbd": h["lam"]},
         "gauss", "normal", "base"),
        ("wae_mmd", "wae_mmd", {}, "WAE_MMD", lambda h: {**mmd(h), "reg_weight": h["mmd_weight"]}, "det", "normal",
         "base"),
        ("info_vae (pythae 7 scales)", "info_vae", {}, "INFOVAE_MMD",
         lambda h: {**bce, **mmd(h, None), "alpha": h["alpha"], "lbd": h["lam"]}, "gauss", "normal", "base"),
        ("wae_mmd (pythae 7 scales)", "wae_mmd", {}, "WAE_MMD", lambda h: {**mmd(h, None), "reg_weight": h["mmd_weight"]},
         "det", "normal", "base"),
        ("vq_vae", "vq_vae", {}, "VQVAE", lambda h: {"num_embeddings": h["codebook_size"],
                                                    "commitment_loss_factor": h["commitment"], "use_ema": True,
                                                    "decay": h["decay"]}, "vq", "empirical", "base"),
        # models added in this round: included when registered
        ("beta_tc_vae", "beta_tc_vae", {}, "BetaTCVAE", lambda h: {**bce, "alpha": h["alpha"], "beta": h["beta"],
                                                                 "gamma": h["gamma"], "use_mss": h["use_mss"]},
         "gauss", "normal", "base"),
        ("factor_vae", "factor_vae", {}, "FactorVAE", lambda h: {**bce, "gamma": h["gamma"]}, "gauss", "normal",
         "adversarial"),
        ("vamp", "vamp", {}, "VAMP", lambda h: {**bce, "number_components": h["n_components"]}, "gauss", "vamp", "base"),
        ("rae (l2)", "rae", {"regularisation": "l2"}, "RAE_L2",
         lambda h: {"embedding_weight": h["embedding_weight"], "reg_weight": h["reg_weight"]}, "det", "gmm", "coupled"),
        ("rae (gp)", "rae", {"regularisation": "gradient_penalty"}, "RAE_GP",
         lambda h: {"embedding_weight": h["embedding_weight"], "reg_weight": h["reg_weight"]}, "det", "gmm", "base"),
        ("planar_vae", "planar_vae", {}, "VAE_LinNF", lambda h: {**bce, "flows": ["Planar"] * h["n_flows"]},
         "gauss", "normal", "base"),
        ("radial_vae", "radial_vae", {}, "VAE_LinNF", lambda h: {**bce, "flows": ["Radial"] * h["n_flows"]},
         "gauss", "normal", "base"),
        ("iaf_vae (no context)", "iaf_vae", {"context_dim": 0}, "VAE_IAF",
         lambda h: {**bce, "n_made_blocks": h["n_made_blocks"], "n_hidden_in_made": h["n_hidden_in_made"],
                    "hidden_size": h["hidden_size"]}, "gauss", "normal", "base"),
        ("svae", "svae", {}, "SVAE", lambda h: bce, "svae", "sphere", "base"),
    ]


def control_pairs() -> list[tuple]:
    """Controls, run only when their label is named in ``--models``: our model set to what pythae's
    code computes where that differs from the shared hyper-parameters' meaning.

    * ``miwae@pythae-axes``: pythae 0.1.2's MIWAE shapes its draws (B, M, K, d) but normalises the
      importance weights over axis 1, the M axis, and averages over K, so with M = 2, K = 4 it trains
      the mean of 4 IWAE_2 bounds; ours with K = 2, M = 4 is that objective (pythae's config as in
      the ``miwae`` pair).
    * ``beta_tc_vae@N1293``: pythae's trainer passes the training-set size (1,293 rows) to
      BetaTCVAE's estimator; ours defaults to ``dataset_size=0`` (the batch size).
    """
    bce = {"reconstruction_loss": "bce"}
    return [
        ("miwae@pythae-axes", "miwae", {"n_samples": 2, "n_groups": 4}, "MIWAE",
         lambda h: {**bce, "number_samples": 4, "number_gradient_estimates": 2}, "gauss", "normal", "base"),
        ("beta_tc_vae@N1293", "beta_tc_vae", {"dataset_size": 1293}, "BetaTCVAE",
         lambda h: {**bce, "alpha": h["alpha"], "beta": h["beta"], "gamma": h["gamma"], "use_mss": h["use_mss"]},
         "gauss", "normal", "base"),
    ]


# -- pythae's side, with our networks -------------------------------------------------------
def pythae_nets(head: str, sigmoid: bool, n_groups: int = 2):
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    width = {"det": LATENT, "gauss": 2 * LATENT, "vq": LATENT, "svae": LATENT + 1}[head]

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = mlp(64, HIDDEN, width, "relu", "layer")

        def forward(self, x):
            h = self.net(x.reshape(len(x), -1))
            if head == "gauss":
                return ModelOutput(**_gauss(h))
            if head == "svae":
                return ModelOutput(embedding=h[:, :LATENT], log_concentration=h[:, LATENT:])
            if head == "vq":  # (N, 8) → (N, 4, 2, 1): pythae quantises the channel axis, one 4-d vector per group
                return ModelOutput(embedding=h.view(len(h), n_groups, -1).permute(0, 2, 1).unsqueeze(-1))
            return ModelOutput(embedding=h)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = mlp(LATENT, tuple(reversed(HIDDEN)), 64, "relu", "layer")

        def forward(self, z):
            if z.dim() == 4:  # quantised (N, 4, 2, 1) back to contiguous groups
                z = z.squeeze(-1).permute(0, 2, 1).reshape(len(z), -1)
            out = self.net(z)
            out = torch.sigmoid(out) if sigmoid else out
            return ModelOutput(reconstruction=out.view(len(z), 1, 8, 8))

    return Encoder(), Decoder()


def build_pythae(cls_name: str, cfg: dict[str, Any], head: str):
    import pythae.models as pm

    config_names = {"INFOVAE_MMD": "INFOVAE_MMD_Config", "WAE_MMD": "WAE_MMD_Config", "RAE_L2": "RAE_L2_Config",
                    "RAE_GP": "RAE_GP_Config", "VAE_LinNF": "VAE_LinNF_Config", "VAE_IAF": "VAE_IAF_Config"}
    cls = getattr(pm, cls_name)
    config_cls = getattr(pm, config_names.get(cls_name, cls_name + "Config"))
    config = config_cls(input_dim=(1, 8, 8), latent_dim=LATENT, **cfg)
    # a sigmoid on pythae's decoder (its default nets have one too); MSE-only models keep it
    enc, dec = pythae_nets(head, sigmoid=True)
    model = cls(model_config=config, encoder=enc, decoder=dec)
    if cls_name == "FactorVAE":  # pythae's default is the paper's 5 x 1000; ours is 3 x 256 (leaky ReLU 0.2)
        from latentforge.models.factor_vae import discriminator

        h = MODELS["factor_vae"].hyperparameters
        net = discriminator(LATENT, h["discriminator_width"], h["discriminator_depth"])
        net[-1] = nn.Linear(h["discriminator_width"], 2)  # pythae reads two logits (joint, permuted)
        model.discriminator = net
    return model


def trainer_config(kind: str, out: str, epochs: int, keep_best_on_train: bool, seed: int = 0):
    from pythae.trainers import AdversarialTrainerConfig, BaseTrainerConfig, CoupledOptimizerTrainerConfig

    common = dict(output_dir=out, per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH,
                  num_epochs=epochs, seed=seed, no_cuda=True, keep_best_on_train=keep_best_on_train)
    if kind == "coupled":
        return CoupledOptimizerTrainerConfig(encoder_learning_rate=LR, decoder_learning_rate=LR, **common)
    if kind == "adversarial":
        return AdversarialTrainerConfig(autoencoder_learning_rate=LR, discriminator_learning_rate=LR, **common)
    return BaseTrainerConfig(learning_rate=LR, **common)


def fit_pythae(pair, X, epochs: int, eval_data=None, marks: list | None = None, seed: int = 0):
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers.training_callbacks import TrainingCallback

    label, name, over, cls_name, cfg, head, _, kind = pair

    class Marks(TrainingCallback):
        def on_epoch_end(self, training_config, **kwargs):
            if marks is not None:
                marks.append(time.process_time())

    with tempfile.TemporaryDirectory() as tmp:
        # pythae seeds only when training starts (Trainer.prepare_training), after the model is built:
        # without this its initial weights would depend on whatever ran before in the process
        torch.manual_seed(seed)
        model = build_pythae(cls_name, cfg(hp_of(name, over)), head)
        config = trainer_config(kind, tmp, epochs, keep_best_on_train=eval_data is None, seed=seed)
        pipe = TrainingPipeline(training_config=config, model=model)
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            pipe(train_data=X, eval_data=eval_data, callbacks=[Marks()])
        best = getattr(pipe.trainer, "_best_model", None) or pipe.model
    return best


#: ``--recipe pythae``: our model trained the way pythae's trainer trains (Adam at a constant lr, no
#: weight decay, no gradient clipping, every epoch run, best-on-validation weights kept), so a gap
#: that remains is the model, not the recipe
RECIPES: dict[str, dict[str, Any]] = {
    "ours": {},
    "pythae": dict(schedule="constant", weight_decay=0.0, grad_clip=None, patience=None),
}


def fit_ours(pair, X, y, epochs: int, timing: bool, marks: list | None = None, recipe: str = "ours",
             seed: int = 0):
    label, name, over, *_ = pair
    extra = {**RECIPES[recipe], **(dict(val_fraction=0.0, patience=None) if timing else {})}
    est = Autoencoder(name, LATENT, epochs=epochs, batch_size=BATCH, lr=LR, threads=1, seed=seed, verbose=False,
                      **extra, **over)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, on_epoch=(lambda rec: marks.append(time.process_time())) if marks is not None else None)
    return est


def throughput(pair, Xtr, ytr, epochs: int, repeats: int) -> dict[str, Any]:
    n = len(Xtr)
    res: dict[str, list[float]] = {"ours_fit": [], "pythae_fit": [], "ours_epoch": [], "pythae_epoch": []}

    def one(side: str) -> None:
        marks: list[float] = []
        start = time.process_time()
        if side == "ours":
            fit_ours(pair, Xtr, ytr, epochs, timing=True, marks=marks)
        else:
            fit_pythae(pair, Xtr, epochs, marks=marks)
        total = time.process_time() - start
        res[f"{side}_fit"].append(epochs * n / total)
        res[f"{side}_epoch"].append((len(marks) - 1) * n / (marks[-1] - marks[0]))

    fit_ours(pair, Xtr, ytr, 1, timing=True)  # warm-up (first-call allocations, lazy imports)
    fit_pythae(pair, Xtr, 1)
    for r in range(repeats):
        for side in (("ours", "pythae") if r % 2 == 0 else ("pythae", "ours")):  # ABBA
            one(side)
    med = {k: statistics.median(v) for k, v in res.items()}
    return {"runs": res, "median": med, "ratio_fit": med["ours_fit"] / med["pythae_fit"],
            "ratio_epoch": med["ours_epoch"] / med["pythae_epoch"]}


def pythae_flow(model, z: torch.Tensor) -> torch.Tensor:
    """pythae's posterior flow applied to the encoder mean, as its forward pass does to a draw
    (its ``embed`` returns the pre-flow mean, whose decoding the decoder never saw in training);
    the identity for models without a flow."""
    if hasattr(model, "iaf_flow"):  # VAE_IAF
        return model.iaf_flow.inverse(z).out
    if type(model).__name__ == "VAE_LinNF":
        for layer in model.net:
            z = layer(z).out
    return z


def pythae_quality(pair, model, Xtr, Xte, ytr, yte, seed: int = 0, sw_seeds: int = 1) -> dict[str, Any]:
    from pythae.samplers import (GaussianMixtureSampler, GaussianMixtureSamplerConfig, HypersphereUniformSampler,
                                 NormalSampler, VAMPSampler)

    head, sampler_kind = pair[5], pair[6]
    model.eval()

    def codes(X):
        with torch.no_grad():
            x = torch.from_numpy(X)
            if head == "vq":
                z = model({"data": x}).z.squeeze(-1).permute(0, 2, 1).reshape(len(x), -1).numpy()
                return z, z
            z = model.encoder(x).embedding
            if head == "svae":
                z = z / z.norm(dim=-1, keepdim=True)
            return z.numpy(), pythae_flow(model, z).numpy()

    # flow posteriors: codes and reconstructions through the flow, as ours (``embed`` = flow(μ));
    # the pre-flow mean's test MSE is kept as mse_premean
    (_, Ztr), (Mte, Zte) = codes(Xtr), codes(Xte)
    with torch.no_grad():
        rec = model.decoder(torch.from_numpy(Zte)).reconstruction.numpy()
        rec_mean = model.decoder(torch.from_numpy(Mte)).reconstruction.numpy()
    torch.manual_seed(seed)
    sampler = None
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        if sampler_kind == "gmm":
            sampler = GaussianMixtureSampler(model=model, sampler_config=GaussianMixtureSamplerConfig(n_components=10))
            sampler.fit(train_data=Xtr)
        elif sampler_kind != "empirical":
            sampler = {"normal": NormalSampler, "vamp": VAMPSampler,
                       "sphere": HypersphereUniformSampler}[sampler_kind](model=model)

    def sample(s: int) -> np.ndarray:
        torch.manual_seed(s)
        if sampler is None:  # empirical: resampled training codes
            idx = np.random.default_rng(s).integers(0, len(Ztr), len(Xte))
            with torch.no_grad():
                return model.decoder(torch.from_numpy(Ztr[idx])).reconstruction.numpy()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return sampler.sample(num_samples=len(Xte)).cpu().numpy()

    out = row(f"pythae {pair[3]}", Xte, ytr, yte, Ztr, Zte, rec, sample(seed))
    if not np.array_equal(Mte, Zte):
        out["mse_premean"] = float(np.mean((rec_mean.reshape(len(Xte), -1) - Xte.reshape(len(Xte), -1)) ** 2))
    add_sw_spread(out, sample, Xte, seed, sw_seeds)
    return out


def add_sw_spread(out: dict[str, Any], sample, Xte, seed: int, sw_seeds: int) -> None:
    """With sw_seeds > 1: SW₂ of the same fitted model over sampling seeds seed … seed + sw_seeds − 1
    (mean, sd, values), the sampling part of the SW₂ noise."""
    if sw_seeds > 1:
        vals = [generation_sw(np.asarray(sample(s)).reshape(len(Xte), -1), Xte.reshape(len(Xte), -1))
                for s in range(seed, seed + sw_seeds)]
        out.update(sw_seeds=vals, sw_mean=float(np.mean(vals)), sw_sd=float(np.std(vals, ddof=1)))


def quality(pair, Xtr, Xte, ytr, yte, epochs: int, recipe: str = "ours",
            sides: tuple[str, ...] = ("ours", "pythae"), seed: int = 0, sw_seeds: int = 1) -> dict[str, Any]:
    from sklearn.model_selection import train_test_split

    out: dict[str, Any] = {}
    if "ours" in sides:
        est = fit_ours(pair, Xtr, ytr, epochs, timing=False, recipe=recipe, seed=seed)
        out["ours"] = row(pair[0], Xte, ytr, yte, est.transform(Xtr), est.transform(Xte), est.reconstruct(Xte),
                          est.sample(len(Xte), seed=seed))
        out["ours"]["epochs_run"] = len(est.history_)
        out["ours"]["recipe"] = recipe
        add_sw_spread(out["ours"], lambda s: est.sample(len(Xte), seed=s), Xte, seed, sw_seeds)
    if "pythae" in sides:
        fit_idx, val_idx = train_test_split(np.arange(len(Xtr)), test_size=0.1, stratify=ytr, random_state=0)
        model = fit_pythae(pair, Xtr[fit_idx], epochs, eval_data=Xtr[val_idx], seed=seed)
        out["pythae"] = pythae_quality(pair, model, Xtr, Xte, ytr, yte, seed, sw_seeds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None,
                        help="comma-separated pair labels or model names (default: every pair both libraries have)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per timed fit")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality-epochs", type=int, default=100)
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="ours",
                        help="how our side trains in the quality part: our defaults, or pythae's trainer's recipe "
                             "(constant lr, no weight decay, no clipping, no early stopping)")
    parser.add_argument("--sides", default="ours,pythae",
                        help="which sides the quality part fits (e.g. 'ours' to rerun only ours)")
    parser.add_argument("--seed", type=int, default=0,
                        help="quality part: training and sampling seed of both sides (the split stays fixed)")
    parser.add_argument("--sw-seeds", type=int, default=1,
                        help="also SW2 over this many sampling seeds of each fitted model (mean, sd)")
    parser.add_argument("--out", default=None, help="append one JSON line per pair here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        import pythae.models as pm
    except ImportError:
        print("pythae not installed (pip install 'latentforge[bench]'): nothing to compare against")
        return
    for module in ("pythae.pipelines", "pythae.trainers"):  # creates the trainers' loggers, silenced next
        importlib.import_module(module)

    for name in logging.root.manager.loggerDict:  # pythae logs every epoch at INFO
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.ERROR)
    wanted = set(args.models.split(",")) if args.models else None
    Xtr, Xte, ytr, yte = (np.ascontiguousarray(a) for a in split("digits"))
    Xtr, Xte = Xtr.astype(np.float32), Xte.astype(np.float32)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"{torch.get_num_threads()} thread, torch {torch.__version__}; timed {args.epochs} epochs x "
          f"{args.repeats} repeats (ABBA), CPU time; quality {args.quality_epochs} epochs", flush=True)
    labels = {p[0] for p in pairs()}
    controls = [p for p in control_pairs() if wanted is not None and p[0] in wanted]
    for pair in pairs() + controls:
        label, name, *_ = pair
        # a label picks its pair; a model name that is no label (rae) picks all that model's pairs
        chosen = wanted is None or label in wanted or (name in wanted and name not in labels)
        if not chosen or name not in MODELS or not hasattr(pm, pair[3]):
            continue
        out: dict[str, Any] = {"label": label, "pythae": pair[3], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "load": os.getloadavg()[0]}
        try:
            if not args.no_timing:
                out["timing"] = throughput(pair, Xtr, ytr, args.epochs, args.repeats)
                t = out["timing"]["median"]
                print(f"{label:<30} fit {t['ours_fit']:7.0f} vs {t['pythae_fit']:7.0f} samples/s "
                      f"(x{out['timing']['ratio_fit']:.2f}); epoch {t['ours_epoch']:7.0f} vs {t['pythae_epoch']:7.0f} "
                      f"(x{out['timing']['ratio_epoch']:.2f})", flush=True)
            if not args.no_quality:
                sides = tuple(s for s in args.sides.split(",") if s)
                out["recipe"], out["seed"] = args.recipe, args.seed
                out["quality"] = quality(pair, Xtr, Xte, ytr, yte, args.quality_epochs, args.recipe, sides, args.seed,
                                         args.sw_seeds)
                for side, q in out["quality"].items():
                    spread = f"  (SW2 over {args.sw_seeds} sampling seeds {q['sw_mean']:.4f} ± {q['sw_sd']:.4f})" \
                        if "sw_mean" in q else ""
                    print(f"   {side:<7} MSE {q['mse']:.5f}  probe {q['probe']:.3f}  SW2 {q['sw']:.4f}{spread}", flush=True)
        except Exception as exc:  # one broken pair must not hide the others
            out["error"] = f"{type(exc).__name__}: {exc}"
            print(f"{label}: failed ({out['error']})", flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(out, default=float) + "\n")


if __name__ == "__main__":
    main()
