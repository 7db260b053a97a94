"""Sliced-Wasserstein autoencoder (Kolouri et al.): deterministic codes pushed towards any
samplable prior by the sliced-Wasserstein distance.

Loss: reconstruction NLL + λ · SW_2²(codes, prior samples) with ``n_projections`` directions
(a fresh batch of prior samples each step). Sampler: z ~ prior, decoded.
Priors: ``normal``, ``ball``, ``cube``, ``gmm`` or a callable ``n -> (n, latent_dim)`` tensor.
"""

from __future__ import annotations

import torch

from ..errors import InputError
from ..sliced import LOSS_METHODS, sliced_training_loss
from .base import BaseAutoencoder
from .priors import make_prior


class SWAE(BaseAutoencoder):
    name = "swae"
    description = "sliced-Wasserstein autoencoder: codes pushed to any samplable prior by SW₂"
    hyperparameters = {"sw_weight": 10.0, "prior": "normal", "n_projections": 100, "projection_method": "mc"}
    bounds = {"sw_weight": (0.0, None), "n_projections": (1, None)}
    choices = {"projection_method": tuple(LOSS_METHODS)}
    has_prior = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A callable prior is not saved with the model: a loaded one records it as "custom".
        self.prior = None if self.hp["prior"] == "custom" else make_prior(self.hp["prior"], self.latent_dim)

    def _prior(self, n: int) -> torch.Tensor:
        if self.prior is None:
            raise InputError("this model was trained with a custom prior callable, which is not saved; "
                             "pass prior=... again, or generate with sampler='gmm'.")
        return self.prior(n)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encode(x)["z"]
        recon = self.likelihood.nll(self.decode(z), x).mean()
        target = self._prior(z.shape[0]).to(z)
        # projection_method: any direction method (mc, orthogonal, rqmc...) or a control-variate
        # estimator (cv, cv_lower, cv_upper); unchecked, so that a step never waits on the device
        sw = sliced_training_loss(z, target, p=2, n_projections=self.hp["n_projections"],
                                  method=self.hp["projection_method"])
        return {"reconstruction": recon, "sw": sw, "total": recon + self.hp["sw_weight"] * sw}

    def sample_prior(self, n: int) -> torch.Tensor:
        return self._prior(n).to(self.likelihood.log_scale.device)
