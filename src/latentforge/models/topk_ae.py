"""k-sparse autoencoder (Makhzani & Frey, "k-Sparse Autoencoders", 2013; the TopK activation of
Gao et al., "Scaling and evaluating sparse autoencoders", 2024).

Encoder output: pre-activations of the code units; the code keeps the k largest of them and sets
the others to zero, so every code (training, ``transform``, reconstruction) has exactly k
non-zeros. Loss: reconstruction NLL only; sparsity is enforced by the activation, not penalised.
Gradients reach only the k selected units of each sample. Following Makhzani & Frey the kept
values are linear (no ReLU after the selection, which Gao et al. add and which could leave fewer
than k non-zeros). ``k=0`` (the default) keeps half the code units, rounded up.

Dead units (never among the k largest, so never trained) are avoided with Makhzani & Frey's
schedule: while training, the number of kept units falls linearly from latent_dim to k over the
first ``k_anneal_steps`` steps (a step counter kept in a buffer, so it is saved and restored).
The default ``k_anneal_steps=-1`` anneals over the first tenth of the run's steps, whatever its
length: a fixed count (formerly 1000) could exceed a short run, which then never trained at k.
Evaluation and embeddings always keep exactly k. Sampler: none of its own (a mixture fitted on
training codes).
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .base import BaseAutoencoder


def topk_mask_values(pre: torch.Tensor, k: int) -> torch.Tensor:
    """pre (N, d) with all but the k largest entries of each row set to zero."""
    values, index = pre.topk(k, dim=1)
    return torch.zeros_like(pre).scatter(1, index, values)


class TopKAE(BaseAutoencoder):
    name = "topk_ae"
    description = "k-sparse autoencoder: the code keeps its k largest units (exactly k non-zeros)"
    hyperparameters = {"k": 0, "k_anneal_steps": -1}
    bounds = {"k": (0, None), "k_anneal_steps": (-1, None)}
    sparse_code = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.hp["k"] > self.latent_dim:
            raise InputError(f"k={self.hp['k']} must be at most latent_dim={self.latent_dim} for model 'topk_ae'.")
        #: the number of non-zero code units (``k``, or half of latent_dim rounded up when k=0).
        self.k = self.hp["k"] or (self.latent_dim + 1) // 2
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        # the resolved annealing length; a resumed run resolves it again from the same plan
        self.anneal_steps = max(self.hp["k_anneal_steps"], 0)

    def begin_training(self, total_steps: int, batch_size: int) -> None:
        if self.hp["k_anneal_steps"] < 0:
            self.anneal_steps = total_steps // 10

    def active_k(self) -> int:
        """Units kept now: k, or more early in training (the annealing schedule)."""
        steps = self.anneal_steps
        if not self.training or steps == 0:
            return self.k
        left = max(0.0, 1.0 - int(self.step) / steps)
        return self.k + round(left * (self.latent_dim - self.k))

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pre = self.encoder(x)
        return {"z": topk_mask_values(pre, self.active_k()), "pre_activation": pre}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        recon = self.likelihood.nll(self.decode(self.encode(x)["z"]), x).mean()
        if self.training:
            self.step += 1
        return {"reconstruction": recon, "total": recon}
