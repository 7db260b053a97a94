"""The user-facing estimator, in scikit-learn style."""

from __future__ import annotations

import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from ..artifacts import Artifact, load_artifact, save_artifact
from ..config import ARCHITECTURE_DEFAULTS as ARCH
from ..config import AUTO, DEFAULT_LATENT_DIM, DEFAULT_MODEL, DEFAULTS, IMAGE_PLAN, TrainConfig, auto_plan, coerce_value, \
    resolve_device
from ..data import (
    CsvSource,
    DataSource,
    Dataset,
    ImagePreprocessor,
    ParquetSource,
    TabularPreprocessor,
    as_model_input,
    hash_split,
    iter_chunks,
    load_dataset,
    make_preprocessor,
    numeric_view,
    open_source,
    preprocessor_from_state,
    split_indices,
)
from ..data.chunks import concat_raw
from ..errors import ArtifactError, InputError, TrainingDivergedError, unknown_name_error
from ..models import Architecture, build_model, get_model_class
from ..train import StreamBatches, fit_model
from ..train.batches import VALIDATION_CACHE_BYTES
from ..train.distributed import context as distributed_context
from ..train.source_split import split_source, validation_fraction
from .base import ExtraParamsMixin, InputTypeError, extra_params_property, require_fitted
from .samplers import CODE_SAMPLERS, fit_code_sampler

SAMPLERS = ("auto", "prior", *CODE_SAMPLERS)
STREAMED_SUFFIXES = (".parquet", ".pq", ".csv", ".npy", ".safetensors")
MAX_SAVED_CODES = 10_000  # training codes kept with the model, to fit code samplers later
#: a streamed source whose training features come to at most this many bytes is read once and held
#: in memory (re-reading and preprocessing a small file every epoch cost a quarter of its fit time)
HOLD_IN_MEMORY_BYTES = 256 << 20
TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))
#: estimator parameter → Architecture field; stored under "model" in model.json
ARCHITECTURE_OPTIONS = {"architecture": "kind", "hidden": "hidden", "channels": "channels",
                        "activation": "activation", "norm": "norm"}
RUNTIME_OPTIONS = ("verbose", "regularizers", "tracking_uri")  # how this process runs, not part of the model


