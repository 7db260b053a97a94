"""Matryoshka SAE (Bussmann et al., "Learning Multi-Level Features with Matryoshka Sparse
Autoencoders", 2025; Nabeshima's concurrent "Matryoshka Sparse Autoencoders").

A BatchTopK SAE whose nested dictionaries — the first m_1 < m_2 < … < F latents — must each
reconstruct the input on their own: the loss sums the squared error of every prefix's
reconstruction (sharing the decoder bias), so the first latents learn general features that the
later ones refine instead of absorbing. ``prefixes``: the nested sizes (default: F/16, F/8, F/4,
F/2, F); the last must be F. Inference is BatchTopK's threshold rule.
"""

from __future__ import annotations

from typing import Any

import torch

from ...errors import InputError
from .base import Codes, SparseCodes
from .batchtopk import BatchTopKSAE


class MatryoshkaSAE(BatchTopKSAE):
    name = "matryoshka"
    description = "BatchTopK with a reconstruction loss for every nested prefix of the dictionary"
    hyperparameters = {"k": 32, "prefixes": ()}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        F = self.n_features
        sizes = tuple(int(m) for m in self.hp["prefixes"]) or tuple(
            sorted({max(1, F // 2 ** i) for i in range(4, 0, -1)} | {F}))
        if list(sizes) != sorted(set(sizes)) or sizes[0] < 1 or sizes[-1] != F:
            raise InputError(f"prefixes must be increasing sizes ending at n_features={F}, got {list(sizes)}.")
        self.prefixes = sizes
        self.hp["prefixes"] = list(sizes)

    def reconstruction_terms(self, x_scaled: torch.Tensor, pre: torch.Tensor, codes: Codes) -> dict[str, torch.Tensor]:
        if not isinstance(codes, SparseCodes):  # inference codes: only the full reconstruction
            return super().reconstruction_terms(x_scaled, pre, codes)
        recon = self.b_dec.expand_as(x_scaled)
        prefix_losses = []
        low = 0
        for high in self.prefixes:  # add each nested group's contribution to the running reconstruction
            group = (codes.indices >= low) & (codes.indices < high)
            recon = recon + codes.decode(self.W_dec, keep=group)
            prefix_losses.append((recon - x_scaled).pow(2).sum(1).mean())
            low = high
        smaller = torch.stack(prefix_losses[:-1]).sum() if len(prefix_losses) > 1 else recon.new_zeros(())
        return {"mse": prefix_losses[-1], "prefix_mse": smaller, "_recon": recon}
