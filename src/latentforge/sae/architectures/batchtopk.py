"""BatchTopK SAE (Bussmann, Leask & Nanda, "BatchTopK Sparse Autoencoders", 2024).

In training the batch of n tokens keeps its n·k largest pre-activations (ReLU after), so k is
the *average* L0 and tokens that need more latents get them. Inference cannot depend on the batch:
it keeps every pre-activation above one threshold θ, so that at inference L0 ≈ k on average. θ is
tracked during training as a running mean (momentum 0.99) of the smallest kept value of each batch
(the paper's estimate), and after training it is settled on the final weights: the n·k-th largest
pre-activation of a sample of n training tokens, i.e. the training rule applied to the sample as one
batch. The running mean lags while the learning rate decays (it ended 4.6% high, L0 30.8 instead of
32, in benchmarks/README.md's MiniLM run); the settled value does not.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .base import Codes, SparseAutoencoderModule, SparseCodes

THRESHOLD_MOMENTUM = 0.99
CALIBRATION_TOKENS = 16_384   # tokens of the training sample that settle the threshold
CALIBRATION_CHUNK = 1_024     # tokens encoded at a time (bounded memory for any F)


class BatchTopKSAE(SparseAutoencoderModule):
    name = "batchtopk"
    description = "the batch keeps its n·k largest pre-activations; a learned threshold at inference"
    hyperparameters = {"k": 32}
    uses_auxk = True
    # a small start: the first reconstructions begin near b_dec, not at a random vector of the
    # input's norm (benchmarks/README.md, SAELens comparison: held-out FVU 0.1167 → 0.1149)
    encoder_init_scale = 0.1

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

    @torch.no_grad()
    def finish_training(self, sample: torch.Tensor) -> None:
        """θ = the n·k-th largest (ReLU'd) pre-activation of n ≤ 16,384 training tokens, found chunk
        by chunk with a running top-(n·k); under torchrun the ranks' values are averaged."""
        sample = sample[:CALIBRATION_TOKENS]
        keep = len(sample) * self.k
        if keep == 0:
            return
        top = None
        for chunk in sample.split(CALIBRATION_CHUNK):
            pre = self.pre_activation(chunk.to(self.W_enc.device, torch.float32) * self.scale).reshape(-1)
            candidates = pre.topk(min(keep, pre.numel())).values
            top = candidates if top is None else torch.cat([top, candidates]).topk(min(keep, len(top) + len(candidates))).values
        threshold = top[-1].clamp_min(0)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(threshold)
            threshold /= dist.get_world_size()
        self.threshold.copy_(threshold)


def batch_threshold_codes(pre: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Inference codes of the BatchTopK family: pre-activations above the threshold, else 0."""
    return torch.where(pre > threshold.clamp_min(0), pre, torch.zeros_like(pre))
