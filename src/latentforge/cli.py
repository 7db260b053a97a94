"""Command-line interface: parse flags, call the estimator or a workflow, print — no business logic.

Commands: ``latentforge fit | embed | align | reconstruct | generate | score | evaluate | compare | demo | models | datasets``,
``latentforge activations`` and ``latentforge sae fit | evaluate | inspect``.

Exit status: 0 success, 2 bad input (one sentence naming the culprit), 3 training diverged (the
last good model is saved when an epoch had finished), 130 interrupted (Ctrl-C), 1 internal error.
``--debug`` (anywhere on the line) shows the full traceback instead. See docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from typer.core import TyperGroup

from .config import ARCHITECTURE_DEFAULTS as ARCH
from .config import DEFAULT_LATENT_DIM, DEFAULT_MODEL, DEFAULTS
from .errors import InputError, TrainingDivergedError


class _Interrupted(Exception):
    """Ctrl-C, carried past typer (which would turn the KeyboardInterrupt into a silent exit 130)."""


class _Group(TyperGroup):
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupted() from exc


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=_Group,
                  help="Autoencoder-based representation learning: fit, embed, generate, score, evaluate.")

#: exit status of a run whose training diverged (0 ok, 1 internal error, 2 bad input, 130 Ctrl-C)
EXIT_DIVERGED = 3

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Device = Annotated[str, typer.Option(help="Device to load the model on: auto, cpu or cuda.")]


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


def _load_for_model(est: Any, source: str):
    """Load DATA for an existing model: the whole table (known id/label columns pass through)."""
    from .data import load_dataset

    data = load_dataset(source)
    ids = data.ids
    if data.kind == "table":
        pre = est.preprocessor_
        present = [c for c in pre.id_columns if c in data.X.columns]
        ids = data.X[present].reset_index(drop=True) if present else None
        if pre.label and pre.label in data.X.columns and data.y is None:
            data.y = data.X[pre.label].to_numpy()
    return data, ids


def _with_ids(ids: pd.DataFrame | None, frame: pd.DataFrame) -> pd.DataFrame:
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


# -- commands --------------------------------------------------------------------------------
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


@app.command()
def fit(
    data: Annotated[str | None, typer.Argument(help="Built-in dataset name, CSV/Parquet/.npy/.npz file or image folder (or 'data:' in --config).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Model directory to write (required).")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML/JSON file of parameters; flags override it.")] = None,
    model: Annotated[str | None, typer.Option(help=f"Model name (see 'latentforge models'). [default: {DEFAULT_MODEL}]")] = None,
    latent_dim: Annotated[int | None, typer.Option(help=f"Embedding size. [default: {DEFAULT_LATENT_DIM}]")] = None,
    epochs: Annotated[int | None, typer.Option(help=f"Training epochs. [default: {DEFAULTS.epochs}]")] = None,
    batch_size: Annotated[int | None, typer.Option(help=f"Rows per step. [default: {DEFAULTS.batch_size}]")] = None,
    lr: Annotated[float | None, typer.Option(help=f"Learning rate (AdamW). [default: {DEFAULTS.lr:g}]")] = None,
    weight_decay: Annotated[float | None, typer.Option(help=f"AdamW weight decay. [default: {DEFAULTS.weight_decay:g}]")] = None,
    hidden: Annotated[str | None, typer.Option(help=f"Hidden widths, comma-separated; 'none' (or '' or 0) for a linear encoder and decoder. [default: {','.join(map(str, ARCH['hidden']))}]")] = None,
    architecture: Annotated[str | None, typer.Option(help=f"auto, mlp or conv. [default: {ARCH['kind']}]")] = None,
    norm: Annotated[str | None, typer.Option(help=f"none, batch or layer. [default: {ARCH['norm']}]")] = None,
    val_fraction: Annotated[float | None, typer.Option(help=f"Share of rows held out for validation. [default: {DEFAULTS.val_fraction:g}]")] = None,
    sampler: Annotated[str | None, typer.Option(help="Default sampler: auto, prior, gmm, dpmm, empirical. [default: auto]")] = None,
    label: Annotated[str | None, typer.Option(help="Label column (left out of training).")] = None,
    id_column: Annotated[list[str] | None, typer.Option(help="Identifier column(s), carried through to outputs.")] = None,
    column_type: Annotated[list[str] | None, typer.Option(help="Override a column's role: NAME=numeric|categorical|id|ignore.")] = None,
    param: Annotated[list[str] | None, typer.Option(help="Model hyper-parameter or training option KEY=VALUE, e.g. beta=4, patience=5 or lr=1e-3.")] = None,
    seed: Annotated[int | None, typer.Option(help=f"Random seed (initialisation, shuffling, split). [default: {DEFAULTS.seed}]")] = None,
    device: Annotated[str | None, typer.Option(help=f"auto, cpu or cuda. [default: {DEFAULTS.device}]")] = None,
    prior_selection: Annotated[str | None, typer.Option(help="bae: dswd or none (same as --param prior_selection=...).")] = None,
    posterior_samples: Annotated[int | None, typer.Option(help="bae: weight samples kept (same as --param posterior_samples=...).")] = None,
    invariance: Annotated[list[str] | None, typer.Option(help="Invariance term TRANSFORM:WEIGHT[:STRENGTH], e.g. noise:1.0.")] = None,
    compatible_with: Annotated[Path | None, typer.Option(help="Old model directory: train with a compatibility loss towards it.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed run from its checkpoint (OUT.checkpoint).")] = False,
    checkpoint_every: Annotated[int | None, typer.Option(help="Save a checkpoint every N steps. [default: every epoch]")] = None,
    keep_checkpoints: Annotated[bool, typer.Option("--keep-checkpoints", help="Keep OUT.checkpoint after the run.")] = False,
    threads: Annotated[int | None, typer.Option(help="CPU threads for training. [default: PyTorch's]")] = None,
    precision: Annotated[str | None, typer.Option(help=f"fp32, bf16 or fp16 (autocast). [default: {DEFAULTS.precision}]")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the loss (opt-in).")] = False,
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
    flags = {"model": model, "latent_dim": latent_dim, "epochs": epochs, "batch_size": batch_size, "lr": lr,
             "weight_decay": weight_decay, "architecture": architecture, "norm": norm, "val_fraction": val_fraction,
             "sampler": sampler, "label": label, "seed": seed, "device": device, "threads": threads,
             "precision": precision, "checkpoint_every": checkpoint_every,
             "keep_checkpoints": keep_checkpoints or None, "compile": compile or None,
             "hidden": None if hidden is None else () if hidden.strip().lower() in ("", "0", "none") else _parse_ints(
                 hidden, "--hidden"),
             "id_columns": tuple(id_column) if id_column else None,
             "column_types": _parse_pairs(column_type, "--column-type") or None}
    flags.update(prior_selection=prior_selection, posterior_samples=posterior_samples)
    params.update({k: v for k, v in flags.items() if v is not None})
    pairs = _parse_pairs(param, "--param")  # model hyper-parameters and training options, as text
    _check_parameter_names({"model": params.get("model", DEFAULT_MODEL), **pairs}, "--param")
    params.update(pairs)
    data = data or params.pop("data", None)
    params.pop("data", None)
    if data is None:
        raise InputError("no data given: pass DATA or set 'data:' in the --config file.")
    data = str(data)
    if out is None:
        raise InputError("no output given: pass --out DIR.")
    if quiet:
        params["verbose"] = False
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
    model: Annotated[Path, typer.Argument(help="Model directory.")],
    data: Annotated[str, typer.Argument(help="Data to embed (same kind and columns as at fit time).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .parquet, .csv or .npy.")],
    dims: Annotated[int | None, typer.Option(help="Keep only the first DIMS units (sliceable embeddings).")] = None,
    order: Annotated[str, typer.Option(help="With --dims: auto (matryoshka prefixes, else PCA order), native or pca.")] = "auto",
    compatible_with: Annotated[Path | None, typer.Option(help="Alignment directory from 'latentforge align': "
                                                              "write codes in the old model's space.")] = None,
    device: Device = "cpu",
) -> None:
    """Write embeddings of DATA (id columns carried through). File inputs (Parquet, CSV, .npy,
    safetensors, image folders) are streamed in bounded chunks and the output written as they come."""
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
    width = [0]

    def frames(rank: int, world_size: int):
        for ids, Z in iter_embeddings(est, source, embed=embed_rows, rank=rank, world_size=world_size):
            width[0] = Z.shape[1]
            yield _with_ids(ids, pd.DataFrame(Z, columns=[f"z{i}" for i in range(Z.shape[1])])), Z
    n = write_outputs(out, frames, source.n_rows)
    _echo(f"wrote {n} embeddings of size {width[0]} to {out}")


@app.command()
def align(
    old_model: Annotated[Path, typer.Argument(help="The old model directory (its embeddings are the gallery).")],
    new_model: Annotated[Path, typer.Argument(help="The new model directory.")],
    data: Annotated[str, typer.Argument(help="Data both models embed, to fit the map on.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Alignment directory to write.")],
    method: Annotated[str, typer.Option(help="orthogonal (Procrustes), linear (ridge) or extension.")] = "orthogonal",
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
    model: Annotated[Path, typer.Argument(help="Model directory.")],
    data: Annotated[str, typer.Argument(help="Data to reconstruct.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .parquet/.csv (tables) or .npy.")],
    device: Device = "cpu",
) -> None:
    """Encode and decode DATA; tables come back in their original columns. File inputs are
    streamed in bounded chunks and the output written as they come."""
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
    model: Annotated[Path, typer.Argument(help="Model directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .parquet/.csv (tables) or .npy.")],
    n: Annotated[int, typer.Option("--n", "-n", help="How many samples.")] = 16,
    sampler: Annotated[str | None, typer.Option(help="prior, gmm, dpmm or empirical (default: the model's).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: Device = "cpu",
) -> None:
    """Generate N new rows or images."""
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
    model: Annotated[Path, typer.Argument(help="Model directory.")],
    data: Annotated[str, typer.Argument(help="Data to score.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .parquet, .csv or .npy.")],
    kind: Annotated[str, typer.Option("--score", help="recon, mahalanobis, combined; bae also expected_recon, predictive_variance.")] = "combined",
    contamination: Annotated[float, typer.Option(help="Expected outlier share; sets the is_outlier threshold.")] = 0.1,
    device: Device = "cpu",
) -> None:
    """Per-row anomaly score (higher = more anomalous) and an is_outlier flag; ids carried through.
    The threshold comes from the training scores saved with the model. File inputs are streamed in
    bounded chunks and the output written as they come."""
    from .estimator import AnomalyDetector
    from .estimator.streaming import check_outputs, iter_scores, write_outputs

    check_outputs(out)
    _check_output(out, data, model)
    est = _load_model(model, device)
    detector = AnomalyDetector.from_autoencoder(est, score=kind, contamination=contamination)
    source = _open_for_model(data)
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
    model: Annotated[Path, typer.Argument(help="Model directory.")],
    data: Annotated[str, typer.Argument(help="Held-out data to evaluate on.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the metrics as JSON.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated samples and the probe's folds.")] = 0,
    device: Device = "cpu",
) -> None:
    """Every metric that applies to the model on DATA (the same set as compare): reconstruction,
    generation, cross-validated probe and clustering with labels, latent health."""
    from .workflows import evaluate_estimator

    if out is not None:
        _data().check_output_file(out, (".json",))
        _check_output(out, data, model)
    est = _load_model(model, device)
    ds, _ = _load_for_model(est, data)
    metrics, _ = evaluate_estimator(est, ds, seed=seed)
    text = json.dumps({"n": len(ds), **metrics}, indent=2, default=float)
    typer.echo(text)
    if out is not None:
        from .fsutil import atomic_write

        atomic_write(out, text.encode())


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


@app.command()
def compare(
    config: Annotated[Path | None, typer.Argument(help="YAML/JSON comparison config (see docs/compare.md).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Comparison folder (resumed if it exists).")] = Path("runs/compare"),
    dataset: Annotated[str | None, typer.Option(help="Dataset, if no config (or to override it).")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated model names, if no config.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds, e.g. 0,1,2.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Shared training budget.")] = None,
    latent_dim: Annotated[int | None, typer.Option(help="Shared latent size.")] = None,
    jobs: Annotated[int, typer.Option(help="Runs in parallel processes (threads are split between them).")] = 1,
    quiet: Quiet = False,
) -> None:
    """Train every model x seed on one split, evaluate every metric that applies, and write
    leaderboard.csv/json and report.html. Re-running the same command resumes."""
    from .config import read_config_file
    from .workflows import load_compare_config, run_compare

    values: dict[str, Any] = read_config_file(config) if config is not None else {}
    if dataset is not None:
        values["dataset"] = dataset
    if models is not None:
        values["models"] = [{"model": m.strip()} for m in models.split(",") if m.strip()]
    if seeds is not None:
        values["seeds"] = list(_parse_ints(seeds, "--seeds"))
    shared = dict(values.get("shared") or {})
    if epochs is not None:
        shared["epochs"] = epochs
    if latent_dim is not None:
        shared["latent_dim"] = latent_dim
    values["shared"] = shared
    board = run_compare(load_compare_config(values), out, jobs=jobs, progress=False if quiet else None)
    _print_leaderboard(board, f"leaderboard ({out / 'leaderboard.csv'})",
                       {c: c for c in ("model", "runs_ok", "recon_mse", "probe_acc", "gen_sw", "active_units")})
    typer.echo(f"report: {out / 'report.html'}")


@app.command()
def demo(
    dataset: Annotated[str, typer.Option(help="Built-in dataset or file.")] = "digits",
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write (resumed if it exists).")] = Path("runs/demo"),
    epochs: Annotated[int | None, typer.Option(help=f"Training epochs per model. [default: {DEFAULTS.epochs}]")] = None,
    latent_dim: Annotated[int | None, typer.Option(help=f"Embedding size. [default: {DEFAULT_LATENT_DIM}]")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the models.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Train ae, vae and swae on DATASET with the same network and budget (a preset of compare)
    and write the models, test embeddings, the leaderboard and report.html."""
    from .workflows import run_demo

    shared = {k: v for k, v in (("epochs", epochs), ("latent_dim", latent_dim)) if v is not None}
    board = run_demo(dataset, out, seed=seed, verbose=False if quiet else None, **shared)
    _print_leaderboard(board, f"latentforge demo on {dataset} (test split)",
                       {"model": "model", "recon_mse": "recon MSE", "probe_acc": "linear probe",
                        "gen_sw": "generation SW₂", "epochs_run": "epochs", "train_seconds": "seconds"})
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
    from .data import BUILTIN

    for name, (_, description) in BUILTIN.items():
        typer.echo(f"{name:<14} {description}")


