"""Command-line interface: parse flags, call the estimator or a workflow, print — no business logic.

Commands: ``latentforge fit | embed | align | reconstruct | generate | score | evaluate | compare | demo | models | datasets``,
``latentforge activations`` and ``latentforge sae fit | evaluate | inspect``.

Exit status: 0 success, 2 bad input (one sentence naming the culprit), 3 training diverged (the
last good model is saved when an epoch had finished), 130 interrupted (Ctrl-C), 1 internal error.
``--debug`` (anywhere on the line) shows the full traceback instead. See docs/reliability.md.

Start-up cost: this module imports only typer and the light :mod:`latentforge.config`; PyTorch,
scikit-learn, pandas and matplotlib are imported inside the commands that use them, so
``latentforge --help`` and ``latentforge datasets`` start in a fraction of a second
(``benchmarks/startup.py`` measures it; ``tests/test_cli_surface.py`` keeps the imports out).
"""

from __future__ import annotations

import errno
import gc
import json
import os
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from .config import ARCHITECTURE_DEFAULTS as ARCH
from .config import DEFAULT_LATENT_DIM, DEFAULT_MODEL, DEFAULTS, SCHEDULES
from .errors import InputError, TrainingDivergedError

if TYPE_CHECKING:
    import pandas as pd


class _Interrupted(Exception):
    """Ctrl-C, carried past typer (which would turn the KeyboardInterrupt into a silent exit 130)."""


def _plain_help_option(option: Any) -> Any:
    """The ``--help`` flag without typer's value adapter.

    typer ≥ 0.2x builds a pydantic ``TypeAdapter`` for every option it processes, ``--help``
    included, even when its value is None; that one import (≈ 0.25 s CPU) was most of what
    ``latentforge datasets`` cost. The flag's value is None or a bool, which need no coercion,
    so it gets a pass-through. Older or newer typers without the private slot are left alone.
    """
    if option is not None and getattr(option, "_runtime_param", False) is None:
        try:
            from typer._coercion import PassThroughRuntimeParam
        except ImportError:
            return option
        option._runtime_param = PassThroughRuntimeParam(
            parameter_info=option.type_descriptor.parameter_info, annotation=bool)
    return option


class _Group(TyperGroup):
    def get_help_option(self, ctx: Any) -> Any:
        return _plain_help_option(super().get_help_option(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:  # the option is cached on the command, so patching it once is enough
            _plain_help_option(command.get_help_option(ctx))
        return command

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc


# rich_markup_mode=None: click's plain help, which shows "[default: …]" and "[required]" as written
# and real flags as flags (typer's rich panels ate "[default: …]" as markup and showed "--quiet <bool>")
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=_Group,
                  rich_markup_mode=None,
                  help="Autoencoder-based representation learning: fit, embed, generate, score, evaluate.")

#: exit status of a run whose training diverged (0 ok, 1 internal error, 2 bad input, 130 Ctrl-C)
EXIT_DIVERGED = 3


def _d(text: str, default: Any) -> str:
    """Help text with its default, for options whose value is None until given (so that a --config
    file can set them): typer shows the default itself only for options with a real one."""
    return f"{text}  [default: {default}]"


# -- options shared by several commands ------------------------------------------------------------
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display (bars on a terminal, a plain line "
                                                            "every few seconds otherwise).")]
Device = Annotated[str, typer.Option(help="Device to load the model on: auto, cpu or cuda[:i].")]
ModelDir = Annotated[Path, typer.Argument(metavar="MODEL", help="Model directory (from 'latentforge fit').",
                                          show_default=False)]
Label = Annotated[str | None, typer.Option(metavar="COLUMN", help="Label column of a table: never a feature; the "
                                                                  "probe metrics use it.  [default: none]")]
IdColumns = Annotated[list[str] | None, typer.Option(
    "--id-column", metavar="COLUMN", help="Identifier column (repeatable): never a feature; carried through to "
                                          "outputs.  [default: none]")]
ColumnTypes = Annotated[list[str] | None, typer.Option(
    "--column-type", metavar="NAME=ROLE", help="Override a column's role (repeatable): "
                                               "ROLE is numeric, categorical, datetime, id or ignore.  [default: inferred]")]
Params = Annotated[list[str] | None, typer.Option(
    "--param", metavar="KEY=VALUE", help="Any model hyper-parameter or training option (repeatable), read like a "
                                         "config file value, e.g. beta=4, patience=none, lr=1e-3.  [default: none]")]
MlflowUri = Annotated[str | None, typer.Option(
    "--mlflow-uri", metavar="URI", help="Log parameters, per-epoch losses, final metrics and the model to MLflow at URI "
                                        "(e.g. file:./mlruns; needs the mlflow extra).  [default: no tracking]")]
Split = Annotated[str, typer.Option(
    metavar="all|val", help="Rows of DATA to use: all, or val = the rows 'fit' held out for validation (not trained "
                            "on; they chose the kept epoch), found from the split recorded in the model.")]

# the TrainConfig options, once for fit and compare (tests/test_cli_surface.py checks every one is here)
Epochs = Annotated[int | None, typer.Option(help=_d("Training epochs; auto: 100 for images, a budget of ~1,000 steps "
                                                    "for tables (docs/data.md).", "auto"))]
BatchSize = Annotated[int | None, typer.Option(help=_d("Rows per optimiser step; auto: 64 for images, from the row count "
                                                       "for tables.", "auto"))]
Lr = Annotated[float | None, typer.Option(help=_d("Learning rate (AdamW); auto: 1e-3 for images, 2e-3 for tables.",
                                                  "auto"))]
WeightDecay = Annotated[float | None, typer.Option(help=_d("AdamW weight decay.", f"{DEFAULTS.weight_decay:g}"))]
Schedule = Annotated[str | None, typer.Option(metavar="|".join(SCHEDULES),
                                              help=_d("Learning-rate schedule.", DEFAULTS.schedule))]
WarmupSteps = Annotated[int | None, typer.Option(help=_d("Steps of linear LR warm-up (0: none).", DEFAULTS.warmup_steps))]
GradClip = Annotated[str | None, typer.Option(metavar="NORM|none", help=_d("Clip the gradient norm at NORM; none "
                                                                           "disables.", DEFAULTS.grad_clip))]
Patience = Annotated[str | None, typer.Option(metavar="EPOCHS|none", help=_d(
    "Stop after this many epochs without a better validation loss; none disables; auto: 30, or half the epochs "
    "when more.", "auto"))]
ValFraction = Annotated[float | None, typer.Option(help=_d(
    "Share of rows held out for validation (early stopping, the kept epoch); 0 disables.", f"{DEFAULTS.val_fraction:g}"))]
