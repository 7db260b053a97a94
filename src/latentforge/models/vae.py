"""Variational autoencoder (Kingma & Welling) with a β weight on the KL term.

Encoder output: mean and log-variance of a diagonal Gaussian q(z|x). Loss: −ELBO =
E_q[−log p(x|z)] + β·KL(q(z|x) ‖ N(0, I)), one reparameterised sample. Gaussian features get a
learned per-feature scale so the KL term cannot swamp the reconstruction (the posterior collapse
pythae's default VAE shows on [0, 1] data); pixels use a Bernoulli likelihood.
Sampler: z ~ N(0, I), decoded.
"""

from __future__ import annotations

import math

import torch

from .base import BaseAutoencoder


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) per sample and dimension, (N, d)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (((z - mu) ** 2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


class VAE(BaseAutoencoder):
    name = "vae"
    description = "variational autoencoder, Gaussian posterior and N(0, I) prior, β-weighted KL"
    hyperparameters = {"beta": 1.0}
    bounds = {"beta": (0.0, None)}
    has_prior = True
    has_log_likelihood = True
    learn_likelihood_scale = True

    def encoder_width(self) -> int:
        return 2 * self.latent_dim

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        logvar = logvar.clamp(-12.0, 8.0)
        return {"z": mu, "mu": mu, "logvar": logvar}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.encode(x)
        z = q["mu"] + torch.randn_like(q["mu"]) * (0.5 * q["logvar"]).exp()
        recon = self.likelihood.nll(self.decode(z), x).mean()
        kl = gaussian_kl(q["mu"], q["logvar"]).sum(1).mean()
        return {"reconstruction": recon, "kl": kl, "total": recon + self.hp["beta"] * kl}

    def sample_prior(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.likelihood.log_scale.device)

    # -- importance sampling, shared by every VAE-type model -------------------------------
    def prior_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over the last dimension; N(0, I) here, overridden by other priors."""
        return gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))

    def posterior_draws(self, q: dict[str, torch.Tensor], n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n_samples reparameterised draws z ~ q(z|x), (K, N, d), and log q(z|x), (K, N), from the
        encoding ``q``; flow posteriors (``models.flows``) override this."""
        std = (0.5 * q["logvar"]).exp()
        z = q["mu"] + std * torch.randn(n_samples, *q["mu"].shape, device=q["mu"].device)
        return z, gaussian_log_density(z, q["mu"], q["logvar"])

    def log_importance_weights(self, x: torch.Tensor, n_samples: int) -> torch.Tensor:
        """log p(x, z_k) − log q(z_k | x) for K = n_samples posterior draws, shaped (K, N)."""
        z, log_q = self.posterior_draws(self.encode(x), n_samples)    # (K, N, d), (K, N)
        log_prior = self.prior_log_density(z)
        out = self.decode(z.reshape(-1, z.shape[-1]))
        log_px = -self.likelihood.nll(out, x.repeat(n_samples, 1)).view(n_samples, -1)
        return log_px + log_prior - log_q

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, n_samples: int = 100) -> torch.Tensor:
        """Importance-sampled estimate of log p(x) per sample (the IWAE bound with K = n_samples)."""
        log_w = self.log_importance_weights(x, n_samples)
        return torch.logsumexp(log_w, dim=0) - math.log(n_samples)
