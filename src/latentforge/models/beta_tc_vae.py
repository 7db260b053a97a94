"""β-TC-VAE (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in Variational
Autoencoders").

Encoder output: mean and log-variance of a diagonal Gaussian q(z|x) (inherited from VAE). With the
aggregate posterior q(z) = (1/N) Σ_n q(z|x_n) over the N training rows, the ELBO's KL averaged over
the data splits into three parts,

    E_x KL(q(z|x) ‖ p(z)) =  KL(q(z, n) ‖ q(z) p(n))          index-code mutual information (α)
                          + KL(q(z) ‖ Π_l q(z_l))            total correlation (β)
                          + Σ_l KL(q(z_l) ‖ p(z_l))          dimension-wise KL (γ),

and the loss weights them apart: reconstruction + α·MI + β·TC + γ·dim-KL, one reparameterised
sample per row. α = β = γ = 1 is the VAE (in expectation). log q(z_i) and log q(z_il) are not
tractable; :func:`kl_decomposition` estimates them on the minibatch of B rows from the B × B
matrix of log q(z_i | x_j), with

* minibatch stratified sampling (``use_mss=True``, the default, as in pythae): the row's own
  posterior has weight 1/N and each of the other B − 1 rows (N − 1)/(N (B − 1)) — an unbiased
  estimate of q(z_i) when the other rows are a uniform draw from the other N − 1 rows;
* minibatch weighted sampling (``use_mss=False``): every weight 1/(N B), the paper's eq. (S5).
  The weights sum to 1/N rather than 1: the gradients are those of equal weights 1/B, the values
  are shifted by constants (the TC by +(d − 1)·log N against equal weights).

N is ``dataset_size`` (0: the batch size, so every row weighs 1/B, pythae's fallback when it is
not told the data size). Sampler: z ~ N(0, I), decoded.
"""

from __future__ import annotations

import math

import torch

from .vae import VAE, gaussian_kl, gaussian_log_density


def log_batch_weights(batch_size: int, dataset_size: int, use_mss: bool, like: torch.Tensor) -> torch.Tensor:
    """(B, B) log weights w_ij with log q(z_i) ≈ log Σ_j w_ij q(z_i | x_j) (N below B is read as B),
    on the device and in the dtype of ``like``."""
    b, n = batch_size, max(dataset_size, batch_size)
    if not use_mss:
        return like.new_full((b, b), -math.log(n * b))
    if b == 1:
        return like.new_full((1, 1), -math.log(n))
    w = like.new_full((b, b), math.log(n - 1) - math.log(n * (b - 1)))
    w.fill_diagonal_(-math.log(n))
    return w


def kl_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int = 0,
                     use_mss: bool = True) -> dict[str, torch.Tensor]:
    """Per-row minibatch estimates, each (B,), of the three parts of the KL for codes z_i ~ q(z | x_i):

    ``mi`` = log q(z_i|x_i) − log q(z_i), ``tc`` = log q(z_i) − Σ_l log q(z_il),
    ``dim_kl`` = Σ_l log q(z_il) − log N(z_i; 0, I).

    Their sum is log q(z_i|x_i) − log p(z_i) (the one-sample KL) for either estimator. ``z``,
    ``mu``, ``logvar``: (B, d); ``dataset_size`` N (0: the batch size B).
    """
    b = z.shape[0]
    # log q(z_il | x_jl) for every pair (i, j) and axis l: (B, B, d)
    pair = -0.5 * ((z[:, None] - mu[None]) ** 2 * torch.exp(-logvar[None]) + logvar[None] + math.log(2 * math.pi))
    log_w = log_batch_weights(b, dataset_size or b, use_mss, z)
    log_qz = torch.logsumexp(log_w + pair.sum(2), dim=1)
    log_prod_qz = torch.logsumexp(log_w[:, :, None] + pair, dim=1).sum(1)
    log_q_cond = pair.diagonal(dim1=0, dim2=1).sum(0)     # log q(z_i | x_i)
    log_prior = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
    return {"mi": log_q_cond - log_qz, "tc": log_qz - log_prod_qz, "dim_kl": log_prod_qz - log_prior}


class BetaTCVAE(VAE):
    name = "beta_tc_vae"
    description = "β-TC-VAE: KL split into index-code MI (α), total correlation (β), dimension-wise KL (γ)"
    hyperparameters = {"alpha": 1.0, "beta": 6.0, "gamma": 1.0, "use_mss": True, "dataset_size": 0}
    bounds = {"alpha": (0.0, None), "beta": (0.0, None), "gamma": (0.0, None), "dataset_size": (0, None)}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.encode(x)
        z = q["mu"] + torch.randn_like(q["mu"]) * (0.5 * q["logvar"]).exp()
        recon = self.likelihood.nll(self.decode(z), x).mean()
        parts = {k: v.mean() for k, v in kl_decomposition(z, q["mu"], q["logvar"], self.hp["dataset_size"],
                                                          self.hp["use_mss"]).items()}
        total = recon + self.hp["alpha"] * parts["mi"] + self.hp["beta"] * parts["tc"] + self.hp["gamma"] * parts["dim_kl"]
        # the closed-form KL, for comparison with the other VAEs' histories (no gradient)
        kl = gaussian_kl(q["mu"], q["logvar"]).sum(1).mean().detach()
        return {"reconstruction": recon, "kl": kl, **parts, "total": total}
