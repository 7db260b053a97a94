"""BatchTopK SAE (Bussmann, Leask & Nanda, "BatchTopK Sparse Autoencoders", 2024).

In training the batch of n tokens keeps its n·k largest pre-activations (ReLU after), so k is
the *average* L0 and tokens that need more latents get them. Inference cannot depend on the batch:
it keeps every pre-activation above one threshold θ, estimated during training as a running mean
(momentum 0.99) of the smallest kept value of each batch, so at inference L0 ≈ k on average.
"""

from __future__ import annotations

import torch

from .base import Codes, SparseAutoencoderModule, SparseCodes

THRESHOLD_MOMENTUM = 0.99


class BatchTopKSAE(SparseAutoencoderModule):
    name = "batchtopk"
    description = "the batch keeps its n·k largest pre-activations; a learned threshold at inference"
    hyperparameters = {"k": 32}
    uses_auxk = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.k = self.checked_k()
        self.register_buffer("threshold", torch.full((), -1.0))  # < 0: not estimated yet

    def activate(self, pre: torch.Tensor) -> Codes:
        if not self.training:
            return batch_threshold_codes(pre, self.threshold)
        n = len(pre)
        values, flat = pre.reshape(-1).topk(min(n * self.k, pre.numel()))
        values = values.relu()
        smallest = values[-1].detach()  # the n·k-th largest value: the batch's own threshold
        with torch.no_grad():
            first = self.threshold < 0
            self.threshold.copy_(torch.where(first, smallest, THRESHOLD_MOMENTUM * self.threshold
                                             + (1 - THRESHOLD_MOMENTUM) * smallest))
        flat, order = flat.sort()  # group the entries by token for embedding_bag
        rows, features = flat // self.n_features, flat % self.n_features
        offsets = torch.searchsorted(rows, torch.arange(n, device=pre.device))
        return SparseCodes(values[order], features, offsets, n, self.n_features)


def batch_threshold_codes(pre: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Inference codes of the BatchTopK family: pre-activations above the threshold, else 0."""
    return torch.where(pre > threshold.clamp_min(0), pre, torch.zeros_like(pre))
