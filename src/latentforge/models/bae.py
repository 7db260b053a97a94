"""Bayesian autoencoder with prior selection by distributional sliced-Wasserstein distance.

Tran, Rossi, Milios, Michiardi, Bonilla & Filippone, "Model Selection for Bayesian Autoencoders"
(NeurIPS 2021). Every weight of the encoder and decoder (or of the decoder only,
``bayesian="decoder"``) has a Gaussian prior N(μ, σ²). ``prior_scale`` gives one σ² per tensor
(``"tensor"``) or per weight (``"weight"``, the paper's code); ``prior_mean`` fixes μ at 0 (1 for
normalisation gains; ``"zero"``), learns per-weight means from there (``"learned"``) or learns them
from the weights of an autoencoder pretrained on the data (``"pretrained"``, the paper's code).
This file is the model: its weights, prior, posterior storage and predictions. Fitting lives in
:mod:`latentforge.train.posterior` (``fit_method = "posterior"``) and has up to three phases:

0. **Pretraining** (``prior_mean="pretrained"``): Adam on the reconstruction NLL for
   ``pretrain_steps`` steps; the weights become the prior means.
1. **Prior selection** (``prior_selection="dswd"``): the log-variances (and, unless
   ``prior_mean="zero"``, the means) are chosen by minimising DSWD(data, outputs of the
   autoencoder under weights drawn from the prior) with Adam; the gradient reaches them through
   reparameterised draws θ = μ + σ ε. This replaces type-II maximum likelihood, whose equivalent is
   a KL divergence that cannot be estimated from samples. ``"none"`` keeps N(μ, ``prior_variance``).
2. **Posterior sampling** by SGHMC (:mod:`latentforge.train.sghmc`) of p(θ | X) ∝ p(X | θ) p(θ), with the
   reconstruction likelihood p(x | θ) = p(x | decoder_θ(encoder_θ(x))) and minibatch gradients
   scaled to the whole training set, from the initial weights (``chain_start="random"``, the
   paper's default) or from the prior means (``"prior_mean"``); ``posterior_samples`` weight
   vectors are kept.

Predictions average over the kept samples: ``embed`` is the posterior mean code, ``reconstruct``
the posterior-predictive mean E_s[mean(decoder_s(encoder_s(x)))], and ``decode(z)`` returns the
decoder output whose ``likelihood.mean`` is E_s[mean(decoder_s(z))] (logits of the averaged
probabilities for pixels): decoding averages over posterior samples, it does not draw one.
Generation: a mixture on the posterior-mean codes of the training data (the estimator's
``sampler="dpmm"`` is the paper's Dirichlet-process mixture), decoded as above.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..config import SGHMC_SCHEDULES
from ..errors import InputError, unknown_name_error
from ..sliced import distributional_sliced_wasserstein
from .base import BaseAutoencoder
from .blocks import Architecture

ANOMALY_KINDS = ("expected_recon", "predictive_variance")
PRIOR_MEANS = ("zero", "learned", "pretrained")
# exp(-6): the paper's code starts every per-weight log-variance at -6 (σ ≈ 0.05 around the pretrained weights).
PAPER_PRIOR_VARIANCE = math.exp(-6.0)
_EVAL_INNER_STEPS = 20    # direction-optimisation steps of the prior-predictive DSWD report (fresh network)


class BAE(BaseAutoencoder):
    """Bayesian autoencoder: Gaussian weight priors chosen by DSWD, SGHMC posterior samples.

    Hyper-parameters (``hyperparameters`` lists the defaults): ``posterior_samples`` M kept;
    ``chains`` run after a shared burn-in; ``burn_in`` share of each chain's epochs discarded;
    ``thinning`` SGHMC steps between kept samples (0: spread over the collection window);
    ``step_size`` η, ``friction`` α, ``step_schedule``, ``precondition`` (see :mod:`.sghmc`);
    ``bayesian`` ``"all"`` or ``"decoder"``; ``prior_selection`` ``"dswd"`` or ``"none"``;
    ``prior_variance`` the fixed prior variance and the start of the selection; ``prior_mean``
    ``"zero"``, ``"learned"`` or ``"pretrained"``; ``prior_scale`` ``"tensor"`` or ``"weight"``;
    ``chain_start`` ``"random"`` or ``"prior_mean"``; ``pretrain_steps``, ``pretrain_lr`` the
    pretraining's Adam steps and rate; ``dswd_*`` the selection's Adam steps, learning rates
    (log-variances, means), batch rows, prior draws per step, projections and
    direction-optimisation steps per outer step.
    """

    name = "bae"
    description = ("Bayesian autoencoder: SGHMC weight posterior, prior variances chosen by DSWD, "
                   "predictive uncertainty")
    hyperparameters = {
        "posterior_samples": 20, "chains": 1, "burn_in": 0.5, "thinning": 0, "step_size": 1e-4, "friction": 0.05,
        "step_schedule": "constant", "precondition": True, "bayesian": "all", "prior_selection": "dswd",
        "prior_variance": PAPER_PRIOR_VARIANCE, "prior_mean": "pretrained", "prior_scale": "weight",
        "chain_start": "random",
        "pretrain_steps": 1000, "pretrain_lr": 1e-3, "dswd_steps": 100, "dswd_lr": 0.1, "dswd_mean_lr": 1e-3,
        "dswd_batch": 32, "dswd_prior_draws": 8, "dswd_projections": 50, "dswd_inner_steps": 5,
    }
    bounds = {
        "posterior_samples": (1, None), "chains": (1, None), "burn_in": (0.0, None), "thinning": (0, None),
        "step_size": (0.0, None), "friction": (0.0, 1.0), "prior_variance": (0.0, None), "dswd_steps": (1, None),
        "dswd_lr": (0.0, None), "dswd_batch": (2, None), "dswd_prior_draws": (1, None), "dswd_projections": (1, None),
        "dswd_inner_steps": (0, None), "pretrain_steps": (1, None), "pretrain_lr": (0.0, None),
        "dswd_mean_lr": (0.0, None),
    }
    #: selected log-variances are kept in a range where draws stay finite in float32.
    LOG_VAR_RANGE = (-18.0, 4.0)
    has_uncertainty = True
    anomaly_kinds = ANOMALY_KINDS
    fit_method = "posterior"  # latentforge.train.posterior: prior selection, then SGHMC
    choices = {"step_schedule": SGHMC_SCHEDULES, "bayesian": ("all", "decoder"), "prior_selection": ("dswd", "none"),
               "prior_mean": PRIOR_MEANS, "prior_scale": ("tensor", "weight"), "chain_start": ("random", "prior_mean")}

    def __init__(
        self, input_shape: tuple[int, ...], layout: list[tuple[str, int, int]], latent_dim: int,
        architecture: Architecture | None = None, **hyperparameters: Any,
    ):
        super().__init__(input_shape, layout, latent_dim, architecture, **hyperparameters)
        hp = self.hp
        if hp["burn_in"] >= 1:
            raise InputError(f"burn_in={hp['burn_in']!r} is longer than the run: it is the share of each chain's "
                             f"epochs spent before collecting samples and must be below 1 (e.g. 0.5).")
        for key in ("step_size", "friction", "prior_variance", "dswd_lr", "dswd_mean_lr", "pretrain_lr"):
            if not hp[key] > 0 or not math.isfinite(hp[key]):
                raise InputError(f"hyper-parameter {key!r} of model 'bae' must be positive and finite, "
                                 f"got {hp[key]!r}.")
        if hp["chains"] > hp["posterior_samples"]:
            raise InputError(f"chains={hp['chains']} needs at least one posterior sample per chain, but "
                             f"posterior_samples={hp['posterior_samples']}.")
        if hp["chain_start"] == "prior_mean" and hp["prior_mean"] != "pretrained":
            raise InputError(f"chain_start='prior_mean' starts SGHMC from the prior means, which needs "
                             f"prior_mean='pretrained' (got prior_mean={hp['prior_mean']!r}: a chain started at "
                             f"all-zero weights has no signal to follow).")
        if self.architecture.norm == "batch":
            raise InputError("model 'bae' does not support norm='batch' (batch statistics are not weights a posterior "
                             "sample can carry); use norm='layer' or 'none'.")
        # One entry per tensor of encoder then decoder: (part, name, shape, numel), Bayesian?, prior mean.
        self._layout: list[tuple[str, str, torch.Size, int]] = []
        self.bayesian_mask: list[bool] = []
        self._prior_mean: list[float] = []
        self._group: list[int] = []
        for part, net in (("encoder", self.encoder), ("decoder", self.decoder)):
            gains = {f"{m}.weight" if m else "weight" for m, mod in net.named_modules()
                     if isinstance(mod, (nn.LayerNorm, nn.GroupNorm)) and getattr(mod, "weight", None) is not None}
            for pname, p in net.named_parameters():
                self._layout.append((part, pname, p.shape, p.numel()))
                bayes = part == "decoder" or hp["bayesian"] == "all"
                self.bayesian_mask.append(bayes)
                self._prior_mean.append(1.0 if pname in gains else 0.0)
                self._group.append(sum(self.bayesian_mask) - 1 if bayes else -1)
        n_groups = sum(self.bayesian_mask)
        n_params = sum(numel for *_, numel in self._layout)
        # Offsets of each Bayesian tensor in the flat vector of Bayesian weights (per-weight hyper-parameters).
        self._bayes_slice: list[tuple[int, int] | None] = []
        offset = 0
        for (_, _, _, numel), bayes in zip(self._layout, self.bayesian_mask):
            self._bayes_slice.append((offset, offset + numel) if bayes else None)
            offset += numel if bayes else 0
        self.n_bayesian = offset
        n_scale = n_groups if hp["prior_scale"] == "tensor" else self.n_bayesian
        self.register_buffer("prior_log_var", torch.full((n_scale,), math.log(hp["prior_variance"])))
        if hp["prior_mean"] != "zero":  # per-weight prior means (absent for zero means: older files load)
            self.register_buffer("prior_loc", self.constant_prior_loc())
        self.register_buffer("prior_dswd", torch.full((2,), float("nan")))  # DSWD before / after selection
        self.register_buffer("n_train", torch.zeros((), dtype=torch.long))
        self.register_buffer("n_collected", torch.zeros((), dtype=torch.long))
        self._sample_names = [f"posterior_{i:03d}" for i in range(hp["posterior_samples"])]
        for name in self._sample_names:  # one flat weight vector per posterior sample
            self.register_buffer(name, torch.zeros(n_params))

    # -- weights -------------------------------------------------------------------------------
    def weight_tensors(self) -> list[torch.Tensor]:
        """The live encoder and decoder parameters, in the order of the flat posterior samples."""
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def _split(self, tensors: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        enc: dict[str, torch.Tensor] = {}
        dec: dict[str, torch.Tensor] = {}
        for (part, name, _, _), t in zip(self._layout, tensors):
            (enc if part == "encoder" else dec)[name] = t
        return enc, dec

    def _unflatten(self, flat: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        views, offset = [], 0
        for _, _, shape, numel in self._layout:
            views.append(flat[offset:offset + numel].view(shape))
            offset += numel
        return self._split(views)

    def start_posterior(self, n_train: int) -> None:
        """Forget stored samples; the prior energy is now scaled to ``n_train`` rows."""
        self.n_train.fill_(int(n_train))
        self.n_collected.zero_()

    @torch.no_grad()
    def store_posterior(self, samples: torch.Tensor) -> None:
        """Keep posterior samples, (M, P) flat weight vectors (M ≤ ``posterior_samples``)."""
        for name, flat in zip(self._sample_names, samples):
            getattr(self, name).copy_(flat)
        self.n_collected.fill_(len(samples))

    def posterior_weights(self) -> list[torch.Tensor]:
        """The kept posterior samples, one flat weight vector each (encoder then decoder parameters)."""
        return [getattr(self, name) for name in self._sample_names[:int(self.n_collected)]]

    def _weight_sets(self) -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        """Encoder/decoder weights of each posterior sample; the current weights before fitting."""
        samples = self.posterior_weights()
        if not samples:
            return [self._split(self.weight_tensors())]
        return [self._unflatten(flat) for flat in samples]

    # -- the prior ---------------------------------------------------------------------------
    def constant_prior_loc(self) -> torch.Tensor:
        """The default prior means as a flat vector over the Bayesian weights (1 for normalisation gains, else 0)."""
        parts = [torch.full((numel,), mu) for (_, _, _, numel), bayes, mu in
                 zip(self._layout, self.bayesian_mask, self._prior_mean) if bayes]
        return torch.cat(parts) if parts else torch.zeros(0)

    def bayesian_weights(self) -> torch.Tensor:
        """The current Bayesian weights as one detached flat vector (the layout of ``prior_loc``)."""
        parts = [p.detach().reshape(-1) for p, bayes in zip(self.weight_tensors(), self.bayesian_mask) if bayes]
        return torch.cat(parts) if parts else torch.zeros(0)

    def prior_parameters(self, log_var: torch.Tensor | None = None, loc: torch.Tensor | None = None,
                         ) -> list[tuple[torch.Tensor | float, torch.Tensor] | None]:
        """(mean μ_l, log-variance) of each tensor's prior, ``None`` for non-Bayesian tensors.

        ``log_var`` (default the model's) has one entry per Bayesian tensor (``prior_scale="tensor"``)
        or per Bayesian weight (``"weight"``); ``loc`` (default the model's ``prior_loc``, if any) one
        per Bayesian weight, or none for the constant means. Views, so gradients reach both.
        """
        log_var = self.prior_log_var if log_var is None else log_var
        if loc is None and self.hp["prior_mean"] != "zero":
            loc = self.prior_loc
        per_weight = self.hp["prior_scale"] == "weight"
        out: list[tuple[torch.Tensor | float, torch.Tensor] | None] = []
        for (_, _, shape, _), cut, g, mu in zip(self._layout, self._bayes_slice, self._group, self._prior_mean):
            if cut is None:
                out.append(None)
                continue
            a, b = cut
            out.append((mu if loc is None else loc[a:b].view(shape),
                        log_var[a:b].view(shape) if per_weight else log_var[g]))
        return out

    def prior_energy(self) -> torch.Tensor:
        """−log p(θ) + const of the current weights: Σ ‖θ − μ‖² / (2σ²) over the Bayesian weights
        (σ per tensor or per weight, μ constant or per weight)."""
        total = self.prior_log_var.new_zeros(())
        for p, prior in zip(self.weight_tensors(), self.prior_parameters()):
            if prior is not None:
                mu, log_var = prior
                total = total + 0.5 * (torch.exp(-log_var) * (p - mu).pow(2)).sum()
        return total

    # -- the interface -------------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-example negative log posterior of the current weights (the target SGHMC samples):
        mean reconstruction NLL + prior energy / n_train (the batch size before fitting)."""
        recon = self.likelihood.nll(self.decoder(self.encoder(x)), x).mean()
        n = int(self.n_train) or len(x)
        prior = self.prior_energy() / n
        return {"reconstruction": recon, "prior": prior, "total": recon + prior}

    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        """Codes under each posterior sample, (M, N, latent_dim)."""
        return torch.stack([functional_call(self.encoder, enc, (x,)) for enc, _ in self._weight_sets()])

    def _reconstructions(self, x: torch.Tensor) -> torch.Tensor:
        """Expected reconstructions under each posterior sample, (M, N, D)."""
        outs = []
        for enc, dec in self._weight_sets():
            z = functional_call(self.encoder, enc, (x,))
            outs.append(self.likelihood.mean(functional_call(self.decoder, dec, (z,))))
        return torch.stack(outs)

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"z": posterior mean code}``."""
        return {"z": self.embed(x)}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean of the code."""
        return self._codes(x).mean(0)

    def embed_with_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the code across posterior samples, each (N, latent_dim)."""
        codes = self._codes(x)
        return codes.mean(0), codes.std(0, correction=0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output whose ``likelihood.mean`` is the average over posterior samples of the
        decoded means (so generated and decoded rows are posterior-predictive means)."""
        means = torch.stack([self.likelihood.mean(functional_call(self.decoder, dec, (z,)))
                             for _, dec in self._weight_sets()])
        return self._output_from_mean(means.mean(0))

    def _output_from_mean(self, mean: torch.Tensor) -> torch.Tensor:
        """Inverse of ``likelihood.mean`` per feature block (means for Gaussian blocks, logits for
        Bernoulli, log-probabilities for categorical groups)."""
        parts = []
        for kind, a, b in self.likelihood.layout:
            m = mean[:, a:b]
            parts.append(m if kind == "gaussian" else torch.logit(m, eps=1e-7) if kind == "bernoulli"
                         else torch.log(m.clamp_min(1e-30)))
        return torch.cat(parts, dim=1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior-predictive mean reconstruction E_s[mean(decoder_s(encoder_s(x)))]."""
        return self._reconstructions(x).mean(0)

    def reconstruct_with_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the reconstruction across posterior samples, each (N, D)."""
        recon = self._reconstructions(x)
        return recon.mean(0), recon.std(0, correction=0)

    def anomaly_score(self, x: torch.Tensor, kind: str) -> torch.Tensor:
        """Per-row score, higher = more anomalous: ``"expected_recon"`` = E_s mean_j (x_j − x̂_sj)²
        (the reconstruction error averaged over posterior samples), ``"predictive_variance"`` =
        mean_j Var_s x̂_sj (epistemic uncertainty of the reconstruction)."""
        if kind not in ANOMALY_KINDS:
            raise unknown_name_error("anomaly score kind for model 'bae'", kind, ("recon", *ANOMALY_KINDS))
        recon = self._reconstructions(x)
        if kind == "expected_recon":
            return (recon - x).pow(2).mean(2).mean(0)
        return recon.var(0, correction=0).mean(1)

    # -- prior selection -----------------------------------------------------------------------
    def prior_outputs(self, x: torch.Tensor, log_var: torch.Tensor, draws: int, gen: torch.Generator,
                      loc: torch.Tensor | None = None) -> torch.Tensor:
        """Expected outputs for x under ``draws`` weight sets drawn from the prior, (draws·N, D).

        Draws are reparameterised (θ = μ + exp(log_var / 2) ε), so the result is differentiable in
        ``log_var`` and in the per-weight means ``loc`` (default the model's); non-Bayesian tensors
        keep their current values.
        """
        outs = []
        live = self.weight_tensors()
        priors = self.prior_parameters(log_var, loc)
        for _ in range(draws):
            weights = []
            for (_, _, shape, _), p, prior in zip(self._layout, live, priors):
                if prior is not None:
                    mu, lv = prior
                    eps = torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype)
                    weights.append(mu + torch.exp(0.5 * lv) * eps)
                else:
                    weights.append(p.detach())
            enc, dec = self._split(weights)
            z = functional_call(self.encoder, enc, (x,))
            outs.append(self.likelihood.mean(functional_call(self.decoder, dec, (z,))))
        return torch.cat(outs)

    def prior_predictive_dswd(self, x: torch.Tensor, seed: int = 0, log_var: torch.Tensor | None = None,
                              draws: int | None = None, loc: torch.Tensor | None = None) -> float:
        """DSWD between x and the outputs for x under ``draws`` (default ``dswd_prior_draws``) prior weight draws.

        Uses the prior log-variances ``log_var`` and means ``loc`` (default: the model's) and a fixed
        ``seed`` for the draws and directions, so values before and after
        :func:`latentforge.train.posterior.select_prior` are comparable.
        """
        hp = self.hp
        draws = hp["dswd_prior_draws"] if draws is None else int(draws)
        log_var = self.prior_log_var if log_var is None else log_var
        gen = torch.Generator(device=x.device).manual_seed(int(seed))
        with torch.no_grad():
            out = self.prior_outputs(x, log_var.detach(), draws, gen, None if loc is None else loc.detach())
        d = distributional_sliced_wasserstein(out, x.repeat(draws, 1), p=2,
                                              n_projections=hp["dswd_projections"], family="network",
                                              n_iter=_EVAL_INNER_STEPS, seed=int(seed))
        return float(d)
