"""Fitting for Bayesian models (``fit_method = "posterior"``, today ``bae``): prior selection by
DSWD, then SGHMC posterior sampling, through the trainer's device resolution, progress display and
history records.

Tran et al., "Model Selection for Bayesian Autoencoders" (NeurIPS 2021): the prior means start at
the weights of an autoencoder pretrained on the data (:func:`pretrain`, ``prior_mean="pretrained"``);
the prior's means and log-variances are then chosen by minimising the distributional
sliced-Wasserstein distance between the data and the autoencoder's outputs under weights drawn
from the prior (:func:`select_prior`); the posterior p(θ | X) ∝ p(X | θ) p(θ) is sampled by SGHMC
(:func:`fit_posterior`), by default from the network's initial weights as in the paper's code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..config import TrainConfig, resolve_device
from ..errors import InputError, TrainingDivergedError
from ..sliced import PushforwardNet, distributional_sliced_wasserstein
from .progress import ProgressDisplay
from .sghmc import collection_steps, sample_sghmc

if TYPE_CHECKING:
    from ..models.bae import BAE

EVAL_ROWS = 128  # rows on which the prior-predictive DSWD is reported before and after selection


def select_prior(
    model: BAE, X: torch.Tensor, seed: int = 0, on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Choose the prior hyper-parameters of ``model`` by minimising the prior-predictive DSWD to X.

    The log-variances (one per tensor or per weight, ``prior_scale``) and, unless
    ``prior_mean="zero"``, the per-weight means (from ``model.prior_loc``) are optimised by
    ``dswd_steps`` Adam steps (learning rates ``dswd_lr`` and ``dswd_mean_lr``, cosine-decayed),
    the log-variances from log ``prior_variance``; each step draws ``dswd_batch`` rows of X and
    ``dswd_prior_draws`` weight sets, and estimates DSWD with ``dswd_projections`` directions whose push-forward
    distribution (Nguyen et al. 2021) is trained ``dswd_inner_steps`` steps per outer step and
    carried over between steps. Sets ``prior_log_var`` (and ``prior_loc``) and ``prior_dswd`` =
    (DSWD before, after) on up to 128 rows of X; returns the per-step minibatch estimates. Reproducible for
    a given ``seed``.
    """
    hp = model.hp
    n, batch, draws = len(X), hp["dswd_batch"], hp["dswd_prior_draws"]
    if n < batch:
        raise InputError(f"prior_selection='dswd' needs at least dswd_batch={batch} training rows for one batch, "
                         f"got {n}; lower dswd_batch or use prior_selection='none'.")
    order = torch.Generator().manual_seed(int(seed))
    gen = torch.Generator(device=X.device).manual_seed(int(seed) + 1)
    eval_x = X[torch.randperm(n, generator=order)[:EVAL_ROWS].to(X.device)]
    log_var = torch.full_like(model.prior_log_var, math.log(hp["prior_variance"])).requires_grad_(True)
    groups = [{"params": [log_var], "lr": hp["dswd_lr"]}]
    loc = None
    if hp["prior_mean"] != "zero":  # the means are hyper-parameters too (from 0 / 1 or a pretrained autoencoder)
        loc = model.prior_loc.detach().clone().requires_grad_(True)
        groups.append({"params": [loc], "lr": hp["dswd_mean_lr"]})
    start = model.prior_predictive_dswd(eval_x, seed, log_var, loc=loc)
    optimizer = torch.optim.Adam(groups)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=hp["dswd_steps"])
    directions = PushforwardNet(X.shape[1], X.dtype).to(X.device)  # warm-started across steps
    trace: list[float] = []
    for step in range(hp["dswd_steps"]):
        x = X[torch.randperm(n, generator=order)[:batch].to(X.device)]
        out = model.prior_outputs(x, log_var, draws, gen, loc)
        d = distributional_sliced_wasserstein(out, x.repeat(draws, 1), p=2, n_projections=hp["dswd_projections"],
                                              family="network", n_iter=hp["dswd_inner_steps"],
                                              network=directions, seed=int(seed) * 100_003 + step)
        value = float(d.detach())
        if not math.isfinite(value):
            raise TrainingDivergedError(f"the prior-selection DSWD became {value} at step {step + 1}; try a "
                                        f"smaller dswd_lr (e.g. {hp['dswd_lr'] / 10:g}).", 0, step + 1, "dswd")
        optimizer.zero_grad(set_to_none=True)
        d.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            log_var.clamp_(*model.LOG_VAR_RANGE)
        trace.append(value)
        if on_step is not None:
            on_step(step + 1, value)
    with torch.no_grad():
        model.prior_log_var.copy_(log_var)
        if loc is not None:
            model.prior_loc.copy_(loc)
    end = model.prior_predictive_dswd(eval_x, seed)
    model.prior_dswd.copy_(torch.tensor([start, end]))
    return trace