Seed = Annotated[int | None, typer.Option(help=_d("Random seed: initialisation, shuffling, validation split.",
                                                  DEFAULTS.seed))]
TrainDevice = Annotated[str | None, typer.Option(help=_d("auto, cpu or cuda[:i].", DEFAULTS.device))]
Threads = Annotated[int | None, typer.Option(help=_d("CPU threads for training; auto: 1 for tables, PyTorch's for "
                                                     "images.", "auto"))]
Precision = Annotated[str | None, typer.Option(metavar="fp32|bf16|fp16", help=_d("Autocast precision.", DEFAULTS.precision))]
Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the loss (the first steps compile).  "
                                                         "[default: off]")]
CheckpointEvery = Annotated[int | None, typer.Option(help=_d("Save a checkpoint every N steps.",
                                                             "at epoch ends, at most ~5% of the run"))]
KeepCheckpoints = Annotated[bool, typer.Option("--keep-checkpoints", help="Keep OUT.checkpoint after the run.  "
                                                                          "[default: off]")]
LatentDim = Annotated[int | None, typer.Option(help=_d("Embedding size.", DEFAULT_LATENT_DIM))]


# -- helpers ---------------------------------------------------------------------------------
def _parse_pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InputError(f"{what} {item!r} must look like NAME=VALUE.")
        out[key.strip()] = value.strip()
    return out


def _parse_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{what} must be comma-separated integers, got {text!r}.") from None
    if not values:
        raise InputError(f"{what} must name at least one size.")
    return values


def _train_flags(**given: Any) -> dict[str, Any]:
    """The TrainConfig flags that were given (a flag left out keeps the config file's or the default
    value). Text values (``--patience none``) are coerced by TrainConfig, as config values are."""
    flags = {k: v for k, v in given.items() if v is not None}
    for name in ("compile", "keep_checkpoints"):  # flags: only an explicit --flag overrides a config file
        if flags.get(name) is False:
            del flags[name]
    return flags


def _missing(command: str, what: str, hint: str = "") -> InputError:
    """The one message for a missing argument or option, the same on every command (click's own
    usage errors are reworded into it by :func:`main`)."""
    return InputError(f"latentforge {command}: missing {what}{hint}; see 'latentforge {command} --help'.")


def _data():
    """The data layer, imported on first use so ``--help`` starts without torch."""
    from . import data

    return data


def _load_model(path: Path, device: str = "cpu"):
    from .estimator import Autoencoder

    return Autoencoder.load(path, device=device)


def _open_for_model(source: str):
    """DATA as a source for the generators of :mod:`latentforge.estimator.streaming`, which carry the
    ids chunk by chunk: a streamable file or folder (the rule of ``fit``) is only opened, never read
    whole; built-in datasets and .npz archives cannot be read lazily and are loaded first."""
    from .data import load_dataset, open_source

    return open_source(Path(source) if _is_streamed(source) else load_dataset(source))


def _load_for_model(est: Any, source: str, label: str | None = None, id_columns: tuple[str, ...] = ()):
    """Load DATA for an existing model: the whole table (known id/label columns pass through).
    ``label`` / ``id_columns`` name more columns of DATA to leave out of the features (the label
    becomes ``y``); by default the model's own."""
    from .data import load_dataset

    data = load_dataset(source)
    ids = data.ids
    if data.kind == "table":
        pre = est.preprocessor_
        label = label or pre.label
        wanted = [*id_columns, *([label] if label else [])]
        missing = [c for c in wanted if c not in data.X.columns]
        if missing:
            raise InputError(f"column(s) {', '.join(map(repr, missing))} not found in {source}; it has "
                             f"{', '.join(map(repr, list(data.X.columns)[:20]))}.")
        present = [c for c in [*pre.id_columns, *id_columns] if c in data.X.columns]
        ids = data.X[present].reset_index(drop=True) if present else None
        if label and label in data.X.columns and data.y is None:
            data.y = data.X[label].to_numpy()
            data.label_name = label
        extra = [c for c in [*id_columns, *([label] if label else [])] if c not in pre.id_columns and c != pre.label]
        if extra:  # columns the model never saw: drop them, or the schema check calls them unexpected
            data.X = data.X.drop(columns=list(dict.fromkeys(extra)))
    return data, ids


def _held_out(est: Any, data: Any, model: Path, split: str) -> Any:
    """``data`` itself (``split="all"``) or its rows ``fit`` held out for validation (``"val"``)."""
    if split == "all":
        return data
    if split != "val":
        raise InputError(f"--split must be all or val, got {split!r}.")
    from .workflows.evaluation import held_out_rows

    rows = held_out_rows(est, len(data), str(model))
    _echo(f"using the {len(rows)} rows of {len(data)} that fit held out for validation")
    return data.subset(rows)


