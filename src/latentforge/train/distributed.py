"""Data-parallel training under ``torchrun`` (``torch.distributed``), with no launcher of our own.

``torchrun --standalone --nproc-per-node N -m latentforge fit ...`` (or any script that calls
``Autoencoder.fit``) sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; :func:`context` then joins the
process group (gloo on CPU, NCCL on CUDA) and the trainer wraps the model in
``DistributedDataParallel``. Each rank reads a disjoint share of every batch (in memory) or of the
fragments (streamed); loss sums are all-reduced, so every rank logs the same history and takes the
same early-stopping decision; only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """This process among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, models and outputs."""
        return self.rank == 0


def context(device: torch.device | None = None) -> DistContext:
    """The distributed context: joins the process group when started by torchrun (idempotent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def local_device(device: torch.device, ctx: DistContext) -> torch.device:
    """Under torchrun each process takes the GPU of its local rank."""
    if ctx.active and device.type == "cuda" and device.index is None:
        return torch.device("cuda", ctx.local_rank)
    return device


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The sum over ranks (in place; the tensor itself when not distributed)."""
    if ctx.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class LossModule(nn.Module):
    """``forward(x) = model.loss(x)``: DistributedDataParallel synchronises gradients of ``forward``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.loss(x)


def data_parallel(model: nn.Module, device: torch.device, ctx: DistContext) -> nn.Module:
    """``model.loss`` wrapped in DistributedDataParallel (rank 0's initial weights are broadcast)."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(LossModule(model), device_ids=ids)


def finish(ctx: DistContext) -> None:
    """Wait for every rank, then leave the process group (end of a torchrun job)."""
    if ctx.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