def pretrain(model: BAE, X: torch.Tensor, seed: int = 0, batch_size: int = 64) -> list[float]:
    """Fit the autoencoder's weights by Adam on the reconstruction NLL (``pretrain_steps`` steps,
    learning rate ``pretrain_lr``, minibatches of ``batch_size`` rows); returns the per-step losses.

    The paper's code initialises the prior means at such a pretrained autoencoder (then optimises
    them with the variances by DSWD); ``prior_mean="pretrained"`` does the same.
    """
    hp = model.hp
    n = len(X)
    batch = min(batch_size, n)
    order = torch.Generator().manual_seed(int(seed) + 2)
    optimizer = torch.optim.Adam(model.weight_tensors(), lr=hp["pretrain_lr"])
    trace: list[float] = []
    perm = torch.randperm(n, generator=order)
    j = 0
    model.train()
    for step in range(hp["pretrain_steps"]):
        if j + batch > n:
            perm, j = torch.randperm(n, generator=order), 0
        x = X[perm[j:j + batch].to(X.device)]
        j += batch
        loss = model.likelihood.nll(model.decoder(model.encoder(x)), x).mean()
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"pretraining the prior means diverged at step {step + 1}; try a smaller "
                                        f"pretrain_lr (e.g. {hp['pretrain_lr'] / 10:g}).", 0, step + 1, "pretrain")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        trace.append(float(loss.detach()))
    for p in model.weight_tensors():
        p.grad = None
    return trace


