"""The two-stage VAE code sampler (Dai & Wipf, "Diagnosing and Enhancing VAE Models", ICLR 2019).

The codes of a trained autoencoder rarely follow N(0, I), so decoding prior draws lands off the
data. Dai & Wipf fit a second VAE on the first model's codes: its latent space has the same
dimension as the codes, and with a *learned* observation scale γ the second VAE can match the
codes' distribution while its own aggregate posterior becomes close to N(0, I). Generation then
decodes u ~ N(0, I) through the second VAE into a code, which the first model decodes into
features.

Here the second stage is small (two hidden layers of 64) and is latentforge's own
:class:`~latentforge.models.vae.VAE` (an MLP, a
learned per-feature Gaussian scale, β = 1) fitted on the standardised training codes by a short
Adam run with a fixed number of steps (1,000 of 256 codes, cosine learning rate, the KL weight
rising from 0 to 1 over the first half: with β = 1 from the start the second VAE stayed in the
collapsed optimum, decoder = the codes' mean, and generated a point; SW₂ 2.07 against 0.13 on a
ring of radius 3). The fit is deterministic given the seed: the weights,
minibatches and reparameterisation noise come from a forked, seeded torch generator, and it runs
on the CPU on one thread (a different thread count could change the summation order), because
samplers are refitted from the saved codes after loading and nothing but arrays is stored.
A sample is the second decoder's mean (no observation noise), mapped back to the code scale.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models import Architecture
from ..models.vae import VAE

#: second-stage network and its training run: small and short, so fitting on the 10,000 codes an
#: estimator keeps takes a few seconds on one thread
HIDDEN = (64, 64)
STEPS = 1000
BATCH_SIZE = 256
LR = 3e-3


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam, fused where this torch has the fused CPU kernel (2.4+): the run is many tiny steps,
    and the per-parameter update loop would be a third of their time."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


class TwoStageVAESampler:
    def __init__(self, vae: VAE, mean: np.ndarray, scale: np.ndarray):
        self.vae, self.mean, self.scale = vae.eval(), mean, scale

    @classmethod
    def fit(cls, codes: np.ndarray, seed: int = 0, steps: int = STEPS, hidden: tuple[int, ...] = HIDDEN,
            batch_size: int = BATCH_SIZE, lr: float = LR) -> "TwoStageVAESampler":
        codes = np.asarray(codes, dtype=np.float64)
        mean = codes.mean(0)
        scale = codes.std(0)
        scale = np.where(scale > 1e-12, scale, 1.0)        # a constant code dimension stays constant
        x = torch.as_tensor((codes - mean) / scale, dtype=torch.float32)
        n, d = x.shape
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                vae = VAE((d,), [("gaussian", 0, d)], d, Architecture(kind="mlp", hidden=hidden, norm="none"))
                opt = _adam(vae.parameters(), lr)
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
                vae.train()
                order, at = torch.randperm(n), 0
                for step in range(steps):
                    if at + batch_size > n:                # reshuffle once per pass over the codes
                        order, at = torch.randperm(n), 0
                    batch = x[order[at:at + batch_size]]
                    at += batch_size
                    opt.zero_grad(set_to_none=True)
                    terms = vae.loss(batch)
                    # KL warm-up over the first half: with β = 1 from the start the second VAE
                    # settles in the collapsed optimum (decoder = code mean, γ = code spread, KL = 0)
                    warm = min(1.0, 2.0 * step / steps)
                    (terms["reconstruction"] + warm * terms["kl"]).backward()
                    opt.step()
                    sched.step()
        finally:
            torch.set_num_threads(threads)
        for p in vae.parameters():
            p.requires_grad_(False)
        return cls(vae, mean, scale)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        u = np.random.default_rng(seed).standard_normal((n, self.vae.latent_dim))
        with torch.no_grad():
            out = self.vae.likelihood.mean(self.vae.decode(torch.as_tensor(u, dtype=torch.float32)))
        return out.double().numpy() * self.scale + self.mean