class Autoencoder(ExtraParamsMixin, TransformerMixin, BaseEstimator):
    """Train an autoencoder on a table or images and use it as an embedding, generator and scorer.

    Parameters
    ----------
    model : str, default "swae"
        Registry name (``latentforge models`` lists them): ``"ae"``, ``"vae"``, ``"swae"``, ...
    latent_dim : int, default 8
        Size of the embedding.
    epochs, batch_size, lr, patience : int (lr: float) or "auto", default "auto"
        ``"auto"``: set from the number of training rows (:func:`latentforge.config.auto_plan`:
        images keep 100 epochs of 64 rows at lr 1e-3 and a patience of 30; tables get a budget
        of about 1,000 steps at lr 2e-3, patience the larger of 30 and half the epochs).
        ``patience=None`` disables early stopping.
    hidden : tuple of int or "auto", default "auto"
        MLP widths; ``"auto"``: 512-256 for images, for tables from the numbers of rows and
        features (:func:`latentforge.config.auto_plan`, stated in docs/data.md).
    weight_decay, schedule, warmup_steps, val_fraction, grad_clip, threads, \
precision, compile, checkpoint_every, keep_checkpoints
        Training options; defaults and meaning in :class:`latentforge.config.TrainConfig`
        (``threads``: CPU threads, ``"auto"``: 1 for tables, whose small networks a second
        thread slows down, PyTorch's default for images; ``precision``: ``"fp32"``, ``"bf16"`` or ``"fp16"``;
        ``compile``: ``torch.compile`` the loss; ``checkpoint_every``: steps between checkpoints).
    architecture : {"auto", "mlp", "conv"}, default "auto"
        ``"auto"`` picks the conv net for images of at least 16x16, else the MLP; ``hidden``,
        ``channels``, ``activation`` and ``norm`` shape the networks.
    column_types, max_categories, id_columns, label
        Table options. Columns named in ``id_columns``/``label`` may be present in X; they are
        left out of training.
    sampler : {"auto", "prior", "gmm", "dpmm", "empirical", "two_stage", "maf"}, default "auto"
        How ``sample`` generates by default: the model's own prior, a Gaussian mixture with
        ``gmm_components`` fitted on training codes, a Dirichlet-process mixture (at most
        ``gmm_components``), resampled training codes (quantised models), a second small VAE
        fitted on training codes (Dai & Wipf's two-stage VAE), a masked autoregressive flow fitted
        on training codes (``maf``), or ``"auto"`` (prior
        where the model has one, empirical for quantised models, else gmm).
    seed : int, default 0
        Fixes initialisation, shuffling, validation split and sampling.
    device : str, default "auto"
        ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    verbose : bool or None, default None
        Progress bar (None: only when stderr is a terminal).
    regularizers : tuple of callables, default ()
        ``(model, batch) -> {name: loss term}`` added to the training loss (e.g.
        ``latentforge.transform`` invariance and compatibility terms); not saved with the model.
    tracking_uri : str or None, default None
        An MLflow tracking URI (e.g. ``"file:///tmp/mlruns"``, an ``http://`` server; a ``#name``
        fragment names the experiment): ``fit`` logs the parameters, every epoch's loss terms and
        the final metrics to a new MLflow run, and ``save`` adds the model directory to that run as
        the artifact ``model`` (docs/tracking.md). Needs ``pip install 'latentforge[mlflow]'``;
        not saved with the model.
    **hyperparameters
        The model's own, e.g. ``beta`` for vae, ``sw_weight``/``prior`` for swae.

    Attributes
    ----------
    model_ : latentforge.models.BaseAutoencoder
        The fitted network (a ``torch.nn.Module``), in eval mode.
    preprocessor_ : TabularPreprocessor or ImagePreprocessor
        The fitted preprocessing; its ``state()`` is the saved schema.
    history_ : list of dict
        One record per epoch (loss terms, learning rate, seconds), as in ``history.csv``.
    metrics_ : dict
        Final training and validation figures (``metrics.json``).
    train_codes_ : ndarray of shape (n_kept, latent_dim)
        Codes of up to 10,000 training rows, to fit code samplers after loading.
    train_errors_ : ndarray of shape (n_kept,)
        Their reconstruction errors (reference for anomaly scores).
    sampler_kind_ : str
        The sampler ``sample`` uses by default (``"auto"`` resolved).
    training_plan_ : dict
        The epochs, batch size, patience and hidden widths the fit used, ``"auto"`` resolved, and
        which of them were ``"auto"`` (``{"epochs": 200, "batch_size": 32, "patience": 100,
        "hidden": [64], "auto": [...]}``);
        saved in model.json under ``fitted``.
    n_features_in_ : int
        Number of input columns seen at fit time (scikit-learn's meaning: id and label columns
        included; images: C·H·W). The network's width after preprocessing (one-hot categories,
        missing-value indicators) is ``preprocessor_.n_features``.
    feature_names_in_ : ndarray of str
        Column names seen at fit time; only when X had names (a DataFrame, a CSV or Parquet file),
        not for a NumPy array.
    tracking_run_id_ : str
        The MLflow run ``fit`` logged to (only with ``tracking_uri``).
    held_out_ : dict
        Which rows of the fit input were held out for validation, so they can be found again
        (``latentforge evaluate --split val``): ``{"n_rows": n, "rows": [...]}`` for data held in
        memory, ``{"n_rows": n, "hash_fraction": f, "hash_seed": s}`` for a streamed source
        (:func:`latentforge.data.hash_split`); saved in model.json under ``fitted``.

    Examples
    --------
    >>> from latentforge import Autoencoder
    >>> from latentforge.data import load_builtin
    >>> digits = load_builtin("digits")
    >>> model = Autoencoder("ae", latent_dim=4, epochs=1, hidden=(32,), verbose=False).fit(digits.X[:200])
    >>> model.transform(digits.X[:5]).shape
    (5, 4)
    """

    _extra_params = "hyperparameters"
    hyperparameters = extra_params_property("hyperparameters", "The model's own hyper-parameters (``**hyperparameters``).")

    def __init__(
        self, model: str = DEFAULT_MODEL, latent_dim: int = DEFAULT_LATENT_DIM, *, epochs: int | str = AUTO,
        batch_size: int | str = AUTO, lr: float | str = AUTO, weight_decay: float = DEFAULTS.weight_decay,
        schedule: str = DEFAULTS.schedule, warmup_steps: int = DEFAULTS.warmup_steps,
        patience: int | None | str = AUTO, val_fraction: float = DEFAULTS.val_fraction, grad_clip: float | None = DEFAULTS.grad_clip,
        architecture: str = ARCH["kind"], hidden: tuple[int, ...] | str = AUTO,
        channels: tuple[int, ...] = ARCH["channels"], activation: str = ARCH["activation"], norm: str = ARCH["norm"], column_types: dict[str, str] | None = None,
        max_categories: int = 20, id_columns: tuple[str, ...] = (), label: str | None = None, sampler: str = "auto",
        gmm_components: int = 10, seed: int = DEFAULTS.seed, device: str = DEFAULTS.device,
        threads: int | None | str = AUTO, precision: str = DEFAULTS.precision, compile: bool = DEFAULTS.compile,
        checkpoint_every: int | None = DEFAULTS.checkpoint_every, keep_checkpoints: bool = DEFAULTS.keep_checkpoints,
        verbose: bool | None = None, regularizers: tuple[Any, ...] = (), tracking_uri: str | None = None,
        **hyperparameters: Any,
    ):
        self.model, self.latent_dim, self.epochs, self.batch_size = model, latent_dim, epochs, batch_size
        self.lr, self.weight_decay, self.schedule, self.patience = lr, weight_decay, schedule, patience
        self.warmup_steps = warmup_steps
        self.val_fraction, self.grad_clip, self.architecture = val_fraction, grad_clip, architecture
        self.hidden, self.channels, self.activation, self.norm = hidden, channels, activation, norm
        self.column_types, self.max_categories, self.id_columns = column_types, max_categories, id_columns
        self.label, self.sampler, self.gmm_components = label, sampler, gmm_components
        self.seed, self.device, self.verbose = seed, device, verbose
        self.threads, self.precision, self.compile = threads, precision, compile
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, keep_checkpoints
        self.regularizers, self.tracking_uri = regularizers, tracking_uri
        self.hyperparameters = dict(hyperparameters)

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: missing values are allowed (a table's NaN are imputed, with an
        indicator), and ``transform`` returns float32 whatever the input's float type."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- fitting ---------------------------------------------------------------------------
    def _train_config(self) -> TrainConfig:
        """The training options; ``"auto"`` epochs, batch size and patience as the fit resolved them
        (before a fit, the image plan stands in, so that the other options can be checked)."""
        plan = getattr(self, "training_plan_", IMAGE_PLAN)
        return TrainConfig(**{name: plan[name] if _is_auto(getattr(self, name)) and name in plan else getattr(self, name)
                              for name in TRAIN_OPTIONS})

    def _architecture(self) -> Architecture:
        hidden = getattr(self, "training_plan_", IMAGE_PLAN)["hidden"] if _is_auto(self.hidden) else self.hidden
        return Architecture(kind=self.architecture, hidden=hidden, channels=self.channels,
                            activation=self.activation, norm=self.norm)

    def _plan(self, config: TrainConfig, n_train: int, input_shape: tuple[int, ...]) -> TrainConfig:
        """Resolve ``"auto"`` epochs, batch size, learning rate, patience, widths and threads for n_train training rows of this input
        shape (``training_plan_``), and return the training options with them."""
        auto = [name for name in ("epochs", "batch_size", "lr", "patience", "hidden", "threads")
                if _is_auto(getattr(self, name))]
        rule = auto_plan(n_train, int(np.prod(input_shape)), image=len(input_shape) == 3,
                         batch_size=None if "batch_size" in auto else config.batch_size)
        chosen = {"epochs": config.epochs, "batch_size": config.batch_size, "lr": config.lr, "patience": config.patience,
                  "hidden": self.hidden, "threads": config.threads, **{name: rule[name] for name in auto}}
        self.training_plan_ = {**chosen, "hidden": [int(h) for h in Architecture(hidden=chosen["hidden"]).hidden],
                               "auto": auto}
        return self._train_config()

    def _checked_params(self) -> TrainConfig:
        """The training options, validated; numbers given as text (a config file, ``--param``,
        ``lr="1e-3"``) become numbers on the estimator too (:func:`latentforge.config.coerce_value`)."""
        config = self._train_config()
        for name in TRAIN_OPTIONS:
            if not _is_auto(getattr(self, name)):
                setattr(self, name, getattr(config, name))
        for name in ("latent_dim", "max_categories", "gmm_components"):
            setattr(self, name, coerce_value(getattr(self, name), int, name))
        return config

    def fit(self, X: Any, y: Any = None, on_epoch: Any = None, checkpoint: str | Path | None = None,
            resume: bool = False) -> "Autoencoder":
        """Fit preprocessing and the model on X.

        X is a DataFrame, a 2-D array, images or a Dataset (held in memory), or a source that is
        streamed in bounded chunks and never loaded whole: a path to a Parquet file or folder, a
        CSV, a ``.npy``, safetensors shards or an image folder, a
        :class:`latentforge.data.DataSource`, or a torch ``Dataset``/``DataLoader``. As on the
        command line, a built-in dataset name (``"digits"``) or an ``.npz`` archive is loaded
        into memory; a path that does not exist is an InputError naming it.

        ``y`` (in-memory data only) is used to stratify the validation split; a streamed source is
        split by a seeded hash of the row index (:func:`latentforge.data.hash_split`).
        ``on_epoch`` is called with each epoch's history record. ``checkpoint``: a directory where
        the training state is saved (every ``checkpoint_every`` steps, and at epoch ends as long as
        that costs at most about 5% of the run);
        ``resume=True`` continues a killed run from it, giving the weights an uninterrupted run
        would have (on CPU with the same thread count, bit for bit). With ``tracking_uri`` the
        run is logged to MLflow (parameters, each epoch's record, ``metrics_``).
        """
        config = self._checked_params()
        if self.sampler not in SAMPLERS:
            raise unknown_name_error("sampler", self.sampler, SAMPLERS)
        model_class = get_model_class(self.model)
        model_class.resolve_hyperparameters(self.hyperparameters)  # fail before any work
        self.__dict__.pop("training_plan_", None)  # a refit plans again
        self._architecture()  # checks the network options before any work
        X = _resolve_input(X)
        source = X if isinstance(X, DataSource) else None
        named = _has_column_names(X)
        if source is not None and model_class.fit_method == "posterior":
            # posterior sampling (bae, small data by design) needs every row at each step: read them in
            parts = [chunk.data for chunk in iter_chunks(source, shuffle=False)]
            X, source = (pd.concat(parts, ignore_index=True) if source.kind == "table" else np.concatenate(parts)), None
        if source is None:
            train, val, kept, columns, config = self._in_memory(X, y, config)
        else:
            train, val, kept, columns, config = self._streamed(source, config)
        arch = self._architecture()
        n_features = int(np.prod(self.preprocessor_.input_shape))
        # scikit-learn's n_features_in_: the input's columns (id and label included), images C·H·W
        n_inputs, names = (n_features, None) if columns is None else (len(columns), columns if named else None)
        if self.latent_dim >= n_features and not model_class.sparse_code:
            warnings.warn(f"latent_dim={self.latent_dim} is not smaller than the input's {n_features} features; "
                          f"the autoencoder can copy its input instead of compressing it.", stacklevel=2)
        torch.manual_seed(config.seed)
        pre = self.preprocessor_
        net = build_model(self.model, pre.input_shape, pre.layout, self.latent_dim, arch, self.hyperparameters)
        self.model_ = net
        run = self._start_tracking()
        epoch_hook = on_epoch if run is None else _both(run.log_epoch, on_epoch)  # logged first
        try:
            try:
                self.history_ = fit_model(net, train, val, config, progress=self.verbose, description=self.model,
                                          on_epoch=epoch_hook, regularizers=self.regularizers, checkpoint=checkpoint,
                                          resume=resume)
            except TrainingDivergedError as exc:
                self._keep_last_good(exc, n_inputs, names, train, val, kept)
                raise
            self._finish_fit(n_inputs, names, train, val, kept)
        except BaseException as exc:
            if run is not None:
                if hasattr(self, "metrics_"):  # a divergence that kept the last good weights
                    run.log_metrics(self.metrics_)
                run.end("FAILED", error=f"{type(exc).__name__}: {exc}")
            raise
        if run is not None:
            run.log_metrics(self.metrics_)
            run.end("FINISHED")
            self.tracking_run_id_, self._tracked_run = run.run_id, run
        return self

    def _start_tracking(self) -> Any:
        """The MLflow run this fit logs to (:mod:`latentforge.tracking`), or None without
        ``tracking_uri`` (and on every torchrun rank but the first)."""
        if self.tracking_uri is None:
            return None
        ctx = distributed_context()
        if ctx.active and not ctx.is_main:
            return None
        from ..tracking import estimator_params, start_run

        return start_run(self.tracking_uri, run_name=str(self.model), tags={"latentforge.command": "fit"},
                         params=estimator_params(self.get_params()))

    def _keep_last_good(self, exc: TrainingDivergedError, n_inputs: int, columns: Any, train: Any, val: Any,
                        kept: torch.Tensor) -> None:
        """After a divergence: with at least one finished epoch the estimator is fitted with the last
        good weights (the trainer restored them) and ``metrics_`` says ``"diverged": true`` and
        where; otherwise it is left unfitted (nothing worth keeping was learnt)."""
        history = list(getattr(exc, "history", None) or [])
        if history:
            self.history_ = history
            try:
                self._finish_fit(n_inputs, columns, train, val, kept)
                self.metrics_.update(diverged=True, diverged_epoch=exc.epoch, diverged_step=exc.step,
                                     diverged_term=exc.term, kept_epoch=getattr(exc, "best_epoch", len(history)))
                exc.kept_model = True
                return
            except Exception:  # noqa: BLE001 (the divergence is what the user must see)
                pass
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)
        exc.kept_model = False

    def _finish_fit(self, n_inputs: int, columns: Any, train: Any, val: Any, kept: torch.Tensor) -> None:
        """What fitting sets after the weights: input size and names (``columns``: None when the
        input had no column names), sampler, kept codes, reference errors, metrics."""
        net = self.model_
        self.n_features_in_ = n_inputs
        self.__dict__.pop("feature_names_in_", None)  # a refit on an array forgets earlier names
        self.__dict__.pop("tracking_run_id_", None)
        if columns is not None:
            self.feature_names_in_ = np.asarray([str(c) for c in columns], dtype=object)
        if self.sampler == "auto":  # the model's prior, else resampled discrete codes, else a mixture
            self.sampler_kind_ = "prior" if net.has_prior else "empirical" if net.code_kind == "discrete" else "gmm"
        else:
            self.sampler_kind_ = self.sampler
        self._check_sampler(self.sampler_kind_)
        self.train_codes_ = self._codes(kept).astype(np.float32)
        # reference statistics for anomaly scores (latentforge.AnomalyDetector.from_autoencoder)
        self.train_errors_ = self._batched(self.model_.reconstruction_error, kept).astype(np.float32)
        self._code_samplers: dict[str, Any] = {}
        self.metrics_ = self._fit_metrics(train, val, kept)

    def _in_memory(self, X: Any, y: Any, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                        torch.Tensor, Any, TrainConfig]:
        """(train rows, validation rows, kept training rows, column names, planned training options)
        of data held in memory."""
        if isinstance(X, Dataset) and y is None:
            y = X.y
        data = as_model_input(X)
        if isinstance(data, pd.DataFrame):
            pre = make_preprocessor(data, column_types=self.column_types, max_categories=self.max_categories,
                                    id_columns=tuple(self.id_columns), label=self.label)
        else:
            pre = make_preprocessor(data)
        features = pre.fit(data).transform(data)
        self.preprocessor_ = pre
        n = len(features)
        if n < 2:
            raise InputError(f"training needs at least 2 rows, got {n} sample{'' if n == 1 else 's'}.")
        flat = torch.from_numpy(features.reshape(n, -1))
        y_arr = None if y is None else np.asarray(y)
        if y_arr is not None and len(y_arr) != n:
            raise InputError(f"y has {len(y_arr)} entries but X has {n} rows.")
        val_fraction = validation_fraction(n, config)
        train_idx, val_idx = split_indices(n, y_arr, val_fraction, config.seed)
        self.held_out_ = {"n_rows": n, "rows": np.sort(val_idx).tolist()}
        kept = _kept_rows(flat[train_idx], self.seed)
        config = self._plan(config, len(train_idx), pre.input_shape)
        return flat[train_idx], flat[val_idx] if len(val_idx) else None, kept, \
            data.columns if isinstance(data, pd.DataFrame) else None, config

    def _streamed(self, source: DataSource, config: TrainConfig) -> tuple[
            torch.Tensor | StreamBatches, torch.Tensor | StreamBatches | None, torch.Tensor, Any, TrainConfig]:
        """The same for a streamed source: preprocessing fitted in one pass, then batches read per
        epoch, or, for training features of at most HOLD_IN_MEMORY_BYTES, the rows read once and
        held as tensors (the same hash split)."""
        if source.kind == "table":
            wanted = [*self.id_columns, *([self.label] if self.label else [])]
            missing = [c for c in wanted if c not in source.columns]
            if missing:
                raise InputError(f"column(s) {', '.join(map(repr, missing))} not found in {source.name}; it has "
                                 f"{', '.join(map(repr, source.columns[:20]))}.")
        n = source.n_rows
        if n < 2:
            raise InputError(f"training needs at least 2 rows, got {n} in {source.name}.")
        val_fraction = validation_fraction(n, config)  # the rule split_source applies below
        is_val = lambda rows: hash_split(rows, val_fraction, config.seed)  # noqa: E731
        self.held_out_ = {"n_rows": n, "hash_fraction": val_fraction, "hash_seed": config.seed}
        counted = {"val": 0}

        def raw_chunks():
            for chunk in iter_chunks(source, shuffle=False):
                counted["val"] += int(is_val(chunk.rows).sum())
                yield chunk.data
        if source.kind == "table":
            pre = TabularPreprocessor(column_types=self.column_types, max_categories=self.max_categories,
                                      id_columns=tuple(self.id_columns), label=self.label)
        else:
            pre = ImagePreprocessor()
        self.preprocessor_ = pre.fit_stream(raw_chunks(), **({"seed": config.seed} if source.kind == "table" else {}))
        n_val = counted["val"]
        if n - n_val < 1:
            raise InputError(f"the validation split leaves no training rows in {source.name}.")
        config = self._plan(config, n - n_val, pre.input_shape)
        transform = lambda raw: pre.transform(raw).reshape(len(raw), -1)  # noqa: E731
        # all-numeric Parquet/array columns: read straight to NumPy features (the same stream, bit for bit)
        fast = numeric_view(source, pre) if source.kind == "table" else None
        read_from, transform = fast if fast is not None else (source, transform)
        row_width = int(np.prod(pre.input_shape))
        split = split_source(source, transform, config, n_val=n_val, read_from=read_from,
                             val_cache_bytes=VALIDATION_CACHE_BYTES, row_width=row_width)
        if split.n_train * row_width * 4 <= HOLD_IN_MEMORY_BYTES:
            train, val = split.read_whole()
            kept = _kept_rows(train, self.seed)
        else:  # a seeded shuffled sample of training rows (epoch 0 is never trained on)
            train, val, kept = split.train, split.val, split.sample(MAX_SAVED_CODES)
        return train, val, kept, source.columns if source.kind == "table" else None, config

    def _fit_metrics(self, train: torch.Tensor | StreamBatches, val: torch.Tensor | StreamBatches | None,
                     kept: torch.Tensor) -> dict[str, Any]:
        """Final figures; for a streamed source the training MSE is over the kept sample of rows."""
        last = self.history_[-1]
        n_train = train.n_rows if isinstance(train, StreamBatches) else len(train)
        n_val = 0 if val is None else val.n_rows if isinstance(val, StreamBatches) else len(val)
        metrics: dict[str, Any] = {"epochs_run": len(self.history_), "n_train": n_train, "n_val": n_val}
        sample = kept if isinstance(train, StreamBatches) else train
        metrics["train_reconstruction_mse"] = float(self._batched(self.model_.reconstruction_error, sample).mean())
        if n_val:
            batches = val.epoch(1) if isinstance(val, StreamBatches) else [val]
            errors = np.concatenate([self._batched(self.model_.reconstruction_error, b) for b in batches])
            metrics["val_reconstruction_mse"] = float(errors.mean())
            metrics["best_val_total"] = min(h["val_total"] for h in self.history_)
        metrics["final_train_total"] = last["train_total"]
        return metrics

    # -- inference -------------------------------------------------------------------------
    def _per_row(self, X: Any, fn: Any) -> Any:
        """``fn(X)`` for data in memory; for a path or a DataSource, ``fn`` on its batches of raw
        rows in storage order (:func:`latentforge.estimator.streaming.iter_applied`), joined."""
        require_fitted(self)
        data = _resolve_input(X)
        if not isinstance(data, DataSource):
            return fn(data)
        from .batched import iter_applied

        parts = [values for _, values in iter_applied(self, data, fn)]
        if not parts:
            raise InputError(f"{data.name} has no rows.")
        return _join(parts)

    def _features(self, X: Any) -> torch.Tensor:
        require_fitted(self)
        data = _resolve_input(X)
        if isinstance(data, DataSource):  # read whole (log_likelihood's one seeded pass)
            data = concat_raw([chunk.data for chunk in iter_chunks(data, shuffle=False)])
        if isinstance(data, np.ndarray) and data.ndim == 2 and self.preprocessor_.kind == "table" \
                and data.shape[1] != self.n_features_in_:
            raise InputError(f"X has {data.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        data = as_model_input(data)
        if isinstance(data, pd.DataFrame) != (self.preprocessor_.kind == "table"):
            raise InputError(f"the model was fitted on {'a table' if self.preprocessor_.kind == 'table' else 'images'}, "
                             f"but got {'a table' if isinstance(data, pd.DataFrame) else 'images'}.")
        features = self.preprocessor_.transform(data)
        return torch.from_numpy(features.reshape(len(features), -1))

    @torch.no_grad()
    def _batched(self, fn: Any, flat: torch.Tensor, batch_size: int = 2048) -> np.ndarray:
        self.model_.eval()
        device = next(self.model_.parameters()).device
        outs = [fn(flat[i:i + batch_size].to(device)).cpu() for i in range(0, len(flat), batch_size)]
        return torch.cat(outs).numpy() if outs else np.empty((0,))

    def features(self, X: Any) -> np.ndarray:
        """X after the fitted preprocessing, flattened to (n, preprocessor_.n_features): the space the
        model reconstructs. X: anything :meth:`transform` takes."""
        return self._per_row(X, lambda rows: self._features(rows).numpy())

    def _codes(self, flat: torch.Tensor) -> np.ndarray:
        return self._batched(self.model_.embed, flat)

    def _to_output(self, features: np.ndarray) -> pd.DataFrame | np.ndarray:
        return self.preprocessor_.inverse_transform(features)

    def _with_std(self, method: str, X: Any) -> tuple[np.ndarray, np.ndarray]:
        require_fitted(self)
        if not self.model_.has_uncertainty:
            raise InputError(f"model {self.model!r} has no predictive uncertainty; return_std needs a Bayesian "
                             f"model such as 'bae'.")
        flat = self._features(X)
        fn = getattr(self.model_, method)
        mean = self._batched(lambda x: fn(x)[0], flat)
        std = self._batched(lambda x: fn(x)[1], flat)
        return mean, std

    def transform(self, X: Any, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Embeddings, shape (n, latent_dim) (the posterior mean for VAE-type models).

        ``return_std=True`` (Bayesian models) also returns the per-dimension standard deviation of
        the embedding across posterior samples.

        X is what :meth:`fit` takes: data in memory, or a path (CSV, Parquet file or folder,
        ``.npy``, safetensors, image folder: read in bounded batches; ``.npz`` or a built-in
        dataset name: loaded) or a DataSource. The same holds for ``reconstruct``,
        ``score_samples``, ``features`` and ``log_likelihood``. After
        ``set_output(transform="pandas")`` the codes come as a DataFrame with columns
        :meth:`get_feature_names_out`.
        """
        if return_std:
            return self._per_row(X, lambda rows: self._with_std("embed_with_std", rows))
        return self._per_row(X, lambda rows: self._codes(self._features(rows)))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the embedding's columns: ``z0`` ... ``z{latent_dim - 1}`` (as in ``latentforge
        embed`` outputs), an ndarray of str (object dtype, as scikit-learn returns them).

        ``input_features``, if given, must match the columns seen at fit time (scikit-learn's rule);
        the output names do not depend on it.
        """
        require_fitted(self)
        if input_features is not None:
            given = [str(c) for c in input_features]
            known = getattr(self, "feature_names_in_", None)
            if known is not None and given != list(known):
                raise InputError("input_features does not match the feature_names_in_ seen at fit time.")
            if len(given) != self.n_features_in_:
                raise InputError(f"input_features has {len(given)} names but the model was fitted on "
                                 f"{self.n_features_in_} features.")
        return np.asarray([f"z{i}" for i in range(self.model_.latent_dim)], dtype=object)

    def inverse_transform(self, Z: Any) -> pd.DataFrame | np.ndarray:
        """Decode codes back to data: a DataFrame for tables, (n, C, H, W) images in [0, 1]."""
        require_fitted(self)
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.model_.latent_dim:
            raise InputError(f"codes must be shaped (n, {self.model_.latent_dim}), got {Z.shape}.")
        if not np.isfinite(Z).all():
            raise InputError("codes contain NaN or infinite values.")
        decode = lambda z: self.model_.likelihood.mean(self.model_.decode(z))  # noqa: E731
        return self._to_output(self._batched(decode, torch.from_numpy(Z)))

    def reconstruct(self, X: Any, return_std: bool = False):
        """Encode and decode X; same representation as ``inverse_transform``.

        ``return_std=True`` (Bayesian models) returns (mean, std) of the reconstructed features
        across posterior samples, both in the preprocessed feature space shaped like X's features.
        """
        if return_std:
            mean, std = self._per_row(X, lambda rows: self._with_std("reconstruct_with_std", rows))
            shape = (len(mean), *self.preprocessor_.input_shape)
            return mean.reshape(shape), std.reshape(shape)
        return self._per_row(X, lambda rows: self._to_output(self._batched(self.model_.reconstruct,
                                                                            self._features(rows))))

    def score_samples(self, X: Any, kind: str = "recon") -> np.ndarray:
        """Per-row anomaly score; ``kind="recon"``: reconstruction error (mean squared error over
        preprocessed features). Models may offer more kinds (``bae``: ``"expected_recon"``,
        ``"predictive_variance"``) through their ``anomaly_score(x, kind)``.

        Sign convention: **higher means more anomalous**. scikit-learn's outlier detectors use the
        opposite (higher ``score_samples`` = more normal); negate this to compare with them.
        """
        require_fitted(self)
        if kind == "recon":
            return self._per_row(X, lambda rows: self._batched(self.model_.reconstruction_error, self._features(rows)))
        if kind not in self.model_.anomaly_kinds:
            offered = " or ".join(repr(k) for k in ("recon", *self.model_.anomaly_kinds))
            raise InputError(f"model {self.model!r} offers only kind={offered} anomaly scores, not {kind!r}.")
        return self._per_row(X, lambda rows: self._batched(lambda x: self.model_.anomaly_score(x, kind),
                                                           self._features(rows)))

    def _check_sampler(self, kind: str) -> None:
        if kind not in SAMPLERS[1:]:
            raise unknown_name_error("sampler", kind, SAMPLERS[1:])
        if kind == "prior" and not self.model_.has_prior:
            raise InputError(f"model {self.model!r} has no prior; use sampler='gmm' or 'dpmm'.")
        if kind == "empirical" and self.model_.code_kind != "discrete":
            raise InputError(f"sampler 'empirical' is for quantised models; model {self.model!r} has continuous "
                             f"codes (use 'gmm' or 'dpmm').")

    def sample_codes(self, n: int, seed: int | None = None, sampler: str | None = None) -> np.ndarray:
        """n latent codes from ``sampler`` (default: the one chosen at fit time)."""
        require_fitted(self)
        if n < 1:
            raise InputError(f"n must be at least 1, got {n}.")
        kind = sampler or self.sampler_kind_
        self._check_sampler(kind)
        seed = self.seed if seed is None else seed
        if kind == "prior":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self.model_.sample_prior(n).cpu().numpy()
        if kind not in self._code_samplers:  # fitted on first use, deterministically
            self._code_samplers[kind] = fit_code_sampler(kind, self.train_codes_, self.seed, self.gmm_components)
        return self._code_samplers[kind].sample(n, seed).astype(np.float32)

    def sample(self, n: int, seed: int | None = None, sampler: str | None = None) -> pd.DataFrame | np.ndarray:
        """Generate n new rows/images; ``sampler`` overrides the default, ``seed`` makes it repeatable."""
        return self.inverse_transform(self.sample_codes(n, seed, sampler))

    def log_likelihood(self, X: Any, n_samples: int = 100) -> np.ndarray:
        """Importance-sampled estimate of log p(x) per row, in nats (VAE-type models only).

        Computed on the preprocessed features (pixels in [0, 1], standardised table columns).
        """
        require_fitted(self)
        if not self.model_.has_log_likelihood:
            raise InputError(f"model {self.model!r} is not a latent-variable model with a likelihood; "
                             f"use a VAE-type model (vae, beta_vae, iwae, ...).")
        if n_samples < 1:
            raise InputError(f"n_samples must be at least 1, got {n_samples}.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self._batched(lambda x: self.model_.log_likelihood(x, n_samples), self._features(X), 256)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path, metrics: dict[str, Any] | None = None) -> Path:
        """Write the model directory atomically (model.json, weights.safetensors, history.csv, metrics.json).

        model.json stores each setting once: ``model`` (the network: name, latent size,
        architecture, hyper-parameters), ``train`` (the :class:`~latentforge.config.TrainConfig`),
        ``estimator`` (the remaining estimator parameters: table options and sampler choice),
        ``preprocessing`` (the fitted schema) and ``fitted`` (what fitting chose).

        After a fit with ``tracking_uri``, the saved directory is also logged as the artifact
        ``model`` of that fit's MLflow run (``tracking_run_id_``).
        """
        require_fitted(self)
        ctx = distributed_context()
        if ctx.active and not ctx.is_main:  # under torchrun only rank 0 writes
            return Path(path)
        model_owned = {"model", "latent_dim", *ARCHITECTURE_OPTIONS, *TRAIN_OPTIONS, *RUNTIME_OPTIONS}
        estimator = {k: getattr(self, k) for k in self._get_param_names() if k not in model_owned}
        estimator["id_columns"] = list(self.id_columns)
        config = {
            "model": self.model_.config(),
            "train": self._train_config().to_dict(),
            "estimator": estimator,
            "preprocessing": self.preprocessor_.state(),
            "fitted": {"sampler": self.sampler_kind_,
                       "feature_names_in": [str(c) for c in getattr(self, "feature_names_in_", [])],
                       "n_features_in": int(self.n_features_in_),
                       "held_out": getattr(self, "held_out_", None),
                       "training_plan": getattr(self, "training_plan_", None)},
        }
        tensors = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        tensors["codes.train"] = torch.from_numpy(self.train_codes_)
        tensors["errors.train"] = torch.from_numpy(self.train_errors_)
        saved = save_artifact(path, Artifact(config, tensors, self.history_, {**self.metrics_, **(metrics or {})}))
        run = getattr(self, "_tracked_run", None)
        if run is not None and getattr(self, "tracking_run_id_", None) == run.run_id:
            run.log_artifacts(saved, "model")  # the directory, into the run fit logged to
        return saved

    @staticmethod
    def _params_from_manifest(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(estimator parameters, fitted state) from model.json of format version 1 or 2."""
        if config["format_version"] == 1:  # every parameter under "estimator"; fitted state at the top
            # version 1 had no threads option: its models trained with PyTorch's default
            return {"threads": None, **config["estimator"]}, {"sampler": config["sampler"],
                                               "feature_names_in": config.get("feature_names_in") or []}
        spec, arch = config["model"], config["model"]["architecture"]
        params = {"model": spec["name"], "latent_dim": spec["latent_dim"], **config["train"],
                  **{param: arch[field] for param, field in ARCHITECTURE_OPTIONS.items()},
                  **config["estimator"], **spec["hyperparameters"]}
        return params, config["fitted"]

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Autoencoder":
        """Load a model directory saved by :meth:`save` (no code is executed) onto ``device``.

        Reads format versions 1 (latentforge 0.1) and 2.
        """
        art = load_artifact(path)
        target = resolve_device(device)
        try:
            params, fitted = cls._params_from_manifest(art.config)
            est = cls(**params)
            est._checked_params()  # model.json holds settings like any other input
            est.device = device
            spec = art.config["model"]
            est.preprocessor_ = preprocessor_from_state(art.config["preprocessing"])
            state = {k[len("model."):]: v for k, v in art.tensors.items() if k.startswith("model.")}
            build = lambda: build_model(spec["name"], est.preprocessor_.input_shape, est.preprocessor_.layout,  # noqa: E731
                                        spec["latent_dim"], spec["architecture"], spec["hyperparameters"])
            _check_weight_shapes(Path(path), _meta_state(build), state)  # before any weight is allocated
            net = build()
            net.load_state_dict(state, strict=True)
            est.model_ = net
            est.sampler_kind_ = str(fitted["sampler"])
            est.held_out_ = fitted.get("held_out")  # None for models saved before it was recorded
            if fitted.get("training_plan"):
                est.training_plan_ = fitted["training_plan"]
            est._check_sampler(est.sampler_kind_)
            est.train_codes_ = art.tensors["codes.train"].numpy()
            est.train_errors_ = art.tensors["errors.train"].numpy()
            est.history_ = [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                            for row in art.history]
            est.metrics_ = art.metrics
            # input columns (scikit-learn's meaning); models saved before it was recorded: their names
            est.n_features_in_ = int(fitted.get("n_features_in") or len(fitted.get("feature_names_in") or [])
                                     or np.prod(est.preprocessor_.input_shape))
            if fitted.get("feature_names_in"):
                est.feature_names_in_ = np.asarray(fitted["feature_names_in"], dtype=object)
        except ArtifactError:
            raise
        except InputError as exc:
            raise ArtifactError(f"{path} does not hold a loadable model: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError, OverflowError) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise ArtifactError(f"{path} does not hold a loadable model ({type(exc).__name__}: {detail}).") from None
        est.model_ = net.to(target).eval()
        est._code_samplers = {}
        est._check_round_trip(path)
        return est

    def _check_round_trip(self, path: str | Path) -> None:
        """One decoded row through the saved preprocessing and back, so that a saved state the code
        cannot use (a damaged or hand-edited model.json) is an ArtifactError at load time, not a
        crash in a later command."""
        try:
            with torch.no_grad():
                z = torch.zeros(1, self.model_.latent_dim, device=next(self.model_.parameters()).device)
                features = self.model_.likelihood.mean(self.model_.decode(z)).cpu().numpy()
            self.preprocessor_.transform(self.preprocessor_.inverse_transform(features))
        except Exception as exc:  # noqa: BLE001 (whatever breaks, the directory is the culprit)
            detail = " ".join(str(exc).split())[:200]
            raise ArtifactError(f"{path} does not hold a usable model: its preprocessing state does not fit its "
                                f"network ({type(exc).__name__}: {detail}).") from None


def _kept_rows(rows: torch.Tensor, seed: int) -> torch.Tensor:
    """Up to MAX_SAVED_CODES of the training ``rows``, a seeded sample kept in row order."""
    keep = np.random.default_rng(seed).permutation(len(rows))[:MAX_SAVED_CODES]
    return rows[np.sort(keep)]


def _meta_state(build: Any) -> dict[str, torch.Tensor] | None:
    """The state_dict of ``build()`` constructed on the meta device (shapes only, no memory); None
    if the model cannot be built there (the real build then reports any problem)."""
    try:
        with torch.device("meta"):
            return build().state_dict()
    except InputError:
        raise
    except Exception:  # noqa: BLE001 (a model whose construction needs real tensors)
        return None


def _check_weight_shapes(path: Path, expected: dict[str, torch.Tensor] | None, stored: dict[str, torch.Tensor]) -> None:
    """ArtifactError (one line) unless the network model.json describes has exactly the tensors of
    weights.safetensors: the same names and shapes. ``expected`` may live on the meta device."""
    if expected is None:
        return
    missing = [k for k in expected if k not in stored]
    extra = [k for k in stored if k not in expected]
    if missing or extra:
        names = ", ".join(repr(k) for k in (missing or extra)[:3]) + (", ..." if len(missing or extra) > 3 else "")
        what = "lacks" if missing else "has unexpected"
        raise ArtifactError(f"{path}: model.json does not match weights.safetensors, which {what} "
                            f"{len(missing or extra)} tensor(s) ({names}).")
    for key, tensor in expected.items():
        if tuple(tensor.shape) != tuple(stored[key].shape):
            raise ArtifactError(f"{path}: model.json does not match weights.safetensors: {key!r} would be "
                                f"{tuple(tensor.shape)} but is stored as {tuple(stored[key].shape)}.")


def _resolve_input(X: Any) -> Any:
    """What every method reads, by the command line's rule: a DataSource for a streamable path (a
    Parquet, CSV, ``.npy`` or safetensors file, a folder), a DataSource or torch data; a Dataset for
    a built-in dataset name or an ``.npz`` archive (loaded whole); data in memory as given, arrays
    checked (:func:`_checked_array`). A path that does not exist is an InputError naming it."""
    if isinstance(X, DataSource):
        return X
    if isinstance(X, (str, Path)):
        path = Path(X)
        if path.is_dir() or path.suffix.lower() in STREAMED_SUFFIXES:
            return open_source(path)  # a missing file: "file not found: PATH."
        if not path.exists() or path.suffix.lower() == ".npz":
            return load_dataset(X)  # a built-in name, an archive, or one sentence naming X
        raise InputError(f"{X} cannot be streamed or loaded: give a Parquet, CSV, .npy or safetensors file, a folder "
                         f"of them or of images, an .npz archive or a built-in dataset name.")
    if isinstance(X, (Dataset, pd.DataFrame)):
        return X
    if isinstance(X, _torch_data_types()):
        return open_source(X)
    return _checked_array(X)


def _checked_array(X: Any) -> Any:
    """Array-like X as a NumPy array (a torch tensor passes as is), refusing in one sentence what
    the estimator cannot use: sparse matrices, complex numbers, 1-D arrays, no columns, object
    arrays that do not hold numbers (converted to float64 when they do)."""
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise InputError("sparse input is not supported; densify it first with X.toarray().")
    if isinstance(X, pd.Series):
        return X  # as_model_input names the fix
    if type(X).__module__.startswith("torch"):
        return X
    array = np.asarray(X)
    if np.iscomplexobj(array):
        raise InputError("Complex data not supported; pass real numbers (e.g. X.real and X.imag as columns).")
    if array.dtype == object and array.ndim == 2:
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputTypeError(f"a 2-D object array must hold numbers only ({exc}); pass a DataFrame for "
                                 f"mixed types.") from None
    if array.ndim == 1:
        raise InputError(f"expected a table (2-D) or images (3-D or 4-D), got a 1-D array of shape {array.shape}; "
                         f"Reshape your data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one row.")
    if array.ndim == 2 and array.shape[1] == 0:
        raise InputError(f"X has 0 feature(s) (shape={array.shape}) while a minimum of 1 is required.")
    return array


def _has_column_names(X: Any) -> bool:
    """Whether X names its columns (scikit-learn's ``feature_names_in_``): a DataFrame, a Dataset
    of one, a CSV or Parquet source; not a NumPy array, ``.npy``, safetensors or torch data."""
    if isinstance(X, Dataset):
        return isinstance(X.X, pd.DataFrame)
    return isinstance(X, (pd.DataFrame, CsvSource, ParquetSource))


def _join(parts: list[Any]) -> Any:
    """Per-batch outputs joined in order: arrays, DataFrames, or tuples of them."""
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(_join([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, pd.DataFrame):
        return pd.concat(parts, ignore_index=True)
    return np.concatenate(parts)


def _both(first: Any, second: Any) -> Any:
    """An epoch callback calling ``first`` then ``second`` (either may be None)."""
    def call(record: dict[str, float]) -> None:
        for hook in (first, second):
            if hook is not None:
                hook(record)
    return call


def _torch_data_types() -> tuple[type, ...]:
    from torch.utils.data import DataLoader
    from torch.utils.data import Dataset as TorchDataset

    return (TorchDataset, DataLoader)


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == AUTO


def load(path: str | Path, device: str = "cpu") -> Autoencoder:
    """Load a saved model directory."""
    return Autoencoder.load(path, device=device)
