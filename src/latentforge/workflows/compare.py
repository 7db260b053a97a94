"""Fair comparison: every model × seed trained on the same split with the same architecture and
budget, evaluated with every metric that applies, summarised as a leaderboard and a report.

The dataset is loaded and split once per comparison; each run (in this process or in one of
``jobs`` worker processes, each with ``cores // jobs`` threads) gets the same train/test
``Dataset`` objects. The run folder::

    OUT/compare.json                    the validated settings
    OUT/runs/<run_id>/model/            the saved model
    OUT/runs/<run_id>/embeddings.parquet  test-split codes z0..: id columns first, label last
    OUT/runs/<run_id>/details.npz       arrays for the report (no pickle)
    OUT/runs/<run_id>.json              the result: status, metrics, history (or the error)
    OUT/leaderboard.csv, leaderboard.json, report.html

Resumable: a run's ``<run_id>.json`` is written atomically last; a restarted comparison keeps
finished runs whose settings are unchanged and redoes the others (failed runs included).
Failures are recorded in the leaderboard with their error, never dropped.

With ``tracking_uri`` (``latentforge compare --mlflow-uri``) the comparison is one MLflow parent
run (its settings as parameters, ``leaderboard.csv`` and ``report.html`` as artifacts) with one
nested run per model × seed trained here or in a worker (parameters, per-epoch loss terms, the test
metrics, the saved model directory as the artifact ``model``); runs reused from an earlier
comparison were logged then and are not logged again (docs/tracking.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from ..config import coerce_value, read_config_file
from ..data import Dataset, load_dataset, split_dataset
from ..errors import InputError, unknown_name_error
from ..estimator import Autoencoder
from ..fsutil import atomic_write, check_output_dir, check_output_path
from ..models import get_model_class
from ..report.run_report import write_run_report
from ..train.progress import ProgressDisplay, format_terms
from .evaluation import evaluate_estimator

#: Autoencoder parameters a comparison sets itself: per run (model, seed, verbose) or from the
#: data settings at the top level of the config (label, id_columns).
_SET_BY_COMPARE = {"model", "seed", "verbose", "label", "id_columns", "tracking_uri"}

METRIC_NOTE = ("Click a column header to sort. Metrics on the test split: reconstruction MSE over test pixels in "
               "[0, 1] (tables: preprocessed features); linear probe = LogisticRegression(max_iter=2000) fitted on "
               "train codes, accuracy on test codes; generation SW₂ = sliced-Wasserstein distance (p = 2, 2,000 "
               "directions, projection seed 0) between as many samples as test rows and the test set. Skipped "
               "metrics and errors are listed in leaderboard.csv; protocols: docs/evaluation.md.")


def _estimator_keys() -> set[str]:
    return set(Autoencoder._get_param_names()) - _SET_BY_COMPARE


@dataclass
class CompareConfig:
    """What to compare, validated on construction (every problem is an InputError naming the key).

    ``models``: list of {"model": name, "name": display name (optional), **params};
    ``shared``: Autoencoder parameters every model gets (architecture, budget); ``label`` and
    ``id_columns`` name those columns of a table file; ``one_class``: {"normal_label": v} trains
    on rows with that label only and scores the rest as anomalies.
    """

    dataset: str = "digits"
    models: list[dict[str, Any]] = field(default_factory=lambda: [{"model": "ae"}, {"model": "vae"}, {"model": "swae"}])
    seeds: list[int] = field(default_factory=lambda: [0])
    shared: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    id_columns: list[str] = field(default_factory=list)
    test_fraction: float = 0.2
    split_seed: int = 0
    one_class: dict[str, Any] | None = None
    n_generated: int | None = None
    two_sample_permutations: int = 200

    def __post_init__(self) -> None:
        if not isinstance(self.models, (list, tuple)) or not self.models:
            raise InputError("the comparison lists no models: 'models' must be a non-empty list.")
        if not isinstance(self.seeds, (list, tuple)) or not self.seeds:
            raise InputError(f"seeds must be a non-empty list of integers, got {self.seeds!r}.")
        self.seeds = [coerce_value(s, int, f"seeds[{i}]") for i, s in enumerate(self.seeds)]
        self.dataset = coerce_value(self.dataset, str, "dataset")
        self.test_fraction = coerce_value(self.test_fraction, float, "test_fraction")
        self.split_seed = coerce_value(self.split_seed, int, "split_seed")
        self.n_generated = coerce_value(self.n_generated, int, "n_generated", optional=True)
        self.two_sample_permutations = coerce_value(self.two_sample_permutations, int, "two_sample_permutations")
        if not isinstance(self.shared, dict) or not isinstance(self.id_columns, (list, tuple)):
            raise InputError("the comparison config is malformed: 'shared' must be a mapping and 'id_columns' a list.")
        if not 0 < self.test_fraction < 1:
            raise InputError(f"test_fraction must lie in (0, 1), got {self.test_fraction!r}.")
        estimator_keys = _estimator_keys()
        for key in self.shared:
            if key in ("label", "id_columns"):
                raise InputError(f"{key!r} is a data setting: put it at the top level of the config, not under 'shared:'.")
            if key not in estimator_keys:
                raise unknown_name_error("shared parameter", key, estimator_keys)
        names = []
        for i, spec in enumerate(self.models):
            if not isinstance(spec, dict) or "model" not in spec:
                raise InputError(f"models[{i}] must be a mapping with a 'model' key, got {spec!r}.")
            cls = get_model_class(str(spec["model"]))
            allowed = estimator_keys | set(cls.hyperparameters)
            for key in spec:
                if key not in allowed | {"model", "name"}:
                    raise unknown_name_error(f"parameter of models[{i}] ({spec['model']})", key, allowed)
            cls.resolve_hyperparameters({k: v for k, v in spec.items() if k in cls.hyperparameters})
            names.append(spec.get("name", spec["model"]))
        if len(set(names)) != len(names):
            raise InputError(f"model names must be unique; give repeated models a 'name': {names}.")
        files = [run_name(n) for n in names]  # each name is also a file name under OUT/runs/
        for i, f in enumerate(files):
            if files.index(f) != i:
                raise InputError(f"the model names {names[files.index(f)]!r} and {names[i]!r} give the same file "
                                 f"name {f!r}; rename one of them.")
        if self.one_class is not None and (not isinstance(self.one_class, dict) or set(self.one_class) != {"normal_label"}):
            raise InputError("one_class must be a mapping with the single key 'normal_label'.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "CompareConfig":
        """Build from a mapping (a parsed file); unknown keys are errors, model settings at the
        top level are pointed to ``shared:``."""
        keys = [f.name for f in fields(cls)]
        for key in values:
            if key in keys:
                continue
            if key in Autoencoder._get_param_names():
                raise InputError(f"config key {key!r} is a model setting: put it under 'shared:' (all models) "
                                 f"or in a model's entry.")
            raise unknown_name_error("config key", key, keys)
        try:
            return cls(**values)
        except TypeError as exc:  # a value of the wrong type, e.g. test_fraction: "a lot"
            raise InputError(f"the comparison config is malformed ({exc}).") from None

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (what ``compare.json`` holds; ``from_dict`` reads it back)."""
        return asdict(self)


