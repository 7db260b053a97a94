"""The SAE architectures: one file each, one registry line each (``ARCHITECTURES``)."""

from __future__ import annotations

from typing import Any

from ...errors import unknown_name_error
from .base import SparseAutoencoderModule, SparseCodes, geometric_median
from .batchtopk import BatchTopKSAE
from .jumprelu import JumpReluSAE
from .matryoshka import MatryoshkaSAE
from .relu import ReluSAE
from .topk import TopKSAE

ARCHITECTURES: dict[str, type[SparseAutoencoderModule]] = {
    cls.name: cls for cls in (TopKSAE, BatchTopKSAE, JumpReluSAE, ReluSAE, MatryoshkaSAE)
}


def build_sae(architecture: str, d: int, n_features: int, **settings: Any) -> SparseAutoencoderModule:
    """An untrained SAE module of ``architecture`` (see ``ARCHITECTURES``)."""
    if architecture not in ARCHITECTURES:
        raise unknown_name_error("SAE architecture", architecture, ARCHITECTURES)
    return ARCHITECTURES[architecture](d, n_features, **settings)


__all__ = ["ARCHITECTURES", "BatchTopKSAE", "JumpReluSAE", "MatryoshkaSAE", "ReluSAE", "SparseAutoencoderModule",
           "SparseCodes", "TopKSAE", "build_sae", "geometric_median"]
