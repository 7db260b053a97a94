"""``SparseAutoencoder``: a scikit-learn-style estimator for dictionary learning on model activations.

It trains one of the architectures of :mod:`latentforge.sae.architectures` with the recipe of the
SAE literature (see docs/sae.md): inputs scaled to a fixed mean squared norm (the factor is saved
and applied in ``transform``/``inverse_transform``), the decoder bias initialised at the geometric
median of a sample, the encoder as the decoder's transpose, unit-norm dictionary rows, AuxK on
dead latents for the top-k family, LR warm-up then a linear decay over the last fifth of the run,
a sparsity-coefficient warm-up; the loss is the squared error of the raw (scaled) activations,
with no per-dimension standardisation. Training goes through latentforge's one trainer, so data
sources larger than memory, checkpoints and ``resume``, torchrun DDP and mixed precision work as
they do for :class:`latentforge.Autoencoder`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from ..artifacts import Artifact, load_artifact, save_artifact
from ..config import TrainConfig, resolve_device
from ..data import DataSource, hash_split, iter_chunks, open_source
from ..errors import ArtifactError, InputError
from ..estimator.base import require_fitted
from ..train import train_model
from ..train.batches import StreamBatches
from ..train.source_split import count_validation_rows, split_source, validation_fraction
from .store import ActivationStore, is_activations_dir, open_activations
from .architectures import ARCHITECTURES, build_sae
from .metrics import SAEStatistics

INIT_SAMPLE = 65_536       # rows read to set the input scale
MEDIAN_SAMPLE = 16_384     # rows of that sample used for the geometric median
DEFAULT_EXPANSION = 8      # n_features = 8 · d unless given
EVAL_TOKENS = 1_000_000    # held-out tokens measured after training
TRAIN_KEYS = ("epochs", "batch_size", "lr", "warmup_steps", "val_fraction", "seed", "device", "threads",
              "precision", "compile", "checkpoint_every", "keep_checkpoints")


def default_lr(n_features: int) -> float:
    """The default learning rate: Gao et al.'s 1/√F scaling, in [1e-4, 3e-3], anchored where the
    MiniLM sweep of benchmarks/sae_vs_saelens.py put the best LR (3e-3 at F = 3,072, 3 epochs;
    the former 4e-4 anchor at F = 16,384 gave 9.2e-4 there and FVU 0.155 instead of 0.117)."""
    return float(min(3e-3, max(1e-4, 1.3e-3 * math.sqrt(16_384 / n_features))))


def default_warmup(total_steps: int) -> int:
    """LR warm-up steps: 5% of the run, at most 1,000."""
    return int(min(1000, total_steps // 20))


class SparseAutoencoder(TransformerMixin, BaseEstimator):
    """A sparse autoencoder (dictionary learner) on activations of shape (n_tokens, d).

    Parameters
    ----------
    architecture : {"topk", "batchtopk", "jumprelu", "relu", "matryoshka"}, default "topk"
    n_features : int, optional
        Dictionary size F (default 8 · d).
    k : int, default 32
        Active latents per token (top-k family; BatchTopK and Matryoshka: on average).
    l1_coefficient, l0_coefficient, prefixes, bandwidth : architecture settings
        ReLU's L1 weight (default 1), JumpReLU's L0 weight (default 1) and STE bandwidth
        (0.05, in units of the scaled activations), Matryoshka's nested sizes (default F/16, F/8, F/4, F/2, F). None: the default.
    aux_k, aux_coefficient, dead_tokens
        AuxK: latents used (default d/2), weight (1/32), and the tokens a latent must stay silent
        to count as dead (default: a twentieth of the run's tokens, at most 10M).
    epochs, batch_size, lr, warmup_steps, val_fraction, seed, device, threads, precision, compile, \
checkpoint_every, keep_checkpoints
        Training options (see :class:`latentforge.config.TrainConfig`); ``lr=None`` follows
        :func:`default_lr`, ``warmup_steps=None`` :func:`default_warmup`.
    verbose : bool, optional
        Progress display (None: when stderr is a terminal).

    Attributes
    ----------
    components_ : ndarray of shape (n_features, d)
        The unit-norm dictionary (decoder rows), as scikit-learn's ``DictionaryLearning`` names it.
    scale_ : float
        Factor applied to inputs so that their mean squared norm is d.
    history_ : list of dict
        Per-epoch training record.
    metrics_ : dict
        Held-out FVU, MSE, L0, dead and dense fractions and the density histogram.

    Examples
    --------
    >>> import numpy as np
    >>> from latentforge.sae import SparseAutoencoder
    >>> X = np.random.default_rng(0).standard_normal((512, 16)).astype("float32")
    >>> sae = SparseAutoencoder("topk", n_features=64, k=4, batch_size=128, verbose=False).fit(X)
    >>> sae.transform(X[:3]).shape, int((sae.transform(X[:3]) != 0).sum(1).max()) <= 4
    ((3, 64), True)
    """

    def __init__(self, architecture: str = "topk", n_features: int | None = None, *, k: int = 32,
                 l1_coefficient: float | None = None, l0_coefficient: float | None = None,
                 prefixes: tuple[int, ...] | None = None, bandwidth: float | None = None,
                 aux_k: int | None = None, aux_coefficient: float = 1 / 32, dead_tokens: int | None = None,
                 epochs: int = 1, batch_size: int = 4096, lr: float | None = None, warmup_steps: int | None = None,
                 val_fraction: float = 0.02, seed: int = 0, device: str = "auto", threads: int | None = None,
                 precision: str = "fp32", compile: bool = False, checkpoint_every: int | None = None,
                 keep_checkpoints: bool = False, verbose: bool | None = None):
        self.architecture, self.n_features, self.k = architecture, n_features, k
        self.l1_coefficient, self.l0_coefficient, self.prefixes, self.bandwidth = \
            l1_coefficient, l0_coefficient, prefixes, bandwidth
        self.aux_k, self.aux_coefficient, self.dead_tokens = aux_k, aux_coefficient, dead_tokens
        self.epochs, self.batch_size, self.lr, self.warmup_steps = epochs, batch_size, lr, warmup_steps
        self.val_fraction, self.seed, self.device, self.threads = val_fraction, seed, device, threads
        self.precision, self.compile = precision, compile
        self.checkpoint_every, self.keep_checkpoints, self.verbose = checkpoint_every, keep_checkpoints, verbose

    # -- settings --------------------------------------------------------------------------
    def _architecture_settings(self) -> dict[str, Any]:
        if self.architecture not in ARCHITECTURES:
            build_sae(self.architecture, 1, 1)  # raises the unknown-name error
        own = ARCHITECTURES[self.architecture].hyperparameters
        given = {"k": self.k, "l1_coefficient": self.l1_coefficient, "l0_coefficient": self.l0_coefficient,
                 "prefixes": tuple(self.prefixes) if self.prefixes is not None else None,
                 "bandwidth": self.bandwidth}
        stray = [name for name, value in given.items() if value is not None and name not in own and name != "k"]
        if stray:
            raise InputError(f"{', '.join(stray)} does not apply to SAE architecture {self.architecture!r}; "
                             f"it takes {', '.join(own) or 'no settings'}.")
        return {name: value for name, value in given.items() if name in own and value is not None}

    def _train_config(self, n_train: int) -> TrainConfig:
        steps = self.epochs * math.ceil(n_train / self.batch_size) if isinstance(self.epochs, int) else 0
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, weight_decay=0.0, schedule="linear_decay",
            lr=self.lr if self.lr is not None else default_lr(self._n_features),
            warmup_steps=self.warmup_steps if self.warmup_steps is not None else default_warmup(steps),
            grad_clip=None, patience=None, val_fraction=self.val_fraction, seed=self.seed, device=self.device,
            threads=self.threads, precision=self.precision, compile=self.compile,
            checkpoint_every=self.checkpoint_every, keep_checkpoints=self.keep_checkpoints)

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, checkpoint: str | Path | None = None, resume: bool = False
            ) -> "SparseAutoencoder":
        """Fit on activations X: an array or tensor (n, d) held in memory, or a source streamed in
        bounded chunks (a ``latentforge activations`` directory, safetensors shards, Parquet,
        ``.npy``, a :class:`~latentforge.data.DataSource` or torch data).

        ``checkpoint``/``resume`` as in :meth:`latentforge.Autoencoder.fit`: a killed run resumed
        from its checkpoint ends with the weights of an uninterrupted one (CPU, same threads).
        """
        settings = self._architecture_settings()
        data = _as_data(X)
        d = data.shape[1] if isinstance(data, torch.Tensor) else len(data.columns)
        self.n_features_in_ = d
        self._n_features = int(self.n_features) if self.n_features else DEFAULT_EXPANSION * d
        probe = TrainConfig(val_fraction=self.val_fraction, seed=self.seed)
        if isinstance(data, torch.Tensor):
            train, val, sample = self._in_memory(data, probe)
            n_train = len(train)
            config = self._train_config(n_train)
        else:
            n_val = count_validation_rows(data, validation_fraction(data.n_rows, probe), probe.seed)
            n_train = data.n_rows - n_val
            config = self._train_config(n_train)
            split = split_source(data, _features, config, n_val=n_val)
            train, val, sample = split.train, split.val, split.sample(INIT_SAMPLE)
        torch.manual_seed(config.seed)
        module = build_sae(self.architecture, d, self._n_features, aux_k=self.aux_k,
                           aux_coefficient=self.aux_coefficient, dead_tokens=self.dead_tokens, **settings)
        module.initialize(sample[:MEDIAN_SAMPLE] if len(sample) > MEDIAN_SAMPLE else sample)
        self.module_ = module
        self.history_ = train_model(module, train, val, config, progress=self.verbose,
                                    description=f"sae {self.architecture}", checkpoint=checkpoint, resume=resume)
        module.finish_training(sample)
        self.train_config_ = config.to_dict()
        n_val = 0 if val is None else len(val) if isinstance(val, torch.Tensor) else val.n_rows
        # held-out figures (under torchrun: this rank's share of the held-out rows); without a
        # held-out split, a slice of the training sample, said so in the metrics
        if val is None:
            held_out, measured_on = _tensor_batches(sample[:MEDIAN_SAMPLE]), "training sample"
        else:
            held_out = val.epoch(1) if isinstance(val, StreamBatches) else _tensor_batches(val)
            measured_on = "held-out rows"
        self.metrics_ = {"n_train": n_train, "n_val": n_val, "epochs_run": len(self.history_),
                         "measured_on": measured_on, **self._measure(held_out)}
        return self

    def _in_memory(self, X: torch.Tensor, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                        torch.Tensor]:
        """(training rows, held-out rows, a shuffled sample of training rows for initialisation)."""
        n = len(X)
        if n < 2:
            raise InputError(f"training needs at least 2 rows, got {n}.")
        # the same seeded split a streamed source of these rows would get
        is_val = hash_split(np.arange(n, dtype=np.int64), validation_fraction(n, config), config.seed)
        train, val = X[torch.from_numpy(~is_val)], X[torch.from_numpy(is_val)]
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed))[:INIT_SAMPLE]
        return train, val if len(val) else None, train[order]

    # -- using the fitted SAE -------------------------------------------------------------
    @property
    def components_(self) -> np.ndarray:
        require_fitted(self)
        return self.module_.W_dec.detach().cpu().numpy().copy()

    @property
    def scale_(self) -> float:
        require_fitted(self)
        return float(self.module_.scale)

    def _device(self) -> torch.device:
        return self.module_.W_dec.device

    @torch.no_grad()
    def encode_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Dense codes of raw activations ``x`` (..., d), as a tensor on ``x``'s device."""
        require_fitted(self)
        flat = x.reshape(-1, x.shape[-1]).to(self._device(), torch.float32)
        return self.module_.encode(flat).reshape(*x.shape[:-1], -1).to(x.device)

    @torch.no_grad()
    def reconstruct_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions of raw activations ``x`` (..., d), in x's dtype and device."""
        require_fitted(self)
        flat = x.reshape(-1, x.shape[-1]).to(self._device(), torch.float32)
        return self.module_.reconstruct(flat).reshape(x.shape).to(device=x.device, dtype=x.dtype)

    def _check_width(self, width: int, what: str) -> None:
        if width != self.n_features_in_:
            raise InputError(f"{what} has {width} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input (the activation size it was fitted on).")

    def iter_transform(self, X: Any, batch_size: int = 4096) -> Iterator[np.ndarray]:
        """Codes of X batch by batch (float32, (batch, n_features)), X streamed as in :meth:`fit`."""
        require_fitted(self)
        for x in _iter_rows(X, batch_size):
            self._check_width(x.shape[1], "X")
            yield self.encode_torch(torch.from_numpy(x)).cpu().numpy()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the code columns, ``f0`` ... ``f{n_features - 1}`` (dictionary feature ids), as
        an ndarray of str (object dtype, as scikit-learn returns them); with these,
        ``set_output(transform="pandas")`` makes ``transform`` return a DataFrame."""
        require_fitted(self)
        if input_features is not None and len(input_features) != self.n_features_in_:
            raise InputError(f"input_features has {len(input_features)} names but this SAE was fitted on "
                             f"{self.n_features_in_} dimensions.")
        return np.asarray([f"f{i}" for i in range(self.module_.n_features)], dtype=object)

    def transform(self, X: Any) -> np.ndarray:
        """Codes of X: float32 of shape (n, n_features), mostly zeros."""
        parts = list(self.iter_transform(X))
        return np.concatenate(parts) if parts else np.zeros((0, self.module_.n_features), np.float32)

    @torch.no_grad()
    def inverse_transform(self, codes: Any) -> np.ndarray:
        """Activations (n, d) decoded from codes (n, n_features), in the input's scale."""
        require_fitted(self)
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[1] != self.module_.n_features:
            raise InputError(f"codes must have shape (n, {self.module_.n_features}), got {codes.shape}.")
        return self.module_.decode(torch.from_numpy(codes).to(self._device())).cpu().numpy()

    def reconstruct(self, X: Any) -> np.ndarray:
        """Reconstructions of X (n, d)."""
        require_fitted(self)
        parts = [self.reconstruct_torch(torch.from_numpy(x)).cpu().numpy() for x in _iter_rows(X, 4096)]
        return np.concatenate(parts) if parts else np.zeros((0, self.n_features_in_), np.float32)

    @torch.no_grad()
    def _measure(self, batches: Iterable[torch.Tensor], max_tokens: int = EVAL_TOKENS) -> dict[str, Any]:
        """FVU, MSE, L0, dead/dense fractions and the density histogram over up to ``max_tokens``."""
        stats = SAEStatistics(self.module_.n_features)
        for x in batches:
            x = x[:max_tokens - stats.n].to(self._device(), torch.float32)
            codes = self.module_.encode(x)
            stats.update(x.cpu().numpy(), self.module_.decode(codes).cpu().numpy(), codes.cpu().numpy())
            if stats.n >= max_tokens:
                break
        return stats.result()

    def evaluate(self, X: Any, max_tokens: int = EVAL_TOKENS) -> dict[str, Any]:
        """FVU, explained variance, MSE, L0, dead and dense fractions and the log10 feature-density
        histogram of X (held-out activations, streamed), over at most ``max_tokens`` tokens."""
        require_fitted(self)

        def batches() -> Iterator[torch.Tensor]:
            for x in _iter_rows(X, 4096):
                self._check_width(x.shape[1], "X")
                yield torch.from_numpy(x)
        return self._measure(batches(), max_tokens)

    def score(self, X: Any, y: Any = None) -> float:
        """Explained variance of X (scikit-learn's "higher is better")."""
        return float(self.evaluate(X)["explained_variance"])

    # -- saving ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save as a latentforge artifact (``sae.json`` + ``weights.safetensors``, history and
        metrics); only the parameters and small buffers are stored, never training codes."""
        require_fitted(self)
        config = {"architecture": self.architecture, "module": self.module_.config(),
                  "estimator": {k: v for k, v in self.get_params().items() if k not in TRAIN_KEYS},
                  "train": self.train_config_, "n_features_in": self.n_features_in_}
        tensors = {k: v for k, v in self.module_.state_dict().items()}
        return save_artifact(path, Artifact(config, tensors, self.history_, self.metrics_, kind="sae"))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "SparseAutoencoder":
        """Load a saved SAE directory (weights read without pickle)."""
        art = load_artifact(path, kind="sae")
        module_config = dict(art.config["module"])
        try:
            architecture = module_config.pop("architecture")
            d, n_features = module_config.pop("d"), module_config.pop("n_features")
            if "prefixes" in module_config:
                module_config["prefixes"] = tuple(module_config["prefixes"])
            module = build_sae(architecture, d, n_features, **module_config)
            module.load_state_dict(art.tensors)
        except (KeyError, TypeError, RuntimeError, InputError) as exc:
            raise ArtifactError(f"{path} does not hold a loadable SAE ({type(exc).__name__}: {exc}).") from None
        train = art.config.get("train", {})
        est = cls(**art.config.get("estimator", {}), **{k: train[k] for k in TRAIN_KEYS if k in train})
        est.module_ = module.to(resolve_device(device)).eval()
        est._n_features = n_features
        est.n_features_in_ = int(art.config["n_features_in"])
        est.train_config_ = train
        est.history_ = [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                        for row in art.history]
        est.metrics_ = art.metrics
        return est


def _tensor_batches(X: torch.Tensor, batch_size: int = 4096) -> Iterator[torch.Tensor]:
    return (X[i:i + batch_size] for i in range(0, len(X), batch_size))


def _features(raw: Any) -> np.ndarray:
    """A fragment of activations (a DataFrame of numeric columns or an array) as float32 rows."""
    if isinstance(raw, pd.DataFrame):
        try:
            return raw.to_numpy(dtype=np.float32)
        except (TypeError, ValueError):
            bad = [c for c in raw.columns if not pd.api.types.is_numeric_dtype(raw[c])]
            raise InputError(f"activations must be numeric; column(s) {', '.join(map(repr, bad[:5]))} are not.") from None
    return np.asarray(raw, dtype=np.float32).reshape(len(raw), -1)


def _as_data(X: Any) -> torch.Tensor | DataSource:
    """X as an in-memory float32 tensor (n, d) or a streamed table source."""
    if isinstance(X, (str, Path)):
        source = open_activations(X).source() if is_activations_dir(X) else open_source(X)
    elif isinstance(X, ActivationStore):
        source = X.source()
    elif isinstance(X, DataSource):
        source = X
    elif isinstance(X, (np.ndarray, torch.Tensor, pd.DataFrame)) or isinstance(X, (list, tuple)):
        array = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else _features(X) if isinstance(
            X, pd.DataFrame) else np.asarray(X, dtype=np.float32)
        if array.ndim != 2:
            raise InputError(f"activations must be a 2-D array (tokens, d), got shape {array.shape}.")
        if not np.isfinite(array).all():
            raise InputError("the activations contain NaN or infinite values.")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    else:
        source = open_source(X)
    if source.kind != "table":
        raise InputError(f"{source.name} holds images; an SAE takes activations of shape (tokens, d).")
    return source


def _iter_rows(X: Any, batch_size: int) -> Iterator[np.ndarray]:
    """float32 batches of X's rows in storage order (in memory or streamed)."""
    data = _as_data(X)
    if isinstance(data, torch.Tensor):
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size].numpy()
        return
    for chunk in iter_chunks(data, shuffle=False):
        x = _features(chunk.data)
        x = x if x.flags.writeable else x.copy()  # torch refuses to wrap read-only (memory-mapped) arrays
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size]


def load(path: str | Path, device: str = "cpu") -> SparseAutoencoder:
    """Load a saved SAE directory."""
    return SparseAutoencoder.load(path, device=device)


__all__ = ["SparseAutoencoder", "default_lr", "default_warmup", "load"]