def load_compare_config(source: str | Path | dict[str, Any]) -> CompareConfig:
    """A validated :class:`CompareConfig` from a YAML/JSON file path or a mapping."""
    return CompareConfig.from_dict(dict(source) if isinstance(source, dict) else read_config_file(source))


# -- one run -------------------------------------------------------------------------------------
@dataclass
class _Job:
    """One model × seed; pickled as is to a worker process."""

    config: CompareConfig
    spec: dict[str, Any]
    seed: int
    run_id: str
    key: str
    parent: Any = None  # the comparison's MLflow run (latentforge.tracking.TrackedRun), or None


def _run_key(config: CompareConfig, spec: dict[str, Any], seed: int) -> str:
    """A hash of everything that decides a run's result: a finished run is reused only if it matches."""
    payload = {"data": [config.dataset, config.label, config.id_columns, config.test_fraction, config.split_seed,
                        config.one_class], "shared": config.shared, "spec": spec, "seed": seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_name(name: Any) -> str:
    """A model's display name as a safe file name: letters, digits, ``.``, ``_`` and ``-`` only (every
    other run of characters becomes ``_``), no leading dot, at most 80 characters; so
    ``"../../x"`` → ``"x"`` and ``"a/b"`` → ``"a_b"``, and nothing lands outside ``OUT/runs/``."""
    safe = re.sub(r"[^\w.-]+", "_", str(name), flags=re.ASCII).strip("._-")[:80].rstrip("._-")
    return safe or "model"


def _jobs(config: CompareConfig) -> list[_Job]:
    return [_Job(config, spec, seed, f"{run_name(spec.get('name', spec['model']))}-seed{seed}",
                 _run_key(config, spec, seed)) for spec in config.models for seed in config.seeds]


def _splits(config: CompareConfig) -> tuple[Dataset, Dataset]:
    """(train, test): the one load and split of a comparison. With ``one_class`` the training
    split keeps only the normal rows."""
    data = load_dataset(config.dataset, label=config.label, id_columns=config.id_columns)
    train, _, test = split_dataset(data, test_fraction=config.test_fraction, val_fraction=0.0, seed=config.split_seed)
    if len(train) < 2 or len(test) < 2:
        raise InputError(f"the split leaves {len(train)} training and {len(test)} test rows; at least 2 of each are needed.")
    if config.one_class is not None:
        if train.y is None:
            raise InputError("one_class needs labels: name the label column with 'label:'.")
        normal = config.one_class["normal_label"]
        train = train.subset(np.flatnonzero(np.asarray(train.y) == normal))
        if len(train) < 2:
            raise InputError(f"one_class: only {len(train)} training rows have the label {normal!r}; at least 2 are needed.")
    return train, test


def _run_one(job: _Job, train: Dataset, test: Dataset, out: str, threads: int, progress: Any = None) -> dict[str, Any]:
    """Train and evaluate one model × seed and write its files; always returns a result (status
    ok or failed). ``progress``: anything with ``put((run_id, epoch, epochs, terms))`` (a queue in workers)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)  # BLAS too: jobs × threads never exceeds the cores
    config, spec = job.config, job.spec
    result: dict[str, Any] = {"run": job.run_id, "name": spec.get("name", spec["model"]), "model": spec["model"],
                              "seed": job.seed, "key": job.key}
    tracked = None
    try:
        params = {**config.shared, **{k: v for k, v in spec.items() if k != "name"}}
        est = Autoencoder(seed=job.seed, verbose=False, label=config.label, id_columns=tuple(config.id_columns), **params)
        # the planned epochs ("auto" resolved) are known once fit has seen the data
        report = None if progress is None else (
            lambda rec: progress.put((job.run_id, rec["epoch"], est.training_plan_["epochs"], format_terms(rec))))
        if progress is not None:  # the run starts: its clock (and ETA) from here
            progress.put((job.run_id, 0, est.epochs if isinstance(est.epochs, int) else None, ""))
        if job.parent is not None:
            tracked = _start_tracked(job, est)
            report = _then(report, tracked.log_epoch)
        started = time.perf_counter()
        est.fit(train, on_epoch=report)
        seconds = round(time.perf_counter() - started, 2)
        metrics, details = evaluate_estimator(est, test, train, one_class=config.one_class,
                                              n_generated=config.n_generated,
                                              two_sample_permutations=config.two_sample_permutations)
        metrics["epochs_run"] = len(est.history_)
        run_dir = Path(out) / "runs" / job.run_id
        est.save(run_dir / "model", metrics={k: v for k, v in metrics.items() if k != "skipped"})
        buf = io.BytesIO()
        _embedding_frame(details.pop("Z_test"), test).to_parquet(buf, index=False)
        atomic_write(run_dir / "embeddings.parquet", buf.getvalue())
        buf = io.BytesIO()
        np.savez(buf, **_flatten(details))
        atomic_write(run_dir / "details.npz", buf.getvalue())
        result.update(status="ok", metrics=metrics, history=est.history_, train_seconds=seconds)
        if tracked is not None:
            tracked.log_metrics({**metrics, "train_seconds": seconds})
            tracked.log_artifacts(run_dir / "model", "model")
            tracked.end("FINISHED")
    except Exception as exc:
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        if tracked is not None:
            try:
                tracked.end("FAILED", error=result["error"])
            except Exception:  # noqa: BLE001 (the run's own error is the one to record)
                pass
    atomic_write(Path(out) / "runs" / f"{job.run_id}.json", json.dumps(result, default=_json_default).encode())
    return result


def _start_tracked(job: _Job, est: Autoencoder) -> Any:
    """The nested MLflow run of one model × seed, under the comparison's run."""
    from ..tracking import estimator_params, start_run

    params = {**estimator_params(est.get_params()), "name": job.spec.get("name", job.spec["model"]), "run": job.run_id}
    return start_run(job.parent.uri, run_name=job.run_id, params=params, parent=job.parent,
                     tags={"latentforge.command": "compare"})


def _then(first: Callable[[dict[str, Any]], None] | None, second: Callable[[dict[str, Any]], None]
          ) -> Callable[[dict[str, Any]], None]:
    """An epoch callback calling ``first`` (may be None) then ``second``."""
    def call(record: dict[str, Any]) -> None:
        if first is not None:
            first(record)
        second(record)
    return call


def _embedding_frame(Z: np.ndarray, test: Dataset) -> pd.DataFrame:
    """Test codes as columns z0..z{k-1}, after the id columns and before the label column."""
    frame = pd.DataFrame(Z, columns=[f"z{i}" for i in range(Z.shape[1])])
    if test.ids is not None:
        frame = pd.concat([test.ids.reset_index(drop=True), frame], axis=1)
    if test.y is not None:
        frame[test.label_name or "label"] = test.y
    return frame


def _codes(frame: pd.DataFrame, test: Dataset) -> np.ndarray:
    """The codes of an :func:`_embedding_frame` (the columns between ids and label)."""
    start = 0 if test.ids is None else test.ids.shape[1]
    stop = frame.shape[1] - (test.y is not None)
    return frame.iloc[:, start:stop].to_numpy()


def _flatten(details: dict[str, Any]) -> dict[str, np.ndarray]:
    """``{"bars": {"kl": a}}`` → ``{"bars/kl": a}``: the arrays np.savez stores (numbers only, no pickle)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in details.items():
        for sub, arr in (value.items() if isinstance(value, dict) else [(None, value)]):
            flat[key if sub is None else f"{key}/{sub}"] = np.asarray(arr, dtype=float)
    return flat


def _read_details(run_dir: Path, test: Dataset) -> dict[str, Any]:
    """The arrays a run wrote for the report, nested again, with its test codes as ``Z_test``."""
    nested: dict[str, Any] = {}
    with np.load(run_dir / "details.npz", allow_pickle=False) as z:
        for name in z.files:
            key, _, sub = name.partition("/")
            if sub:
                nested.setdefault(key, {})[sub] = z[name]
            else:
                nested[key] = z[name]
    nested["Z_test"] = _codes(pd.read_parquet(run_dir / "embeddings.parquet"), test)
    return nested


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# -- the comparison ------------------------------------------------------------------------------
def _finished(out: Path, job: _Job) -> dict[str, Any] | None:
    """The stored result of ``job`` if it finished with the same settings and left all its files."""
    path = out / "runs" / f"{job.run_id}.json"
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    run_dir = out / "runs" / job.run_id
    files = all((run_dir / name).exists() for name in ("model", "embeddings.parquet", "details.npz"))
    return result if result.get("status") == "ok" and result.get("key") == job.key and files else None


def leaderboard(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per model: mean and std over seeds of every numeric metric, run counts, errors."""
    rows = []
    for name in dict.fromkeys(r["name"] for r in results):
        runs = [r for r in results if r["name"] == name]
        ok = [r for r in runs if r["status"] == "ok"]
        row: dict[str, Any] = {"model": name, "runs_ok": len(ok), "runs_failed": len(runs) - len(ok)}
        keys = dict.fromkeys(k for r in ok for k, v in r["metrics"].items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool))
        for k in keys:
            vals = np.array([r["metrics"][k] for r in ok if k in r["metrics"]], dtype=float)
            row[k] = float(np.mean(vals))
            row[f"{k}_std"] = float(np.std(vals)) if len(vals) > 1 else 0.0
        if ok:
            row["train_seconds"] = float(np.mean([r["train_seconds"] for r in ok]))
            skipped = {g: why for r in ok for g, why in r["metrics"].get("skipped", {}).items()}
            row["skipped"] = "; ".join(f"{g}: {why}" for g, why in skipped.items())
        row["errors"] = "; ".join(f"seed {r['seed']}: {r['error']}" for r in runs if r["status"] != "ok")
        rows.append(row)
    return pd.DataFrame(rows)


