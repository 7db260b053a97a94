"""Reconstruction likelihoods over a feature layout of blocks (kind, start, stop).

``gaussian`` blocks (standardised numbers) use a Gaussian with unit or learned per-feature scale,
``bernoulli`` blocks (pixels in [0, 1], missing indicators) use binary cross-entropy on logits,
``categorical`` blocks (one-hot groups) use softmax cross-entropy. Negative log-likelihoods are
summed over features, so they are proper per-sample NLLs (what an ELBO needs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOODS = ("gaussian", "bernoulli", "categorical")


def merged_runs(layout: list[tuple[str, int, int]]) -> list[tuple[str, int, int, int]]:
    """The layout's blocks as runs ``(kind, start, stop, width)`` of adjacent blocks that one
    operation can score: Gaussian or Bernoulli features side by side, and categorical groups of
    the same ``width`` side by side (scored as one (N, groups, width) softmax). A table of a dozen
    one-hot columns is then two runs, not a dozen, which is most of a small network's loss time."""
    runs: list[tuple[str, int, int, int]] = []
    for kind, a, b in layout:
        width = b - a if kind == "categorical" else 1
        if runs and runs[-1][0] == kind and runs[-1][2] == a and runs[-1][3] == width:
            runs[-1] = (kind, runs[-1][1], b, width)
        else:
            runs.append((kind, a, b, width))
    return runs


class ReconstructionLikelihood(nn.Module):
    def __init__(self, layout: list[tuple[str, int, int]], learn_scale: bool = False):
        super().__init__()
        self.layout = [(str(k), int(a), int(b)) for k, a, b in layout]
        self.runs = merged_runs(self.layout)
        n_gauss = sum(b - a for k, a, b in self.layout if k == "gaussian")
        # log σ per Gaussian feature; learned for VAE-type models so the KL cannot swamp the fit.
        self.log_scale = nn.Parameter(torch.zeros(n_gauss), requires_grad=learn_scale)

    def nll(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample negative log-likelihood of x (N, D) given decoder output (N, D)."""
        total = output.new_zeros(output.shape[0])
        g = 0
        for kind, a, b, width in self.runs:
            out, target = output[:, a:b], x[:, a:b]
            if kind == "gaussian":
                log_s = self.log_scale[g:g + b - a].clamp(min=-7.0)
                g += b - a
                z = (target - out) * torch.exp(-log_s)
                total = total + (0.5 * z.pow(2) + log_s + 0.5 * math.log(2 * math.pi)).sum(1)
            elif kind == "bernoulli":
                total = total + F.binary_cross_entropy_with_logits(out, target, reduction="none").sum(1)
            else:
                groups = (len(out), (b - a) // width, width)
                total = total - (target.reshape(groups) * F.log_softmax(out.reshape(groups), dim=2)).sum((1, 2))
        return total

    def mean(self, output: torch.Tensor) -> torch.Tensor:
        """Decoder output → expected features (identity, sigmoid or softmax per block)."""
        parts = []
        for kind, a, b in self.layout:
            out = output[:, a:b]
            parts.append(out if kind == "gaussian" else torch.sigmoid(out) if kind == "bernoulli"
                         else torch.softmax(out, dim=1))
        return torch.cat(parts, dim=1)