# -- sparse autoencoders on model activations --------------------------------------------------
sae_app = typer.Typer(no_args_is_help=True, help="Sparse autoencoders on model activations: fit, evaluate, inspect.")
app.add_typer(sae_app, name="sae")


@app.command()
def activations(
    model_dir: Annotated[Path, typer.Argument(help="A local Hugging Face model directory (save_pretrained; loaded offline).")],
    layer: Annotated[str, typer.Option(help="Module whose output is stored, e.g. encoder.layer.3 or h.5.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Activations directory to write (sharded safetensors).")],
    text: Annotated[Path | None, typer.Option(help="Text file: one document per non-empty line.")] = None,
    dataset: Annotated[Path | None, typer.Option(help="Parquet file or folder holding the documents.")] = None,
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
    data: Annotated[str, typer.Argument(help="Activations: a 'latentforge activations' directory, safetensors, Parquet or .npy.")],
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
    checkpoint_every: Annotated[int | None, typer.Option(help="Save a checkpoint every N steps. [default: every epoch]")] = None,
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
    sae.fit(data, checkpoint=checkpoint, resume=resume)
    from .train.distributed import context, finish

    ctx = context()
    if ctx.is_main:
        sae.save(out)
    finish(ctx)
    if ctx.is_main:
        m = sae.metrics_
        _echo(f"saved a {architecture} SAE with {sae.module_.n_features} features to {out} (held-out FVU "
              f"{m['fvu']:.4f}, L0 {m['l0']:.1f}, dead {m['dead_fraction']:.1%})")


@sae_app.command("evaluate")
def sae_evaluate(
    sae_dir: Annotated[Path, typer.Argument(help="SAE directory from 'latentforge sae fit'.")],
    data: Annotated[str, typer.Argument(help="Held-out activations (same kinds of input as 'sae fit').")],
    max_tokens: Annotated[int, typer.Option(help="Tokens measured at most.")] = 1_000_000,
    text: Annotated[Path | None, typer.Option(help="Documents (one per line) for downstream fidelity: the reconstruction is spliced into the model of the activations directory.")] = None,
    max_texts: Annotated[int, typer.Option(help="With --text: documents used at most.")] = 256,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")] = None,
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
    sae_dir: Annotated[Path, typer.Argument(help="SAE directory from 'latentforge sae fit'.")],
    activations_dir: Annotated[Path, typer.Argument(help="Activations directory from 'latentforge activations'.")],
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
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) the status code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = lambda message, *_, **__: _echo(f"warning: {message}")  # one line, no source dump
            app(args=args, prog_name="latentforge")  # usage errors print and exit 2, --help exits 0
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
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
        _echo(f"internal error: {type(exc).__name__}: {_one_line(exc)} (run again with --debug for the traceback).")
        return 1


def _one_line(exc: BaseException) -> str:
    """The message on one line, whatever a library put in it (a safety net: messages are written as one sentence)."""
    return " ".join(str(exc).split())


def _script() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _script()
