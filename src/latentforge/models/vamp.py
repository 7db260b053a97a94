"""VAE with a VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior").

Encoder output: mean and log-variance of a diagonal Gaussian q(z|x) (inherited from VAE). The
N(0, I) prior becomes the "variational mixture of posteriors" at K learned pseudo-inputs u_k,

    p(z) = (1/K) Σ_k q(z | u_k),   log p(z) = logsumexp_k log q(z | u_k) − log K,

so the prior is learned jointly with the encoder and approximates the aggregate posterior.
Loss: reconstruction + β·(log q(z|x) − log p(z)), one reparameterised sample (the KL has no closed
form against a mixture). ``prior_log_density`` is overridden, so the importance-sampled
``log_likelihood`` uses the mixture. Sampler: a component k uniformly, then z ~ q(z | u_k), decoded.

Pseudo-inputs must be valid inputs of the encoder. They are free parameters mapped feature block
by feature block as the decoder output is (``ReconstructionLikelihood.mean``): a sigmoid for
pixels and other [0, 1] features (smooth, where pythae's hardtanh(0, 1) stops the gradient of any
pseudo-pixel pushed outside [0, 1]), a softmax over each one-hot group, the identity for
standardised table columns. They start at N(0, 1) noise before the mapping: grey noise images,
rows of standardised columns at the data's scale.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .vae import VAE, gaussian_log_density


class VAMP(VAE):
    name = "vamp"
    description = "VAE with a VampPrior: the prior is a mixture of the posteriors at K learned pseudo-inputs"
    hyperparameters = {"n_components": 50, "beta": 1.0}
    bounds = {"n_components": (1, None), "beta": (0.0, None)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        n_features = math.prod(int(d) for d in self.input_shape)
        self.pseudo_raw = nn.Parameter(torch.randn(self.hp["n_components"], n_features))

    def pseudo_inputs(self) -> torch.Tensor:
        """The K pseudo-inputs (K, D) as valid features (pixels in (0, 1), one-hot groups on the simplex)."""
        return self.likelihood.mean(self.pseudo_raw)

    def prior_components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances (K, d) of the prior's components q(z | u_k)."""
        q = self.encode(self.pseudo_inputs())
        return q["mu"], q["logvar"]

    def prior_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) under the mixture, for z of any leading shape (..., d)."""
        mu, logvar = self.prior_components()
        log_components = gaussian_log_density(z.unsqueeze(-2), mu, logvar)    # (..., K)
        return torch.logsumexp(log_components, dim=-1) - math.log(mu.shape[0])

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        q = self.encode(x)
        z = q["mu"] + torch.randn_like(q["mu"]) * (0.5 * q["logvar"]).exp()
        recon = self.likelihood.nll(self.decode(z), x).mean()
        kl = (gaussian_log_density(z, q["mu"], q["logvar"]) - self.prior_log_density(z)).mean()
        return {"reconstruction": recon, "kl": kl, "total": recon + self.hp["beta"] * kl}

    @torch.no_grad()
    def sample_prior(self, n: int) -> torch.Tensor:
        mu, logvar = self.prior_components()
        k = torch.randint(0, mu.shape[0], (n,), device=mu.device)
        return mu[k] + torch.randn(n, mu.shape[1], device=mu.device) * (0.5 * logvar[k]).exp()
