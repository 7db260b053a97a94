"""Bayesian autoencoder with prior selection by distributional sliced-Wasserstein distance.

Tran, Rossi, Milios, Michiardi, Bonilla & Filippone, "Model Selection for Bayesian Autoencoders"
(NeurIPS 2021). Every weight tensor and bias vector θ_l of the encoder and decoder (or of the
decoder only, ``bayesian="decoder"``) has a Gaussian prior N(μ_l, σ_l²) with one variance per
tensor (μ_l = 1 for the gains of normalisation layers, 0 otherwise). This file is the model:
its weights, prior, posterior storage and predictions. Fitting lives in
:mod:`latentforge.train.posterior` (``fit_method = "posterior"``) and has two phases:

1. **Prior selection** (``prior_selection="dswd"``): the log-variances log σ_l² are chosen by
   minimising DSWD(data, outputs of the autoencoder under weights drawn from the prior) with Adam;
   the gradient reaches them through reparameterised draws θ_l = μ_l + σ_l ε. This replaces type-II
   maximum likelihood, whose equivalent is a KL divergence that cannot be estimated from samples.
   ``"none"`` keeps the fixed prior N(μ_l, ``prior_variance``).
2. **Posterior sampling** by SGHMC (:mod:`latentforge.train.sghmc`) of p(θ | X) ∝ p(X | θ) p(θ), with the
   reconstruction likelihood p(x | θ) = p(x | decoder_θ(encoder_θ(x))) and minibatch gradients
   scaled to the whole training set; ``posterior_samples`` weight vectors are kept.

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
_EVAL_INNER_STEPS = 20    # direction-optimisation steps of the prior-predictive DSWD report (fresh network)


class BAE(BaseAutoencoder):
    """Bayesian autoencoder: Gaussian weight priors chosen by DSWD, SGHMC posterior samples.

    Hyper-parameters (``hyperparameters`` lists the defaults): ``posterior_samples`` M kept;
    ``chains`` run after a shared burn-in; ``burn_in`` share of each chain's epochs discarded;
    ``thinning`` SGHMC steps between kept samples (0: spread over the collection window);
    ``step_size`` η, ``friction`` α, ``step_schedule``, ``precondition`` (see :mod:`.sghmc`);
    ``bayesian`` ``"all"`` or ``"decoder"``; ``prior_selection`` ``"dswd"`` or ``"none"``;
    ``prior_variance`` the fixed prior variance and the start of the selection; ``dswd_*`` the
    selection's Adam steps, learning rate, batch rows, prior draws per step, projections and
    direction-optimisation steps per outer step.
    """

    name = "bae"
    description = ("Bayesian autoencoder: SGHMC weight posterior, prior variances chosen by DSWD, "
                   "predictive uncertainty")
    hyperparameters = {
        "posterior_samples": 20, "chains": 1, "burn_in": 0.5, "thinning": 0, "step_size": 1e-4, "friction": 0.05,
        "step_schedule": "constant", "precondition": True, "bayesian": "all", "prior_selection": "dswd",
        "prior_variance": 1.0, "dswd_steps": 100, "dswd_lr": 0.1, "dswd_batch": 32, "dswd_prior_draws": 8,
        "dswd_projections": 50, "dswd_inner_steps": 5,
    }
    bounds = {
        "posterior_samples": (1, None), "chains": (1, None), "burn_in": (0.0, None), "thinning": (0, None),
        "step_size": (0.0, None), "friction": (0.0, 1.0), "prior_variance": (0.0, None), "dswd_steps": (1, None),
        "dswd_lr": (0.0, None), "dswd_batch": (2, None), "dswd_prior_draws": (1, None), "dswd_projections": (1, None),
        "dswd_inner_steps": (0, None),
    }
    #: selected log-variances are kept in a range where draws stay finite in float32.
    LOG_VAR_RANGE = (-18.0, 4.0)
    has_uncertainty = True
    anomaly_kinds = ANOMALY_KINDS
    fit_method = "posterior"  # latentforge.train.posterior: prior selection, then SGHMC
    choices = {"step_schedule": SGHMC_SCHEDULES, "bayesian": ("all", "decoder"), "prior_selection": ("dswd", "none")}

    def __init__(
        self, input_shape: tuple[int, ...], layout: list[tuple[str, int, int]], latent_dim: int,
        architecture: Architecture | None = None, **hyperparameters: Any,
    ):
        super().__init__(input_shape, layout, latent_dim, architecture, **hyperparameters)
        hp = self.hp
        if hp["burn_in"] >= 1:
            raise InputError(f"burn_in={hp['burn_in']!r} is longer than the run: it is the share of each chain's "
                             f"epochs spent before collecting samples and must be below 1 (e.g. 0.5).")
        for key in ("step_size", "friction", "prior_variance", "dswd_lr"):
            if not hp[key] > 0 or not math.isfinite(hp[key]):
                raise InputError(f"hyper-parameter {key!r} of model 'bae' must be positive and finite, "
                                 f"got {hp[key]!r}.")
        if hp["chains"] > hp["posterior_samples"]:
            raise InputError(f"chains={hp['chains']} needs at least one posterior sample per chain, but "
                             f"posterior_samples={hp['posterior_samples']}.")
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
        self.register_buffer("prior_log_var", torch.full((n_groups,), math.log(hp["prior_variance"])))
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

    def prior_energy(self) -> torch.Tensor:
        """−log p(θ) + const of the current weights: Σ_l ‖θ_l − μ_l‖² / (2σ_l²) over Bayesian tensors."""
        total = self.prior_log_var.new_zeros(())
        for p, bayes, g, mu in zip(self.weight_tensors(), self.bayesian_mask, self._group, self._prior_mean):
            if bayes:
                total = total + 0.5 * torch.exp(-self.prior_log_var[g]) * (p - mu).pow(2).sum()
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
    def prior_outputs(self, x: torch.Tensor, log_var: torch.Tensor, draws: int, gen: torch.Generator) -> torch.Tensor:
        """Expected outputs for x under ``draws`` weight sets drawn from the prior, (draws·N, D).

        Draws are reparameterised (θ = μ + exp(log_var / 2) ε), so the result is differentiable in
        ``log_var``; non-Bayesian tensors keep their current values.
        """
        outs = []
        live = self.weight_tensors()
        for _ in range(draws):
            weights = []
            for (_, _, shape, _), p, bayes, g, mu in zip(self._layout, live, self.bayesian_mask, self._group,
                                                          self._prior_mean):
                if bayes:
                    eps = torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype)
                    weights.append(mu + torch.exp(0.5 * log_var[g]) * eps)
                else:
                    weights.append(p.detach())
            enc, dec = self._split(weights)
            z = functional_call(self.encoder, enc, (x,))
            outs.append(self.likelihood.mean(functional_call(self.decoder, dec, (z,))))
        return torch.cat(outs)

    def prior_predictive_dswd(self, x: torch.Tensor, seed: int = 0, log_var: torch.Tensor | None = None,
                              draws: int | None = None) -> float:
        """DSWD between x and the outputs for x under ``draws`` (default ``dswd_prior_draws``) prior weight draws.

        Uses the prior log-variances ``log_var`` (default: the model's) and a fixed ``seed`` for the
        draws and directions, so values before and after :func:`latentforge.train.posterior.select_prior` are comparable.
        """
        hp = self.hp
        draws = hp["dswd_prior_draws"] if draws is None else int(draws)
        log_var = self.prior_log_var if log_var is None else log_var
        gen = torch.Generator(device=x.device).manual_seed(int(seed))
        with torch.no_grad():
            out = self.prior_outputs(x, log_var.detach(), draws, gen)
        d = distributional_sliced_wasserstein(out, x.repeat(draws, 1), p=2,
                                              n_projections=hp["dswd_projections"], family="network",
                                              n_iter=_EVAL_INNER_STEPS, seed=int(seed))
        return float(d)
