"""Helpers shared by the transform modules: access to a fitted estimator's encoder and decoder
on preprocessed features, and a fingerprint that identifies a trained model."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..estimator import Autoencoder, NotFittedError, require_fitted
from ..validation import as_matrix

__all__ = ["check_fitted", "network", "features", "embed_features", "decode_features", "model_fingerprint"]

BATCH = 2048


def check_fitted(model: Any, name: str = "model") -> Any:
    """``model`` if it is a fitted :class:`latentforge.Autoencoder`, else an InputError."""
    wrong = f"{name} must be a fitted latentforge.Autoencoder (call fit or Autoencoder.load first)"
    if not isinstance(model, Autoencoder):
        raise InputError(f"{wrong}, got {type(model).__name__}.")
    try:
        require_fitted(model)
    except NotFittedError:
        raise NotFittedError(f"{wrong}; this one is not fitted yet.") from None
    return model


def network(model: Any) -> torch.nn.Module:
    """The ``nn.Module`` of a fitted estimator, or ``model`` itself when it is already a module."""
    if isinstance(model, torch.nn.Module):
        return model
    return check_fitted(model).model_


def features(model: Any, X: Any) -> torch.Tensor:
    """X through the estimator's fitted preprocessing, flattened to a float32 tensor (n, D)."""
    return torch.from_numpy(np.ascontiguousarray(check_fitted(model).features(X), dtype=np.float32))


def _device(net: torch.nn.Module) -> torch.device:
    return next(net.parameters()).device


@torch.no_grad()
def embed_features(model: Any, flat: torch.Tensor | np.ndarray) -> np.ndarray:
    """Deterministic embeddings (``net.embed``, eval mode) of preprocessed features, in batches."""
    net = network(model)
    net.eval()
    flat = torch.as_tensor(flat, dtype=torch.float32)
    device = _device(net)
    out = [net.embed(flat[i:i + BATCH].to(device)).cpu() for i in range(0, len(flat), BATCH)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.empty((0, net.latent_dim))


@torch.no_grad()
def decode_features(model: Any, Z: np.ndarray) -> np.ndarray:
    """Expected preprocessed features (n, D) decoded from full-width codes Z."""
    net = network(model)
    net.eval()
    Z = as_matrix(Z, "Z")
    if Z.shape[1] != net.latent_dim:
        raise InputError(f"codes must have {net.latent_dim} columns for this model, got {Z.shape[1]}.")
    z = torch.from_numpy(Z.astype(np.float32))
    device = _device(net)
    out = [net.likelihood.mean(net.decode(z[i:i + BATCH].to(device))).cpu() for i in range(0, len(z), BATCH)]
    return torch.cat(out).numpy().astype(np.float64)


def model_fingerprint(model: Any) -> str:
    """SHA-256 identifying a trained model: its architecture, preprocessing and weights.

    Computed from the estimator in memory (not from files), so a model gives the same
    fingerprint before saving and after :meth:`Autoencoder.load`; any change of a weight, of the
    latent size or of the fitted preprocessing changes it.
    """
    est = check_fitted(model)
    digest = hashlib.sha256()
    spec = {"model": est.model_.config(), "preprocessing": est.preprocessor_.state()}
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    for name, tensor in sorted(est.model_.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