def _with_ids(ids: pd.DataFrame | None, frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    return frame if ids is None else pd.concat([ids.reset_index(drop=True), frame], axis=1)


def _echo(message: str) -> None:
    typer.echo(message, err=True)


def _say_if_replacing(out: Path, marker: str, what: str) -> None:
    """A note on stderr when --out already holds a saved ``what`` (it is replaced once the new one is complete)."""
    from .fsutil import through_links

    if (through_links(out) / marker).is_file():
        _echo(f"replacing the {what} at {out} (the old one stays until the new one is saved).")


def _check_output(out: Path | None, *inputs: Any) -> None:
    """Before any work: the output file can be created and written, and is none of the command's inputs."""
    from .fsutil import check_output_path

    if out is not None:
        written = check_output_path(out, [i for i in inputs if i is not None])
        if written.is_dir() and int(os.environ.get("WORLD_SIZE", "1")) == 1:  # under torchrun: a folder of parts
            raise InputError(f"output {out} is a directory; give a file name.")


def _progress(quiet: bool) -> Any:
    """Where a training command runs: off a terminal the progress display prints plain lines (the
    API stays silent there unless asked); ``--quiet`` turns every display off via ``verbose=False``."""
    if quiet:
        return nullcontext()
    from .train.progress import lines_when_piped

    return lines_when_piped()


def _tracking(uri: str | None, accepts: Any, where: str) -> dict[str, Any]:
    """``{"tracking_uri": uri}`` for a callable that takes it, ``{}`` without --mlflow-uri."""
    if uri is None:
        return {}
    import inspect

    if "tracking_uri" not in inspect.signature(accepts).parameters:
        raise InputError(f"--mlflow-uri: this installation's {where} has no MLflow tracking (tracking_uri).")
    return {"tracking_uri": uri}


def _is_streamed(data: str) -> bool:
    """Whether ``fit`` streams DATA: an existing file of a streamable type, or a folder."""
    from .estimator.autoencoder import STREAMED_SUFFIXES

    path = Path(data)
    return path.exists() and (path.is_dir() or path.suffix.lower() in STREAMED_SUFFIXES)


def _read_fit_config(path: Path) -> dict[str, Any]:
    """Autoencoder parameters from a YAML/JSON file (model hyper-parameters flat or under ``hyperparameters``)."""
    from .config import read_config_file

    values = read_config_file(path)
    values.update(values.pop("hyperparameters", None) or {})
    return values


def _check_parameter_names(params: dict[str, Any], source: str) -> None:
    from .errors import unknown_name_error
    from .estimator import Autoencoder
    from .models import get_model_class

    known = set(Autoencoder.param_names()) | {"data"}
    model_hp = set(get_model_class(str(params.get("model", "swae"))).hyperparameters)
    for key in params:
        if key not in known | model_hp:
            raise unknown_name_error(f"parameter in {source}", key, known | model_hp)


#: Autoencoder parameters that --param cannot set from text: each has its own flag
_NOT_BY_PARAM = {"id_columns": "--id-column", "column_types": "--column-type", "regularizers": "--invariance",
                 "verbose": "--quiet", "label": "--label"}


def _param_pairs(param: list[str] | None, model: str) -> dict[str, str]:
    """--param KEY=VALUE pairs, names checked against the model's hyper-parameters and the
    estimator's options; the values stay text and are coerced where config-file values are."""
    pairs = _parse_pairs(param, "--param")
    for key in pairs:
        if key in _NOT_BY_PARAM:
            raise InputError(f"--param {key}=...: use {_NOT_BY_PARAM[key]} for {key}.")
    _check_parameter_names({"model": model, **pairs}, "--param")
    return pairs


# -- commands --------------------------------------------------------------------------------
@app.command()
def fit(
    data: Annotated[str | None, typer.Argument(metavar="DATA", show_default=False, help="Built-in dataset name, CSV/Parquet/.npy/.npz file or image folder (or 'data:' in --config).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", show_default=False, help="Model directory to write; an existing model there is replaced once the new one is saved.")] = ...,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML/JSON file of parameters; flags override it.  [default: none]")] = None,
    model: Annotated[str | None, typer.Option(help=_d("Model name (see 'latentforge models').", DEFAULT_MODEL))] = None,
    latent_dim: LatentDim = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    weight_decay: WeightDecay = None,
    schedule: Schedule = None,
    warmup_steps: WarmupSteps = None,
    grad_clip: GradClip = None,
    patience: Patience = None,
    val_fraction: ValFraction = None,
    seed: Seed = None,
    device: TrainDevice = None,
    threads: Threads = None,
    precision: Precision = None,
    compile: Compile = False,
    checkpoint_every: CheckpointEvery = None,
    keep_checkpoints: KeepCheckpoints = False,
    hidden: Annotated[str | None, typer.Option(metavar="SIZES", help=_d("Hidden widths, comma-separated; 'none' (or '' or 0) for a linear encoder and decoder; auto: 512,256 for images, from the rows and features for tables.", "auto"))] = None,
    architecture: Annotated[str | None, typer.Option(metavar="auto|mlp|conv", help=_d("Network kind (auto: conv for images of at least 16x16).", ARCH["kind"]))] = None,
    norm: Annotated[str | None, typer.Option(metavar="none|batch|layer", help=_d("Normalisation layers.", ARCH["norm"]))] = None,
    sampler: Annotated[str | None, typer.Option(help=_d("Default sampler: auto, prior, gmm, dpmm, empirical, two_stage, maf.", "auto"))] = None,
    label: Label = None,
    id_column: IdColumns = None,
    column_type: ColumnTypes = None,
    param: Params = None,
    prior_selection: Annotated[str | None, typer.Option(help=_d("bae: dswd or none (same as --param prior_selection=...).", "dswd"))] = None,
    posterior_samples: Annotated[int | None, typer.Option(help=_d("bae: weight samples kept (same as --param posterior_samples=...).", "the model's"))] = None,
    invariance: Annotated[list[str] | None, typer.Option(metavar="TRANSFORM:WEIGHT[:STRENGTH]", help="Invariance term (repeatable), e.g. noise:1.0.  [default: none]")] = None,
    compatible_with: Annotated[Path | None, typer.Option(metavar="DIR", help="Old model directory: train with a compatibility loss towards it.  [default: none]")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its checkpoint (OUT.checkpoint).  [default: off]")] = False,
    mlflow_uri: MlflowUri = None,
    quiet: Quiet = False,
) -> None:
    """Train a model on DATA and save it to --out. File inputs (Parquet, CSV, .npy, safetensors,
    image folders) are streamed in bounded chunks; the run is checkpointed beside the output
    (OUT.checkpoint) and a killed run continues with --resume. Defaults are the Python API's; a
    --config file sets any of them, and flags given on the line win."""
    from .data import load_dataset
    from .estimator import Autoencoder
    from .fsutil import check_output_dir, check_output_path

    params: dict[str, Any] = _read_fit_config(config) if config is not None else {}
    if config is not None:
        _check_parameter_names(params, str(config))
    flags = {"model": model, "latent_dim": latent_dim, "architecture": architecture, "norm": norm,
             "sampler": sampler, "label": label,
             "hidden": None if hidden is None else () if hidden.strip().lower() in ("", "0", "none") else "auto"
             if hidden.strip().lower() == "auto" else _parse_ints(
                 hidden, "--hidden"),
             "id_columns": tuple(id_column) if id_column else None,
             "column_types": _parse_pairs(column_type, "--column-type") or None,
             "prior_selection": prior_selection, "posterior_samples": posterior_samples}
    params.update({k: v for k, v in flags.items() if v is not None})
    params.update(_train_flags(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                               schedule=schedule, warmup_steps=warmup_steps, grad_clip=grad_clip, patience=patience,
                               val_fraction=val_fraction, seed=seed, device=device, threads=threads,
                               precision=precision, compile=compile, checkpoint_every=checkpoint_every,
                               keep_checkpoints=keep_checkpoints))
    params.update(_param_pairs(param, str(params.get("model", DEFAULT_MODEL))))
    data = data or params.pop("data", None)
    params.pop("data", None)
    if data is None:
        raise _missing("fit", "argument DATA", " (or 'data:' in the --config file)")
    data = str(data)
    if quiet:
        params["verbose"] = False
    params.update(_tracking(mlflow_uri, Autoencoder, "Autoencoder"))
    check_output_path(out, [data, compatible_with, config], folder=True)
    check_output_dir(out)
    _say_if_replacing(out, "model.json", "model")
    regularizers = []
    if invariance or compatible_with is not None:
        from .config import coerce_value
        from .transform import CompatibilityLoss, parse_invariance_spec

        seed_of_terms = coerce_value(params.get("seed", 0), int, "seed")
        regularizers = [parse_invariance_spec(spec, seed=seed_of_terms) for spec in invariance or []]
        if compatible_with is not None:
            regularizers.append(CompatibilityLoss(compatible_with))
    est = Autoencoder(**params, regularizers=tuple(regularizers))
    from .models import get_model_class

    checkpoint = out.parent / f"{out.name}.checkpoint"
    if get_model_class(est.model).fit_method == "posterior" and not resume:
        checkpoint = None  # posterior sampling has no checkpoints (yet); --resume says so
    elif resume and not (checkpoint / "checkpoint.json").is_file():
        raise InputError(f"--resume: there is no checkpoint at {checkpoint} to resume from.")
    try:
        with _progress(quiet):
            if _is_streamed(data):
                est.fit(Path(data), checkpoint=checkpoint, resume=resume)
            else:  # built-in datasets and .npz archives are held in memory
                est.fit(load_dataset(data, label=est.label, id_columns=list(est.id_columns)), checkpoint=checkpoint,
                        resume=resume)
    except TrainingDivergedError as exc:  # keep what the finished epochs learnt, marked as diverged
        if exc.kept_model:
            est.save(out)
            raise TrainingDivergedError(
                f"{exc} Saved the last good model (epoch {exc.best_epoch}) to {out}; its metrics.json says "
                f"\"diverged\": true.", exc.epoch, exc.step, exc.term, history=exc.history,
                best_epoch=exc.best_epoch) from None
        raise TrainingDivergedError(f"{exc} Nothing was saved.", exc.epoch, exc.step, exc.term) from None
    except KeyboardInterrupt:
        if checkpoint is not None and (checkpoint / "checkpoint.json").is_file():
            raise _Interrupted(f"interrupted; nothing was written to {out} (the run is checkpointed: add --resume "
                               f"to continue it from {checkpoint}).") from None
        raise
    est.save(out)  # under torchrun: rank 0 only
    from .train.distributed import context, finish

    ctx = context()
    finish(ctx)
    if ctx.is_main:
        m = est.metrics_
        _echo(f"saved {est.model} to {out} ({m['epochs_run']} epochs, validation reconstruction MSE "
              f"{m.get('val_reconstruction_mse', float('nan')):.5f})")


@app.command()
def embed(
    model: ModelDir,
    data: Annotated[str, typer.Argument(metavar="DATA", show_default=False, help="Data to embed (same kind and columns as at fit time).")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", show_default=False, help="Output .parquet, .csv or .npy.")],
    dims: Annotated[int | None, typer.Option(help="Keep only the first DIMS units (sliceable embeddings).  [default: all]")] = None,
    order: Annotated[str, typer.Option(metavar="auto|native|pca", help="With --dims: auto (matryoshka prefixes, else PCA order), native or pca.")] = "auto",
    compatible_with: Annotated[Path | None, typer.Option(metavar="DIR", help="Alignment directory from 'latentforge align': "
                                                                             "write codes in the old model's space.  [default: none]")] = None,
    device: Device = "cpu",
) -> None:
    """Write embeddings of DATA: the model's id columns first, then z0.., then its label column when
    DATA has it. File inputs (Parquet, CSV, .npy, safetensors, image folders) are streamed in bounded
    chunks and the output written as they come."""
    import pandas as pd

    from .estimator.streaming import check_outputs, iter_embeddings, write_outputs

    check_outputs(out)
    _check_output(out, data, model, compatible_with)
    if dims is not None and compatible_with is not None:
        raise InputError("use either --dims or --compatible-with, not both.")
    est = _load_model(model, device)
    embed_rows = est.transform
    if compatible_with is not None:
        from .transform import compatible_embedding, load_alignment

        alignment = load_alignment(compatible_with)
        embed_rows = lambda X: compatible_embedding(est, X, alignment)  # noqa: E731 (per row: streams)
    elif dims is not None:
        from .transform import embed_truncated

        embed_rows = lambda X: embed_truncated(est, X, dims, order=order)  # noqa: E731 (per row: streams)
    source = _open_for_model(data)
    label = est.preprocessor_.label
    if not (source.kind == "table" and label and label in source.columns):
        label = None
    labels: list[Any] = []
    if label is not None:  # the streaming generators carry id columns only; take the label beside each batch
        embed_codes = embed_rows

        def embed_rows(X):  # noqa: F811 (called once per batch, just before the batch is yielded)
            labels.append(X[label].reset_index(drop=True))
            return embed_codes(X)
    width = [0]

    def frames(rank: int, world_size: int):
        for ids, Z in iter_embeddings(est, source, embed=embed_rows, rank=rank, world_size=world_size):
            width[0] = Z.shape[1]
            frame = _with_ids(ids, pd.DataFrame(Z, columns=[f"z{i}" for i in range(Z.shape[1])]))
            if label is not None:
                frame[label] = labels.pop(0).to_numpy()
            yield frame, Z
    n = write_outputs(out, frames, source.n_rows)
    _echo(f"wrote {n} embeddings of size {width[0]} to {out}" + (f" (with the label column {label!r})"
                                                                  if label is not None and out.suffix != ".npy" else ""))


@app.command()
def align(
    old_model: Annotated[Path, typer.Argument(metavar="OLD_MODEL", show_default=False, help="The old model directory (its embeddings are the gallery).")],
    new_model: Annotated[Path, typer.Argument(metavar="NEW_MODEL", show_default=False, help="The new model directory.")],
    data: Annotated[str, typer.Argument(metavar="DATA", show_default=False, help="Data both models embed, to fit the map on.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", show_default=False, help="Alignment directory to write.")],
    method: Annotated[str, typer.Option(metavar="orthogonal|linear|extension", help="orthogonal (Procrustes), linear (ridge) or extension.")] = "orthogonal",
    device: Device = "cpu",
) -> None:
    """Fit a map from the new model's embeddings to the old model's, so new embeddings can be
    searched against an old gallery (use it with 'embed --compatible-with')."""
    from .artifacts import manifest_name
    from .fsutil import check_output_dir, check_output_path
    from .transform import align_models

    check_output_path(out, [old_model, new_model, data], folder=True)
    check_output_dir(out, marker=manifest_name("alignment"))
    _say_if_replacing(out, manifest_name("alignment"), "alignment")
    old, new = _load_model(old_model, device), _load_model(new_model, device)
    ds, _ = _load_for_model(old, data)
    alignment = align_models(old, new, ds.X, method=method)
    alignment.save(out)
    _echo(f"saved a {method} alignment ({alignment.d_new} → {alignment.d_old} dims, fit error "
          f"{alignment.fit_error:.4g}) to {out}")


@app.command()
def reconstruct(
    model: ModelDir,
    data: Annotated[str, typer.Argument(metavar="DATA", show_default=False, help="Data to reconstruct.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", show_default=False, help="Output .parquet/.csv (tables) or .npy.")],
    device: Device = "cpu",
) -> None:
    """Encode and decode DATA; tables come back in their original columns. File inputs are
    streamed in bounded chunks and the output written as they come."""
    import pandas as pd

    from .estimator.streaming import check_outputs, iter_reconstructions, write_outputs

    check_outputs(out)
    _check_output(out, data, model)
    est = _load_model(model, device)
    if est.preprocessor_.kind != "table":
        check_outputs(out, (".npy",))
    source = _open_for_model(data)
    chunks = lambda rank, world_size: (  # noqa: E731
        _with_ids(ids, rec) if isinstance(rec, pd.DataFrame) else (None, rec)
        for ids, rec in iter_reconstructions(est, source, rank=rank, world_size=world_size))
    n = write_outputs(out, chunks, source.n_rows)
    _echo(f"wrote {n} reconstructions to {out}")


@app.command()
def generate(
    model: ModelDir,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", show_default=False, help="Output .parquet/.csv (tables) or .npy.")],
    n: Annotated[int, typer.Option("--n", "-n", help="How many samples.")] = 16,
    sampler: Annotated[str | None, typer.Option(metavar="prior|gmm|dpmm|empirical|two_stage|maf", help="How to sample codes.  [default: the model's]")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the samples.")] = 0,
    device: Device = "cpu",
) -> None:
    """Generate N new rows or images."""
    import pandas as pd

    _data().check_output_file(out)
    _check_output(out, model)
    est = _load_model(model, device)
    samples = est.sample(n, seed=seed, sampler=sampler)
    if isinstance(samples, pd.DataFrame):
        _data().write_output(out, samples)
    else:
        _data().check_output_file(out, (".npy",))
        _data().write_output(out, None, samples)
    _echo(f"wrote {n} samples to {out}")


@app.command()
def score(
    model: ModelDir,
    data: Annotated[str, typer.Argument(metavar="DATA", show_default=False, help="Data to score.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", show_default=False, help="Output .parquet, .csv or .npy.")],
    kind: Annotated[str, typer.Option("--score", metavar="KIND", help="recon, mahalanobis, combined; bae also expected_recon, predictive_variance.")] = "combined",
    contamination: Annotated[float, typer.Option(help="Expected outlier share; sets the is_outlier threshold.")] = 0.1,
    split: Split = "all",
    device: Device = "cpu",
) -> None:
    """Per-row anomaly score (higher = more anomalous) and an is_outlier flag; ids carried through.
    The threshold comes from the training scores saved with the model. File inputs are streamed in
    bounded chunks and the output written as they come (with --split val, DATA is read whole)."""
    import pandas as pd

    from .estimator import AnomalyDetector
    from .estimator.streaming import check_outputs, iter_scores, write_outputs

    check_outputs(out)
    _check_output(out, data, model)
    est = _load_model(model, device)
    detector = AnomalyDetector.from_autoencoder(est, score=kind, contamination=contamination)
    if split == "all":
        source = _open_for_model(data)
    else:
        source = _data().open_source(_held_out(est, _data().load_dataset(data), model, split))
    outliers = [0]

    def frames(rank: int, world_size: int):
        for ids, s in iter_scores(detector, source, rank=rank, world_size=world_size):
            flags = s > detector.threshold_
            outliers[0] += int(flags.sum())
            yield _with_ids(ids, pd.DataFrame({"score": s, "is_outlier": flags})), s
    n = write_outputs(out, frames, source.n_rows)
    _echo(f"wrote {n} {kind} scores to {out} (higher = more anomalous; "
          f"{outliers[0]} above the threshold {detector.threshold_:.4g})")


@app.command()
def evaluate(
    model: ModelDir,
    data: Annotated[str, typer.Argument(metavar="DATA", show_default=False, help="Data to evaluate on: held-out data, or the fit data with --split val.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="FILE", help="Also write the metrics to this .json file.  [default: stdout only]")] = None,
    split: Split = "all",
    label: Label = None,
    id_column: IdColumns = None,
    column_type: ColumnTypes = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated samples and the probe's folds.")] = 0,
    device: Device = "cpu",
) -> None:
    """Every metric that applies to the model on DATA (the same set as compare): reconstruction,
    generation, cross-validated probe and clustering with labels, latent health. The model's label
    and id columns are used unless --label / --id-column name others; --column-type can only leave
    columns out (id or ignore): the model's other column roles were fixed at fit time."""
    if out is not None:
        _data().check_output_file(out, (".json",))
        _check_output(out, data, model)
    roles = _parse_pairs(column_type, "--column-type")
    for name, role in roles.items():
        if role not in ("id", "ignore"):
            raise InputError(f"--column-type {name}={role}: evaluate can only leave columns out (id or ignore); "
                             f"the model's other column roles were fixed at fit time.")
    est = _load_model(model, device)
    ds, _ = _load_for_model(est, data, label, (*(id_column or ()), *roles))
    ds = _held_out(est, ds, model, split)
    from .workflows import evaluate_estimator

    metrics, _ = evaluate_estimator(est, ds, seed=seed)
    text = json.dumps({"n": len(ds), "split": split, **metrics}, indent=2, default=float)
    typer.echo(text)
    if out is not None:
        from .fsutil import atomic_write

        atomic_write(out, text.encode())
        _echo(f"wrote the metrics to {out}")


def _print_leaderboard(board: pd.DataFrame, title: str, columns: dict[str, str]) -> None:
    """The leaderboard's ``columns`` (name → header) as a rich table on stdout, failures on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    shown = {c: h for c, h in columns.items() if c in board.columns}
    for header in shown.values():
        table.add_column(header)
    for rec in board.to_dict(orient="records"):
        table.add_row(*[f"{rec[c]:.4g}" if isinstance(rec[c], float) else str(rec[c]) for c in shown])
    Console().print(table)
    failed = board.loc[board["runs_failed"] > 0, ["model", "errors"]] if "runs_failed" in board else []
    for _, row in (failed.iterrows() if len(failed) else []):
        _echo(f"failed runs of {row['model']}: {row['errors']}")


def _say_run_folder(out: Path) -> None:
    """Where a comparison's outputs went (stderr: stdout holds the table)."""
    _echo(f"wrote {out / 'leaderboard.csv'}, {out / 'leaderboard.json'}, the models and test embeddings under "
          f"{out / 'runs'} and {out / 'report.html'}")


@app.command()
def compare(
    config: Annotated[Path | None, typer.Argument(metavar="CONFIG", show_default=False, help="YAML/JSON comparison config (see docs/compare.md); flags override it.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Comparison folder (resumed if it exists).")] = Path("runs/compare"),
    dataset: Annotated[str | None, typer.Option(help=_d("Dataset (built-in name or file).", "digits"))] = None,
    models: Annotated[str | None, typer.Option(metavar="NAMES", help=_d("Comma-separated model names.", "ae,vae,swae"))] = None,
    seeds: Annotated[str | None, typer.Option(metavar="SEEDS", help=_d("Comma-separated seeds, e.g. 0,1,2.", "0"))] = None,
    label: Label = None,
    id_column: IdColumns = None,
    column_type: ColumnTypes = None,
    test_fraction: Annotated[float | None, typer.Option(help=_d("Share of rows in the test split.", 0.2))] = None,
    split_seed: Annotated[int | None, typer.Option(help=_d("Seed of the train/test split.", 0))] = None,
    latent_dim: LatentDim = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Lr = None,
    weight_decay: WeightDecay = None,
    schedule: Schedule = None,
    warmup_steps: WarmupSteps = None,
    grad_clip: GradClip = None,
    patience: Patience = None,
    val_fraction: ValFraction = None,
    device: TrainDevice = None,
    threads: Threads = None,
    precision: Precision = None,
    compile: Compile = False,
    param: Annotated[list[str] | None, typer.Option(
        "--param", metavar="KEY=VALUE", help="Any other shared estimator option (repeatable), e.g. hidden=64,32.  [default: none]")] = None,
    jobs: Annotated[int, typer.Option(help="Runs in parallel processes (threads are split between them).")] = 1,
    mlflow_uri: MlflowUri = None,
    quiet: Quiet = False,
) -> None:
    """Train every model x seed on one split, evaluate every metric that applies, and write
    leaderboard.csv/json and report.html. Re-running the same command resumes. Training options
    given here are shared by every model (a model's own entry in CONFIG still wins)."""
    from .config import read_config_file
    from .workflows import load_compare_config, run_compare

    values: dict[str, Any] = read_config_file(config) if config is not None else {}
    top = {"dataset": dataset, "label": label, "test_fraction": test_fraction, "split_seed": split_seed,
           "models": None if models is None else [{"model": m.strip()} for m in models.split(",") if m.strip()],
           "seeds": None if seeds is None else list(_parse_ints(seeds, "--seeds")),
           "id_columns": list(id_column) if id_column else None}
    values.update({k: v for k, v in top.items() if v is not None})
    shared = dict(values.get("shared") or {})
    shared.update(_parse_pairs(param, "--param"))
    shared.update(_train_flags(latent_dim=latent_dim, epochs=epochs, batch_size=batch_size, lr=lr,
                               weight_decay=weight_decay, schedule=schedule, warmup_steps=warmup_steps,
                               grad_clip=grad_clip, patience=patience, val_fraction=val_fraction, device=device,
                               threads=threads, precision=precision, compile=compile))
    if column_type:
        shared["column_types"] = {**dict(shared.get("column_types") or {}),
                                  **_parse_pairs(column_type, "--column-type")}
    values["shared"] = shared
    tracking = _tracking(mlflow_uri, run_compare, "run_compare")
    if (out / "compare.json").is_file():
        _echo(f"resuming the comparison in {out}: finished runs with unchanged settings are kept.")
    with _progress(quiet):
        board = run_compare(load_compare_config(values), out, jobs=jobs, progress=False if quiet else None,
                            **tracking)
    _print_leaderboard(board, f"leaderboard ({out / 'leaderboard.csv'})",
                       {c: c for c in ("model", "runs_ok", "recon_mse", "probe_acc", "gen_sw", "active_units")})
    _say_run_folder(out)
    typer.echo(f"report: {out / 'report.html'}")


@app.command()
def demo(
    dataset: Annotated[str, typer.Option(help="Built-in dataset or file.")] = "digits",
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Run folder to write (resumed if it exists).")] = Path("runs/demo"),
    epochs: Annotated[int | None, typer.Option(help=_d("Training epochs per model (auto: 100 for images, ~1,000 steps for tables).", "auto"))] = None,
    latent_dim: LatentDim = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the models.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Train ae, vae and swae on DATASET with the same network and budget (a preset of compare)
    and write the models, test embeddings, the leaderboard and report.html."""
    from .workflows import run_demo

    shared = {k: v for k, v in (("epochs", epochs), ("latent_dim", latent_dim)) if v is not None}
    with _progress(quiet):
        board = run_demo(dataset, out, seed=seed, verbose=False if quiet else None, **shared)
    _print_leaderboard(board, f"latentforge demo on {dataset} (test split)",
                       {"model": "model", "recon_mse": "recon MSE", "probe_acc": "linear probe",
                        "gen_sw": "generation SW₂", "epochs_run": "epochs", "train_seconds": "seconds"})
    _say_run_folder(Path(out))
    typer.echo(f"report: {Path(out) / 'report.html'}")


@app.command()
def models() -> None:
    """List the models with their hyper-parameters and defaults."""
    from .models import MODELS

    for name, cls in MODELS.items():
        typer.echo(f"{name:<14} {cls.describe()}")


@app.command()
def datasets() -> None:
    """List the built-in datasets."""
    from .data.catalog import DESCRIPTIONS

    for name, description in DESCRIPTIONS.items():
        typer.echo(f"{name:<14} {description}")


# -- sparse autoencoders on model activations --------------------------------------------------
sae_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Sparse autoencoders on model activations: fit, evaluate, inspect.")
app.add_typer(sae_app, name="sae")


@app.command()
def activations(
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL_DIR", show_default=False, help="A local Hugging Face model directory (save_pretrained; loaded offline).")],
    layer: Annotated[str, typer.Option(help="Module whose output is stored, e.g. encoder.layer.3 or h.5.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Activations directory to write (sharded safetensors).")],
    text: Annotated[Path | None, typer.Option(help="Text file: one document per non-empty line.  [default: none]")] = None,
    dataset: Annotated[Path | None, typer.Option(help="Parquet file or folder holding the documents.  [default: none]")] = None,
    column: Annotated[str | None, typer.Option(help="With --dataset: the text column. [default: the only string column]")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 32,
    max_length: Annotated[int, typer.Option(help="Tokens per window; longer texts are cut into several windows.")] = 128,
    shard_tokens: Annotated[int, typer.Option(help="Tokens per safetensors shard.")] = 262_144,
    dtype: Annotated[str, typer.Option(help="Stored dtype: float32, float16 or bfloat16.")] = "float32",
    keep_special: Annotated[bool, typer.Option("--keep-special", help="Also store special tokens ([CLS], [SEP], BOS...).")] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    quiet: Quiet = False,
) -> None:
    """Run documents through MODEL_DIR and store the activations at --layer for every token
    (padding and special tokens left out), with token ids and positions, streaming in bounded memory."""
    from .sae import extract_activations, read_texts

    if (text is None) == (dataset is None):
        raise InputError("give the documents with exactly one of --text FILE or --dataset PARQUET.")
    if column is not None and dataset is None:
        raise InputError("--column applies to --dataset only.")
    from .fsutil import check_output_path

    check_output_path(out, [p for p in (model_dir, text, dataset) if p is not None], folder=True)
    texts = read_texts(text) if text is not None else read_texts(dataset, column=column)
    store = extract_activations(model_dir, layer, texts, out, batch_size=batch_size, max_length=max_length,
                                shard_tokens=shard_tokens, dtype=dtype, keep_special=keep_special, device=device,
                                progress=False if quiet else None)
    m = store.manifest
    _echo(f"wrote {m['n_tokens']} activations of size {m['d']} ({m['n_sequences']} windows of {m['n_texts']} "
          f"texts, layer {m['layer']}) to {out}")


@sae_app.command("fit")
def sae_fit(
    data: Annotated[str, typer.Argument(metavar="DATA", show_default=False, help="Activations: a 'latentforge activations' directory, safetensors, Parquet or .npy.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="SAE directory to write.")],
    architecture: Annotated[str, typer.Option(help="topk, batchtopk, jumprelu, relu or matryoshka.")] = "topk",
    n_features: Annotated[int | None, typer.Option(help="Dictionary size. [default: 8 × the activation size]")] = None,
    k: Annotated[int, typer.Option(help="Active latents per token (topk; batchtopk and matryoshka: on average).")] = 32,
    l1_coefficient: Annotated[float | None, typer.Option(help="relu: L1 weight. [default: 1]")] = None,
    l0_coefficient: Annotated[float | None, typer.Option(help="jumprelu: L0 weight. [default: 1]")] = None,
    prefixes: Annotated[str | None, typer.Option(help="matryoshka: nested sizes, comma-separated, ending at n_features. [default: F/16,F/8,F/4,F/2,F]")] = None,
    dead_tokens: Annotated[int | None, typer.Option(help="Tokens a latent must stay silent to count as dead (AuxK). [default: a twentieth of the run, ≤ 10M]")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the activations.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Tokens per step.")] = 4096,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (Adam). [default: 1.3e-3·√(16384/F), in [1e-4, 3e-3]]")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="LR warm-up steps. [default: 5% of the run, ≤ 1000]")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of tokens held out (seeded hash of the row index).")] = 0.02,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="CPU threads. [default: PyTorch's]")] = None,
    precision: Annotated[str, typer.Option(help="fp32, bf16 or fp16 (autocast).")] = "fp32",
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its checkpoint (OUT.checkpoint).")] = False,
    checkpoint_every: Annotated[int | None, typer.Option(help="Save a checkpoint every N steps. [default: at epoch ends, at most ~5% of the run]")] = None,
    keep_checkpoints: Annotated[bool, typer.Option("--keep-checkpoints", help="Keep OUT.checkpoint after the run.")] = False,
    quiet: Quiet = False,
) -> None:
    """Train a sparse autoencoder on DATA (streamed in bounded chunks) and save it to --out; the run
    is checkpointed beside the output and a killed run continues with --resume; works under torchrun."""
    from .artifacts import manifest_name
    from .fsutil import check_output_dir, check_output_path
    from .sae import SparseAutoencoder

    check_output_path(out, [data], folder=True)
    check_output_dir(out, marker=manifest_name("sae"))
    _say_if_replacing(out, manifest_name("sae"), "SAE")
    sae = SparseAutoencoder(
        architecture, n_features, k=k, l1_coefficient=l1_coefficient, l0_coefficient=l0_coefficient,
        prefixes=None if prefixes is None else _parse_ints(prefixes, "--prefixes"), dead_tokens=dead_tokens,
        epochs=epochs, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, val_fraction=val_fraction, seed=seed,
        device=device, threads=threads, precision=precision, checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints, verbose=False if quiet else None)
    checkpoint = out.parent / f"{out.name}.checkpoint"
    if resume and not (checkpoint / "checkpoint.json").is_file():
        raise InputError(f"--resume: there is no checkpoint at {checkpoint} to resume from.")
    with _progress(quiet):
        sae.fit(data, checkpoint=checkpoint, resume=resume)
    from .train.distributed import context, finish

    ctx = context()
    if ctx.is_main:
        sae.save(out)
    finish(ctx)
    if ctx.is_main:
        m = sae.metrics_
        where = "training-sample" if m.get("measured_on") == "training sample" else "held-out"
        _echo(f"saved a {architecture} SAE with {sae.module_.n_features} features to {out} ({where} FVU "
              f"{m['fvu']:.4f}, L0 {m['l0']:.1f}, dead {m['dead_fraction']:.1%})")


@sae_app.command("evaluate")
def sae_evaluate(
    sae_dir: Annotated[Path, typer.Argument(metavar="SAE_DIR", show_default=False, help="SAE directory from 'latentforge sae fit'.")],
    data: Annotated[str, typer.Argument(metavar="DATA", show_default=False, help="Held-out activations (same kinds of input as 'sae fit').")],
    max_tokens: Annotated[int, typer.Option(help="Tokens measured at most.")] = 1_000_000,
    text: Annotated[Path | None, typer.Option(help="Documents (one per line) for downstream fidelity: the reconstruction is spliced into the model of the activations directory.  [default: none]")] = None,
    max_texts: Annotated[int, typer.Option(help="With --text: documents used at most.")] = 256,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file.  [default: stdout only]")] = None,
    device: Device = "cpu",
) -> None:
    """Held-out FVU, explained variance, MSE, L0, dead and dense fractions of an SAE; with --text,
    how much of the model's output is kept when its activations are replaced by the reconstruction."""
    import itertools

    from .fsutil import atomic_write
    from .sae import SparseAutoencoder, downstream_fidelity, is_activations_dir, open_activations, read_texts

    _check_output(json_out, sae_dir, data, text)
    sae = SparseAutoencoder.load(sae_dir, device=device)
    result = sae.evaluate(data, max_tokens=max_tokens)
    if text is not None:
        if not is_activations_dir(data):
            raise InputError("--text needs DATA to be an activations directory (it names the model and layer).")
        m = open_activations(data).manifest
        texts = list(itertools.islice(read_texts(text), max_texts))
        result["downstream"] = downstream_fidelity(m["model"], m["layer"], texts, sae.reconstruct_torch,
                                                   max_length=m["max_length"], keep_special=m["keep_special"],
                                                   device=device)
    for key in ("tokens", "fvu", "explained_variance", "mse", "l0", "dead_fraction", "dense_fraction"):
        typer.echo(f"{key:<20} {result[key]:.6g}")
    for key, value in result.get("downstream", {}).items():
        typer.echo(f"{key:<20} {value:.6g}" if isinstance(value, float) else f"{key:<20} {value}")
    if json_out is not None:
        atomic_write(json_out, json.dumps(_strict_json(result), indent=2, allow_nan=False).encode())
        _echo(f"wrote the figures to {json_out}")


def _strict_json(value: Any) -> Any:
    """``value`` with non-finite floats as null, so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict_json(v) for v in value]
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    return value


@sae_app.command("inspect")
def sae_inspect(
    sae_dir: Annotated[Path, typer.Argument(metavar="SAE_DIR", show_default=False, help="SAE directory from 'latentforge sae fit'.")],
    activations_dir: Annotated[Path, typer.Argument(metavar="ACTIVATIONS_DIR", show_default=False, help="Activations directory from 'latentforge activations'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")],
    max_tokens: Annotated[int, typer.Option(help="Tokens scanned for densities and top contexts.")] = 200_000,
    top_contexts: Annotated[int, typer.Option(help="Top-activating contexts kept per feature.")] = 10,
    features: Annotated[int | None, typer.Option(help="Give full detail to the N most frequent features only. [default: all]")] = None,
    device: Device = "cpu",
) -> None:
    """Write a self-contained, searchable and sortable feature browser: per feature its density, an
    activation histogram, the top-activating contexts with the token highlighted, and its nearest
    features by decoder cosine."""
    from .sae import SparseAutoencoder, open_activations, write_feature_browser

    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out must be an .html file, got {out}.")
    _check_output(out, sae_dir, activations_dir)
    sae = SparseAutoencoder.load(sae_dir, device=device)
    store = open_activations(activations_dir)
    write_feature_browser(out, encode=lambda x: sae.transform(x), components=sae.components_, store=store,
                          max_tokens=max_tokens, top_contexts=top_contexts, features=features,
                          title=f"SAE features: {sae_dir.name}")
    _echo(f"wrote the feature browser ({sae.module_.n_features} features) to {out}")


# -- entry point -----------------------------------------------------------------------------
def _click() -> Any:
    """The click that typer runs on: its vendored copy (typer ≥ 0.2x) or the click package."""
    try:
        from typer import _click as click  # noqa: PLC2701 (typer's own; there is no public alias)
    except ImportError:  # older typer depends on click itself
        import click
    return click


def _usage_sentence(exc: Any) -> str:
    """A click usage error as the CLI's one sentence: which command, what is wrong, where help is."""
    click = _click()
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "latentforge"
    param = getattr(exc, "param", None)
    if isinstance(exc, click.exceptions.MissingParameter) and param is not None:
        if param.param_type_name == "argument":
            what = f"argument {(getattr(param, 'metavar', None) or param.name.upper()).strip('[]')}"
        else:
            what = f"option {max(param.opts, key=len)}"
        message = f"missing {what}"
    else:
        message = " ".join(exc.format_message().split()).rstrip(".")
        message = message[:1].lower() + message[1:]
    return f"{command}: {message}; see '{command} --help'."


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) the status code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    click = _click()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = lambda message, *_, **__: _echo(f"warning: {message}")  # one line, no source dump
            # standalone_mode=False: usage errors come back as exceptions, so they get the same one
            # line as every other bad input instead of click's (or typer's boxed) multi-line text
            status = app(args=args, prog_name="latentforge", standalone_mode=False)
        return status if isinstance(status, int) else 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare `latentforge` or `latentforge sae`: the help
        typer.echo(exc.ctx.get_help())
        return exc.exit_code
    except click.exceptions.UsageError as exc:
        if debug:
            raise
        _echo(f"error: {_usage_sentence(exc)}")
        return 2
    except typer.Abort:
        _echo("aborted; nothing was written.")
        return 1
    except InputError as exc:
        if debug:
            raise
        _echo(f"error: {_one_line(exc)}")
        return 2
    except TrainingDivergedError as exc:
        if debug:
            raise
        _echo(f"error: training diverged: {_one_line(exc)}")
        return EXIT_DIVERGED
    except (_Interrupted, KeyboardInterrupt) as exc:
        _echo(str(exc) if isinstance(exc, _Interrupted) and str(exc) else "interrupted; nothing was written.")
        return 130
    except Exception as exc:  # a bug: say so briefly, keep the traceback for --debug
        if debug:
            raise
        if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRORS:
            # the machine refused the write (full disk, quota, read-only): the atomic writers have
            # removed their temporaries and left any earlier output as it was
            where = f" writing {exc.filename}" if exc.filename else ""
            _echo(f"error: {os.strerror(exc.errno)}{where}; nothing was written and any earlier output is unchanged.")
            return 2
        _echo(f"internal error: {type(exc).__name__}: {_one_line(exc)} (run again with --debug for the traceback).")
        return 1


#: errno values of a write the machine refused: a full disk, a full quota, a read-only file system
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _one_line(exc: BaseException) -> str:
    """The message on one line, whatever a library put in it (a safety net: messages are written as one sentence)."""
    return " ".join(str(exc).split())


def entry_point() -> None:
    """The ``latentforge`` command (and ``python -m latentforge``): run, then exit with the status."""
    status = main()
    # Interpreter shutdown ends with a garbage collection over every object PyTorch, scikit-learn
    # and pandas created at import: 1-2 s of a small table's fit command on a 2-core
    # machine. Frozen objects are skipped by it; atexit handlers still run and every file this
    # command wrote was closed when it was written.
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    entry_point()
