"""Optional MLflow experiment tracking for ``Autoencoder.fit`` and ``latentforge compare``.

MLflow is imported only when a tracking URI is given, so the core install stays free of it; without
it, :func:`require_mlflow` raises one sentence naming ``pip install 'latentforge[mlflow]'``.

Everything goes through an explicit :class:`mlflow.tracking.MlflowClient` (never MLflow's global
"active run"), so a library call does not change the caller's MLflow state and compare's worker
processes can log to a run created in the parent process: a nested run is a run tagged with its
parent's id (``mlflow.parentRunId``), which is how MLflow itself nests runs.

The URI is any MLflow tracking URI: ``file:///abs/mlruns`` or a plain folder path (a local file
store, no server), ``http(s)://host:port``, ``databricks``... A ``#name`` fragment names the
experiment (``file:///tmp/mlruns#digits``); without one, ``MLFLOW_EXPERIMENT_NAME`` or else
``"latentforge"``. MLflow 3 keeps its file store in maintenance mode and refuses it unless
``MLFLOW_ALLOW_FILE_STORE`` is set; for a file-store URI this module sets that variable to
``true`` when it is unset (an explicit ``false`` is left alone).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import InputError

DEFAULT_EXPERIMENT = "latentforge"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter's value
BATCH = 100              # MLflow's limit on params per log_batch call (metrics: 1,000)
#: estimator parameters that say how this process runs, not what is trained: never logged
UNLOGGED_PARAMS = ("regularizers", "verbose", "tracking_uri")


def require_mlflow() -> Any:
    """The ``mlflow`` module; an :class:`InputError` (one sentence) when it is not installed.

    Returns
    -------
    module
        The imported ``mlflow`` package.

    Raises
    ------
    InputError
        When MLflow is not installed.

    Examples
    --------
    >>> mlflow = require_mlflow()  # doctest: +SKIP
    """
    try:
        import mlflow
        from mlflow.tracking import MlflowClient  # noqa: F401 (the part this module uses)
    except ImportError:
        raise InputError("MLflow tracking needs the mlflow package: install it with "
                         "pip install 'latentforge[mlflow]'.") from None
    return mlflow


def split_uri(uri: str) -> tuple[str, str]:
    """``(tracking URI, experiment name)`` of a URI with an optional ``#experiment`` fragment.

    Parameters
    ----------
    uri : str
        An MLflow tracking URI, optionally ending in ``#experiment-name``.

    Returns
    -------
    tuple of str
        The URI without the fragment, and the experiment name: the fragment, else the
        ``MLFLOW_EXPERIMENT_NAME`` environment variable, else ``"latentforge"``.

    Raises
    ------
    InputError
        When ``uri`` is not a non-empty string.

    Examples
    --------
    >>> split_uri("file:///tmp/mlruns#digits")
    ('file:///tmp/mlruns', 'digits')
    """
    if not isinstance(uri, (str, os.PathLike)) or not str(uri).strip():
        raise InputError(f"tracking_uri must be a non-empty MLflow tracking URI, got {uri!r}.")
    base, _, fragment = str(uri).partition("#")
    return base, fragment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def _is_file_store(uri: str) -> bool:
    scheme = urlsplit(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")  # C:\... is a path


def client_for(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri`` (fragment removed); a file store is allowed (module docstring).

    Parameters
    ----------
    uri : str
        The tracking URI, as given to ``tracking_uri``.

    Returns
    -------
    mlflow.tracking.MlflowClient

    Examples
    --------
    >>> client = client_for("file:///tmp/mlruns")  # doctest: +SKIP
    """
    require_mlflow()
    from mlflow.tracking import MlflowClient

    base, _ = split_uri(uri)
    if base not in _CLIENTS:
        if _is_file_store(base):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        _CLIENTS[base] = MlflowClient(tracking_uri=base)
    return _CLIENTS[base]


_CLIENTS: dict[str, Any] = {}  # one client per tracking URI and process


def experiment_id(client: Any, name: str) -> str:
    """The id of the experiment ``name``, created when it does not exist yet."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another process created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (text, None, NaN and infinities are not logged)."""
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric entries of a nested mapping, keys joined with ``/``; other values dropped.

    Parameters
    ----------
    metrics : mapping
        E.g. ``metrics.json``'s content.
    prefix : str, default ""
        Put before every key.

    Returns
    -------
    dict of str to float

    Examples
    --------
    >>> flat_metrics({"mse": 0.5, "probe": {"acc": 0.9}, "note": "x", "bad": float("nan")})
    {'mse': 0.5, 'probe/acc': 0.9}
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update(flat_metrics(value, f"{prefix}{key}/"))
        elif (number := _number(value)) is not None:
            out[f"{prefix}{key}"] = number
    return out