def _run_all(todo: list[_Job], train: Dataset, test: Dataset, out: Path, jobs: int, progress: bool | None,
             already: int) -> dict[str, dict[str, Any]]:
    """Results of the runs in ``todo``, in this process (``jobs == 1``) or in worker processes."""
    workers = min(jobs, max(1, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    results: dict[str, dict[str, Any]] = {}
    with ProgressDisplay(progress) as display:
        overall = display.add("all runs", total=len(todo) + already, completed=already)
        bars = {job.run_id: display.add(f"  {job.run_id}", total=None) for job in todo}

        def show(message: tuple[str, int, int, str]) -> None:
            run_id, epoch, total, terms = message
            display.update(bars[run_id], completed=epoch, total=total, terms=terms)

        def finish(job: _Job, result: dict[str, Any]) -> None:
            results[job.run_id] = result
            display.update(bars[job.run_id], visible=False)
            display.update(overall, advance=1)

        show_epochs = show if display.enabled else None
        if workers == 1:
            sink = None if show_epochs is None else SimpleNamespace(put=show_epochs)
            for job in todo:
                finish(job, _run_one(job, train, test, str(out), threads, sink))
        else:
            _run_in_workers(todo, train, test, str(out), workers, threads, show_epochs, finish)
    return results


def _run_in_workers(todo: list[_Job], train: Dataset, test: Dataset, out: str, workers: int, threads: int,
                    show: Callable[[tuple[str, int, int, str]], None] | None,
                    finish: Callable[[_Job, dict[str, Any]], None]) -> None:
    """Runs in ``workers`` spawned processes; their epoch messages reach ``show`` through a queue."""
    import multiprocessing as mp
    import queue as queues

    def drain(queue: Any) -> None:
        while queue is not None:
            try:
                show(queue.get_nowait())
            except (queues.Empty, EOFError, OSError):
                return

    ctx = mp.get_context("spawn")  # fork + torch threads can deadlock
    with (mp.Manager() if show else nullcontext()) as manager, \
            ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        queue = None if manager is None else manager.Queue()
        futures = {pool.submit(_run_one, job, train, test, out, threads, queue): job for job in todo}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            drain(queue)  # before finish hides a run's bar, so it shows the last epoch
            for future in done:
                finish(futures[future], future.result())


def run_compare(config: CompareConfig | dict[str, Any] | str | Path, out: str | Path, jobs: int = 1,
                progress: bool | None = None, *, title: str | None = None,
                tracking_uri: str | None = None) -> pd.DataFrame:
    """Run (or resume) a comparison into the folder ``out``; returns the leaderboard.

    ``config``: a :class:`CompareConfig`, a mapping or a YAML/JSON file path. ``jobs``: runs in
    parallel worker processes. ``progress``: bars on stderr (None: only on a terminal).
    ``title``: the report's heading (default ``"latentforge compare: DATASET"``).
    ``tracking_uri``: an MLflow tracking URI (``#name`` picks the experiment): one parent run
    for the comparison, one nested run per model × seed (module docstring, docs/tracking.md).
    Writes the layout in the module docstring; bad settings fail before any run.
    """
    config = config if isinstance(config, CompareConfig) else load_compare_config(config)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs must be a positive integer, got {jobs!r}.")
    out = Path(out)
    check_output_path(out, [config.dataset])
    check_output_dir(out, marker="compare.json")
    if tracking_uri is not None:
        from ..tracking import require_mlflow

        require_mlflow()  # before any work
    train, test = _splits(config)  # a bad dataset or split fails here, before any run
    (out / "runs").mkdir(parents=True, exist_ok=True)
    atomic_write(out / "compare.json", json.dumps(config.to_dict(), indent=2, default=str).encode())
    all_jobs = _jobs(config)
    results = {job.run_id: done for job in all_jobs if (done := _finished(out, job)) is not None}
    todo = [job for job in all_jobs if job.run_id not in results]
    parent = None if tracking_uri is None else _start_parent(tracking_uri, config, out, len(train), len(test))
    try:
        for job in todo:
            job.parent = parent
        results.update(_run_all(todo, train, test, out, jobs, progress, already=len(results)))
        board = _write_outputs(config, out, all_jobs, results, train, test, title)
    except BaseException as exc:
        if parent is not None:
            parent.end("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    if parent is not None:
        for name in ("leaderboard.csv", "report.html"):
            if (out / name).is_file():
                parent.log_artifacts(out / name)
        parent.end("FINISHED")
    return board


def _start_parent(uri: str, config: CompareConfig, out: Path, n_train: int, n_test: int) -> Any:
    """The comparison's MLflow run: its settings as parameters."""
    from ..tracking import start_run

    params = {"dataset": config.dataset, "models": ",".join(str(m.get("name", m["model"])) for m in config.models),
              "seeds": ",".join(map(str, config.seeds)), "test_fraction": config.test_fraction,
              "split_seed": config.split_seed, "label": config.label, "one_class": config.one_class,
              "n_train": n_train, "n_test": n_test, **{f"shared.{k}": v for k, v in config.shared.items()}}
    return start_run(uri, run_name=f"compare {out.name}", params=params, tags={"latentforge.command": "compare"})


def _write_outputs(config: CompareConfig, out: Path, all_jobs: list[_Job], results: dict[str, dict[str, Any]],
                   train: Dataset, test: Dataset, title: str | None) -> pd.DataFrame:
    """Leaderboard files and report of the finished comparison; returns the leaderboard."""
    ordered = [results[job.run_id] for job in all_jobs]
    board = leaderboard(ordered)
    atomic_write(out / "leaderboard.csv", board.to_csv(index=False).encode())
    atomic_write(out / "leaderboard.json", json.dumps(board.to_dict(orient="records"), indent=2,
                                                        default=_json_default).encode())
    shown: dict[str, dict[str, Any]] = {}
    for r in ordered:  # each model's first finished run is pictured
        if r["status"] == "ok" and r["name"] not in shown:
            shown[r["name"]] = {"history": r["history"], **_read_details(out / "runs" / r["run"], test)}
    failed = sum(r["status"] != "ok" for r in ordered)
    settings = ", ".join(f"{k}={v}" for k, v in config.shared.items())
    subtitle = (f"{len(train)} training / {len(test)} test rows · {len(board)} models × {len(config.seeds)} seed(s) = "
                f"{len(ordered)} runs ({failed} failed) · "
                + ("mean ± std over seeds" if len(config.seeds) > 1 else "one seed: no spread") + (f" · {settings}" if settings else ""))
    write_run_report(out, title or f"latentforge compare: {config.dataset}", subtitle, board, shown,
                     test_images=test.X[:10] if test.kind == "image" else None, labels=test.y, metric_note=METRIC_NOTE)
    return board