def fit_posterior(
    model: BAE, X_train: torch.Tensor, X_val: torch.Tensor | None, config: TrainConfig,
    progress: bool | None = None, description: str = "bae",
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Pretrain the prior means (``prior_mean="pretrained"``), select the prior (DSWD or fixed),
    then sample the posterior with SGHMC from ``chain_start``; returns the history.

    Uses ``config.epochs`` (one chain's length: burn-in + collection), ``batch_size``, ``seed``
    and ``device``; the optimiser settings of :class:`~latentforge.config.TrainConfig` (lr,
    weight_decay, schedule, grad_clip, patience) do not apply: ``step_size``, ``friction`` and
    the prior play their roles. Validation rows, if any, are only reported (``val_*``).
    One history record per SGHMC epoch (burn-in epochs first, then each chain's).
    """
    hp = model.hp
    device = resolve_device(config.device)
    model.to(device)
    X = X_train.to(device)
    X_val = None if X_val is None or len(X_val) == 0 else X_val.to(device)
    n = len(X)
    batch = min(config.batch_size, n)
    spe = math.ceil(n / batch)
    burn_epochs = int(hp["burn_in"] * config.epochs)
    window = (config.epochs - burn_epochs) * spe
    chains, m = hp["chains"], hp["posterior_samples"]
    for c in range(chains):  # check the schedule before any work
        collection_steps(window, m // chains + (c < m % chains), hp["thinning"])
    dswd = hp["prior_selection"] == "dswd"
    if dswd and n < hp["dswd_batch"]:
        raise InputError(f"prior_selection='dswd' needs at least dswd_batch={hp['dswd_batch']} training rows for "
                         f"one batch, got {n}; lower dswd_batch or use prior_selection='none'.")
    model.start_posterior(n)
    total_epochs = burn_epochs + chains * (config.epochs - burn_epochs)
    initial = [p.detach().clone() for p in model.weight_tensors()]
    with ProgressDisplay(progress) as display:
        if hp["prior_mean"] == "pretrained":
            pre_task = display.add(f"{description} pretraining (prior means)", 1)
            pretrain(model, X, seed=config.seed, batch_size=batch)
            with torch.no_grad():
                model.prior_loc.copy_(model.bayesian_weights())
            display.update(pre_task, completed=1)
        elif hp["prior_mean"] == "learned":
            model.prior_loc.copy_(model.constant_prior_loc())
        if dswd:
            prior_task = display.add(f"{description} prior (DSWD)", hp["dswd_steps"])
            select_prior(model, X, seed=config.seed,
                         on_step=lambda step, value: display.update(prior_task, completed=step,
                                                                    terms=f"dswd={value:.4g}"))
        else:
            model.prior_log_var.fill_(math.log(hp["prior_variance"]))
            model.prior_dswd.fill_(float("nan"))
        with torch.no_grad():
            if hp["chain_start"] == "prior_mean":  # Bayesian weights at the (selected) prior means
                for p, prior in zip(model.weight_tensors(), model.prior_parameters()):
                    if prior is not None:
                        p.copy_(prior[0])
            else:  # the paper's default: the chain starts from a fresh initialisation
                for p, p0 in zip(model.weight_tensors(), initial):
                    p.copy_(p0)
        task = display.add(f"{description} SGHMC epochs", total_epochs)

        def show(record: dict[str, float]) -> None:
            phase = "burn-in" if record["burn_in"] else f"chain {int(record['chain'])}"
            display.update(task, advance=1, terms=f"{phase}  samples {int(record['samples'])}/{m}  "
                                                  f"loss={record['train_total']:.4g}  "
                                                  f"grad_noise={record['grad_noise']:.2f}")
            if on_epoch is not None:
                on_epoch(record)

        history = _sample(model, X, X_val, config, batch, spe, burn_epochs * spe, window, show)
    model.eval()
    return history


def _sample(model: BAE, X: torch.Tensor, X_val: torch.Tensor | None, config: TrainConfig, batch: int, spe: int,
            burn_in: int, window: int, on_epoch: Callable[[dict[str, float]], None]) -> list[dict[str, float]]:
    hp = model.hp
    n = len(X)
    shuffle = torch.Generator().manual_seed(int(config.seed))
    order = torch.arange(n)
    acc = {"nll": 0.0, "rows": 0, "prior": 0.0, "started": time.perf_counter()}
    history: list[dict[str, float]] = []

    def potential(t: int) -> torch.Tensor:
        nonlocal order
        j = t % spe
        if j == 0:
            order = torch.randperm(n, generator=shuffle).to(X.device)
        x = X[order[j * batch:(j + 1) * batch]]
        nll = model.likelihood.nll(model.decoder(model.encoder(x)), x)
        prior = model.prior_energy()
        acc["nll"] += float(nll.detach().sum())
        acc["rows"] += len(x)
        acc["prior"] = float(prior.detach())
        return nll.sum() * (n / len(x)) + prior  # minibatch likelihood scaled to the whole set

    def callback(info: dict[str, Any]) -> None:
        t = info["step"]
        if (t + 1) % spe:
            return
        recon = acc["nll"] / max(acc["rows"], 1)
        record: dict[str, float] = {
            "epoch": (t + 1) // spe, "chain": info["chain"], "burn_in": float(info["burn_in"]),
            "step_size": info["step_size"], "train_reconstruction": recon, "train_prior": acc["prior"] / n,
            "train_total": recon + acc["prior"] / n, "grad_noise": info["sampler"].grad_noise(),
            "samples": info["collected"],
        }
        if X_val is not None:
            with torch.no_grad():
                val = model.likelihood.nll(model.decoder(model.encoder(X_val)), X_val).mean().item()
            record.update(val_reconstruction=val, val_prior=acc["prior"] / n, val_total=val + acc["prior"] / n)
        record["seconds"] = time.perf_counter() - acc["started"]
        history.append(record)
        acc.update(nll=0.0, rows=0, started=time.perf_counter())
        on_epoch(record)

    model.train()
    samples = sample_sghmc(
        model.weight_tensors(), potential, n_samples=hp["posterior_samples"], burn_in=burn_in, window=window,
        step_size=hp["step_size"], friction=hp["friction"], chains=hp["chains"], thinning=hp["thinning"],
        precondition=hp["precondition"], schedule=hp["step_schedule"], noise=model.bayesian_mask,
        seed=int(config.seed), callback=callback, steps_per_epoch=spe)
    model.store_posterior(samples)
    return history