def estimator_params(params: Mapping[str, Any]) -> dict[str, str]:
    """``get_params()`` as MLflow parameters: text values (at most 6,000 characters), without
    the runtime settings :data:`UNLOGGED_PARAMS`.

    Parameters
    ----------
    params : mapping
        An estimator's ``get_params()`` (or any parameter mapping).

    Returns
    -------
    dict of str to str

    Examples
    --------
    >>> estimator_params({"model": "ae", "latent_dim": 8, "verbose": False})
    {'latent_dim': '8', 'model': 'ae'}
    """
    return {str(k): str(v)[:MAX_PARAM_LENGTH] for k, v in sorted(params.items()) if k not in UNLOGGED_PARAMS}


@dataclass
class TrackedRun:
    """One MLflow run, logged through an explicit client (picklable: it holds only ids and the URI).

    Attributes
    ----------
    uri : str
        The tracking URI as given (with its ``#experiment`` fragment, if any).
    run_id, experiment_id : str
        MLflow's ids of the run and its experiment.
    """

    uri: str
    run_id: str
    experiment_id: str
    _steps: int = field(default=0, repr=False)

    @property
    def client(self) -> Any:
        return client_for(self.uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (values as text)."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        client = self.client
        for start in range(0, len(items), BATCH):
            client.log_batch(self.run_id, params=items[start:start + BATCH])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the numeric entries of ``metrics`` (nested keys joined with ``/``) at ``step``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, 0 if step is None else int(step)) for k, v in flat_metrics(metrics).items()]
        client = self.client
        for start in range(0, len(items), 10 * BATCH):
            client.log_batch(self.run_id, metrics=items[start:start + 10 * BATCH])

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        """Log one epoch's history record (loss terms, learning rate, seconds) at step ``epoch``."""
        self._steps += 1
        step = int(record.get("epoch", self._steps))
        self.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=step)

    def log_artifacts(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file or a directory's content into the run's artifacts (under ``artifact_path``)."""
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path=artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Mark the run ``FINISHED`` or ``FAILED`` (with the error as the tag ``error``)."""
        client = self.client
        if error:
            client.set_tag(self.run_id, "error", str(error)[:5000])
        client.set_terminated(self.run_id, status=status)


def start_run(uri: str, *, run_name: str | None = None, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, str] | None = None, parent: TrackedRun | None = None) -> TrackedRun:
    """Create an MLflow run in the URI's experiment (or, nested, in ``parent``'s) and log ``params``.

    Parameters
    ----------
    uri : str
        MLflow tracking URI, optionally with ``#experiment`` (module docstring).
    run_name : str, optional
        The run's display name.
    params : mapping, optional
        Logged as parameters (text values).
    tags : mapping, optional
        Extra run tags.
    parent : TrackedRun, optional
        Nest the run under this one (same experiment, tag ``mlflow.parentRunId``).

    Returns
    -------
    TrackedRun

    Raises
    ------
    InputError
        When MLflow is not installed or ``uri`` is empty.

    Examples
    --------
    >>> run = start_run("file:///tmp/mlruns#demo", run_name="ae", params={"epochs": 5})  # doctest: +SKIP
    >>> run.log_epoch({"epoch": 1, "train_total": 0.3}); run.end()  # doctest: +SKIP
    """
    client = client_for(uri)
    exp = parent.experiment_id if parent is not None else experiment_id(client, split_uri(uri)[1])
    all_tags = {"latentforge": "true", **(tags or {})}
    if parent is not None:
        all_tags["mlflow.parentRunId"] = parent.run_id
    info = client.create_run(exp, run_name=run_name, tags=all_tags).info
    run = TrackedRun(uri=str(uri), run_id=info.run_id, experiment_id=exp)
    if params:
        run.log_params(params)
    return run


@contextmanager
def tracked_run(uri: str | None, **options: Any) -> Iterator[TrackedRun | None]:
    """:func:`start_run` as a context: the run ends ``FINISHED``, or ``FAILED`` with the error if the
    block raises; ``uri=None`` yields None and logs nothing.

    Parameters
    ----------
    uri : str or None
        The tracking URI; None turns tracking off.
    **options
        Passed to :func:`start_run`.

    Yields
    ------
    TrackedRun or None

    Examples
    --------
    >>> with tracked_run(None) as run:
    ...     run is None
    True
    """
    if uri is None:
        yield None
        return
    run = start_run(uri, **options)
    try:
        yield run
    except BaseException as exc:
        run.end("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    run.end("FINISHED")


__all__ = ["DEFAULT_EXPERIMENT", "TrackedRun", "client_for", "estimator_params", "experiment_id", "flat_metrics",
           "require_mlflow", "split_uri", "start_run", "tracked_run"]
