"""Checkpoints of a training run, so that a killed ``fit`` continues where it stopped.

A checkpoint is an artifact directory (:mod:`latentforge.artifacts`, kind ``checkpoint``: JSON +
safetensors, no pickle, written atomically) holding everything the loop needs to go on exactly as
if it had not stopped: the model, the optimizer and LR-scheduler states, the gradient scaler, the
RNG states, the position (epoch and step), the partial sums of the current epoch, the history,
the best weights and the early-stopping counters. On CPU with a fixed thread count a resumed run's
final weights equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..artifacts import Artifact, decode_state, encode_state, load_artifact, save_artifact
from ..errors import ArtifactError, InputError


@dataclass
class RunState:
    """The loop's whole state between two steps."""

    epoch: int = 1                      # the epoch in progress (1-based)
    step: int = 0                       # steps of that epoch already taken
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("inf")
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)       # loss-term names of the epoch's running sums
    sums: torch.Tensor | None = None                     # running sums of the epoch so far
    started: float = 0.0                                 # seconds spent in this epoch before a restart
    rows: int = 0                                        # rows of this epoch seen so far (this rank)


def save_checkpoint(path: str | Path, state: RunState, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: Any, fingerprint: dict[str, Any]) -> Path:
    """Write the run's state to directory ``path`` atomically (the previous checkpoint is replaced)."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in state.best_state.items()})
    if state.sums is not None:
        tensors["sums"] = state.sums.detach().cpu()
    rng = {"torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    config = {
        "position": {"epoch": state.epoch, "step": state.step},
        "fingerprint": fingerprint,
        "history": state.history, "best_epoch": state.best_epoch, "best_score": state.best_score,
        "names": state.names, "started": state.started, "rows": state.rows,
        "optimizer": encode_state(optimizer.state_dict(), tensors, "optimizer"),
        "scheduler": None if scheduler is None else encode_state(scheduler.state_dict(), tensors, "scheduler"),
        "scaler": None if scaler is None else encode_state(scaler.state_dict(), tensors, "scaler"),
        "rng": encode_state(rng, tensors, "rng"),
    }
    return save_artifact(path, Artifact(config, tensors, kind="checkpoint"))


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    scaler: Any, fingerprint: dict[str, Any]) -> RunState:
    """Restore model, optimizer, scheduler, scaler and RNG states in place and return the loop state.

    The checkpoint must come from a run with the same model, data size and training options
    (``fingerprint``); anything else is an InputError naming what differs.
    """
    art = load_artifact(path, kind="checkpoint")
    config, tensors = art.config, art.tensors
    saved = config.get("fingerprint", {})
    changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if changed:
        raise InputError(f"the checkpoint in {path} is from a different run ({', '.join(changed)} changed); "
                         f"delete it or run without --resume.")
    try:
        device = next(model.parameters()).device
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer.load_state_dict(decode_state(config["optimizer"], tensors))
        if scheduler is not None:
            scheduler.load_state_dict(decode_state(config["scheduler"], tensors))
        if scaler is not None and config["scaler"] is not None:
            scaler.load_state_dict(decode_state(config["scaler"], tensors))
        rng = decode_state(config["rng"], tensors)
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        position = config["position"]
        return RunState(
            epoch=int(position["epoch"]), step=int(position["step"]), history=list(config["history"]),
            best_epoch=int(config["best_epoch"]), best_score=float(config["best_score"]),
            best_state={k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")},
            names=list(config["names"]), sums=tensors["sums"].to(device) if "sums" in tensors else None,
            started=float(config["started"]), rows=int(config.get("rows", 0)))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ArtifactError(f"{path} does not hold a usable checkpoint ({type(exc).__name__}: {exc}).") from None


def remove_checkpoint(path: str | Path) -> None:
    """Delete a finished run's checkpoint directory (and nothing else)."""
    path = Path(path)
    if (path / "checkpoint.json").is_file():
        shutil.rmtree(path, ignore_errors=True)
