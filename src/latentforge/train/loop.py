"""The trainer: :func:`fit_model` fits any model, and :func:`train_model` is the one readable
gradient loop (AdamW, LR schedule, clipping, validation, early stopping, best checkpoint,
non-finite guard, mixed precision, checkpoints and resume, progress bar, history). Models with
``fit_method = "posterior"`` go to :func:`latentforge.train.posterior.fit_posterior` instead.

The hot loop does not wait on the host: loss sums stay on the device, and on a GPU the
non-finite check reads a device-side flag every ``SYNC_EVERY`` steps (the exact bad step is still
reported). On CPU, where reading a scalar costs nothing, it checks every step.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..config import TrainConfig, resolve_device
from ..errors import InputError, TrainingDivergedError
from .batches import Batches, as_batches
from .checkpoint import RunState, load_checkpoint, remove_checkpoint, save_checkpoint
from .distributed import DistContext, all_reduce_sum, context, data_parallel, local_device
from .posterior import fit_posterior
from .progress import ProgressDisplay, format_terms

if TYPE_CHECKING:  # the trainer needs only .loss(x) and parameters, not the models package
    from ..models import BaseAutoencoder

SYNC_EVERY = 32  # GPU steps between reads of the non-finite flag
#: an epoch-end checkpoint waits until the training since the last one took this many times as long
#: as writing it did: checkpoints cost at most ~1/20 of a run, and a kill loses ~20 saves' worth of steps
CHECKPOINT_COST_RATIO = 20
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> None:
    """Scale gradients in place so their global L2 norm is at most ``max_norm``.

    Same result as ``torch.nn.utils.clip_grad_norm_``, with two fused foreach calls: that
    helper's generic path costs about 8% of a small model's step on CPU.
    """
    if grads:
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def evaluate_loss(model: BaseAutoencoder, X: torch.Tensor | Batches, batch_size: int = 1024,
                  autocast: Any = nullcontext, ctx: DistContext = DistContext()) -> dict[str, float]:
    """Mean of each loss term over X (a tensor or :class:`~latentforge.train.batches.Batches`), in
    eval mode; under data parallelism each rank evaluates its share and the means are over all."""
    model.eval()
    device = next(model.parameters()).device
    batches = as_batches(X, batch_size, 0, device, shuffle=False, rank=ctx.rank, world_size=ctx.world_size)
    names: list[str] = []
    sums = torch.zeros(0, dtype=torch.float64, device=device)
    rows = 0
    for x in batches.epoch(1):
        with autocast():
            terms = model.loss(x)
        if not names:
            names, sums = list(terms), torch.zeros(len(terms), dtype=torch.float64, device=device)
        sums += torch.stack([v.detach().double() for v in terms.values()]) * len(x)
        rows += len(x)
    if ctx.active:
        names = names or list(model.loss(batches_first(X, device)).keys())  # a rank may hold no validation rows
        sums = sums if len(sums) else torch.zeros(len(names), dtype=torch.float64, device=device)
        totals = all_reduce_sum(torch.cat([sums, torch.tensor([float(rows)], dtype=torch.float64, device=device)]), ctx)
        sums, rows = totals[:-1], int(totals[-1])
    return {k: v / rows for k, v in zip(names, sums.tolist())}


def batches_first(X: torch.Tensor | Batches, device: torch.device) -> torch.Tensor:
    """A few rows of X, to learn the names of the loss terms."""
    if isinstance(X, torch.Tensor):
        return X[:2].to(device)
    return next(iter(X.epoch(1)))


Regularizer = Callable[["BaseAutoencoder", torch.Tensor], dict[str, torch.Tensor]]


def fit_model(
    model: BaseAutoencoder,
    X_train: torch.Tensor | Batches,
    X_val: torch.Tensor | Batches | None,
    config: TrainConfig,
    progress: bool | None = None,
    description: str = "training",
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    regularizers: Sequence[Regularizer] = (),
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> list[dict[str, float]]:
    """Fit ``model`` in place the way its class declares (``fit_method``); returns the history.

    Arguments as for :func:`train_model`; posterior models take in-memory tensors and no extra
    regularizers or checkpoints.
    """
    if model.fit_method == "posterior":
        if regularizers:
            raise InputError(f"model {model.name!r} is fitted by posterior sampling and takes no extra training "
                             f"terms (invariance or compatibility losses).")
        if checkpoint is not None or resume or not isinstance(X_train, torch.Tensor):
            raise InputError(f"model {model.name!r} is fitted by posterior sampling, which needs the data in memory "
                             f"and has no checkpoints yet.")
        return fit_posterior(model, X_train, X_val, config, progress=progress, description=description,
                             on_epoch=on_epoch)
    return train_model(model, X_train, X_val, config, progress=progress, description=description,
                       on_epoch=on_epoch, regularizers=regularizers, checkpoint=checkpoint, resume=resume)


def train_model(
    model: BaseAutoencoder,
    X_train: torch.Tensor | Batches,
    X_val: torch.Tensor | Batches | None,
    config: TrainConfig,
    progress: bool | None = None,
    description: str = "training",
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    regularizers: Sequence[Regularizer] = (),
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> list[dict[str, float]]:
    """Train ``model`` in place and return the per-epoch history.

    ``X_train``/``X_val``: flat feature tensors, or :class:`~latentforge.train.batches.Batches`
    (e.g. a stream from a file). The model ends with its best validation weights (or the last ones
    without validation). A non-finite loss restores the last good weights and raises
    TrainingDivergedError. ``progress=None`` shows a bar only when stderr is a terminal. Each
    regularizer maps (model, batch) to extra named loss terms added to the total.

    ``checkpoint``: a directory where the run's whole state is saved atomically every
    ``config.checkpoint_every`` steps and at the end of an epoch: the first, the last, and any
    other once the training since the last save took ``CHECKPOINT_COST_RATIO`` times as long as
    that save (so checkpoints cost at most about 5% of a run); ``resume=True`` continues from it
    when it exists. A finished run deletes it unless ``config.keep_checkpoints``.
    """
    if resume and checkpoint is None:
        raise InputError("resume=True needs a checkpoint directory to resume from.")
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    ctx = context(resolve_device(config.device))
    device = local_device(resolve_device(config.device), ctx)
    model.to(device)
    train = as_batches(X_train, config.batch_size, config.seed, device, rank=ctx.rank, world_size=ctx.world_size)
    val = as_batches(X_val, 1024, config.seed, device, shuffle=False, rank=ctx.rank, world_size=ctx.world_size)
    if train is None:
        raise InputError("there are no training rows.")
    spe = train.steps(1)  # streamed shares can differ by a few steps between epochs; the cosine uses epoch 1's

    groups = model.parameter_groups(config.weight_decay)  # models may set their own weight decay
    params = [p for g in groups for p in g["params"]]
    # the fused kernel updates every tensor in one pass: on CPU the per-tensor loop PyTorch uses by
    # default was a quarter of a small table's step time
    fused = device.type in ("cpu", "cuda") and all(p.is_floating_point() for p in params)
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
    scheduler = make_scheduler(optimizer, config, config.epochs * spe)
    per_step = scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    model.begin_training(config.epochs * spe, config.batch_size)
    amp_dtype = PRECISIONS[config.precision]
    scaler = torch.amp.GradScaler(device.type) if config.precision == "fp16" else None
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype is not None else nullcontext
    loss_of = data_parallel(model, device, ctx) if ctx.active else model.loss
    loss_of = torch.compile(loss_of) if config.compile else loss_of
    sync_every = _sync_every(device, ctx)

    # what a checkpoint must match to be resumed: the same model, data size and options
    how_run = ("device", "threads", "compile", "checkpoint_every", "keep_checkpoints")  # may change on resume
    fingerprint = json.loads(json.dumps({"model": model.config(), "n_rows": train.n_rows, "world_size": ctx.world_size,
                                         "train": {
        k: v for k, v in config.to_dict().items() if k not in how_run}}, default=str))
    state = RunState(best_state=_state_copy(model))
    if resume and checkpoint is not None and (Path(checkpoint) / "checkpoint.json").is_file():
        state = load_checkpoint(checkpoint, model, optimizer, scheduler, scaler, fingerprint)

    saved = {"at": 0.0, "cost": None}  # when the last checkpoint was written, and how long that took

    def save(at: RunState, epoch_end: bool = False, last: bool = False) -> None:
        """Write a checkpoint (only rank 0 writes). At an epoch's end only when it is worth it:
        the first time, the run's last epoch, or once the training since the last save took
        CHECKPOINT_COST_RATIO times as long as that save did (a small table's epoch is shorter
        than its checkpoint; saving every one had been about 30% of its training)."""
        if checkpoint is None or not ctx.is_main:
            return
        now = time.perf_counter()
        if epoch_end and not last and saved["cost"] is not None \
                and now - saved["at"] < CHECKPOINT_COST_RATIO * saved["cost"]:
            return
        save_checkpoint(checkpoint, at, model, optimizer, scheduler, scaler, fingerprint)
        saved["at"] = time.perf_counter()
        saved["cost"] = saved["at"] - now

    display = ProgressDisplay(progress).start()
    task = display.add(description, config.epochs, completed=len(state.history))
    stopped_early = False
    try:
        for epoch in range(state.epoch, config.epochs + 1):
            started = time.perf_counter() - (state.started if epoch == state.epoch else 0.0)
            model.train()
            skip = state.step if epoch == state.epoch else 0
            names, sums = (state.names, state.sums) if skip else ([], torch.zeros(0))
            rows = state.rows if skip else 0
            spe = train.steps(epoch)
            first_bad = torch.full((), -1, dtype=torch.long, device=device)  # step of the first non-finite loss
            bad_values = torch.zeros(0, device=device)
            step = skip
            for step, x in enumerate(train.epoch(epoch, skip=skip), start=skip):
                with autocast():
                    terms = loss_of(x)
                    for regularizer in regularizers:
                        extra = regularizer(model, x)
                        terms = {**terms, **extra, "total": terms["total"] + sum(extra.values())}
                values = torch.stack([v.detach() for v in terms.values()])
                if amp_dtype is not None:
                    values = values.float()
                if not names:
                    names, sums = list(terms), torch.zeros(len(terms), device=device)
                if sync_every == 1:  # CPU: reading the flag costs nothing, so stop before the bad step
                    if not bool(torch.isfinite(values).all()):
                        _raise_if_diverged(step, values, names, epoch, state, model)
                else:  # keep the first bad step on the device; look at it every sync_every steps
                    if len(bad_values) != len(values):
                        bad_values = torch.zeros_like(values)
                    newly_bad = (first_bad < 0) & ~torch.isfinite(values).all()
                    bad_values = torch.where(newly_bad, values, bad_values)
                    first_bad = torch.where(newly_bad, step, first_bad)
                    if sync_every and ((step + 1) % sync_every == 0 or step + 1 == spe):
                        _raise_if_diverged(int(first_bad), bad_values, names, epoch, state, model)
                total = terms["total"]
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(total).backward()
                    scaler.unscale_(optimizer)
                else:
                    total.backward()
                if config.grad_clip is not None:
                    clip_grad_norm([p.grad for p in params if p.grad is not None], config.grad_clip)
                model.before_optimizer_step()
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                model.after_optimizer_step()
                if per_step:
                    scheduler.step()
                sums += values * len(x)
                rows += len(x)
                if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < spe:
                    save(RunState(epoch, step + 1, state.history, state.best_epoch, state.best_score,
                                  state.best_state, names, sums, time.perf_counter() - started, rows))
            if ctx.active:  # every rank learns of a non-finite loss anywhere, and all stop together
                first_bad = _first_bad_over_ranks(first_bad, ctx)
                totals = all_reduce_sum(torch.cat([sums, torch.tensor([float(rows)], device=device)]), ctx)
                sums, rows = totals[:-1], int(totals[-1])
            _raise_if_diverged(int(first_bad), bad_values, names, epoch, state, model)
            record: dict[str, float] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
            record.update({f"train_{k}": v / rows for k, v in zip(names, sums.tolist())})
            if val is not None:
                record.update({f"val_{k}": v for k, v in evaluate_loss(model, val, autocast=autocast, ctx=ctx).items()})
            score = record["val_total"] if val is not None else record["train_total"]
            if not math.isfinite(score):
                model.load_state_dict(state.best_state)
                raise TrainingDivergedError(
                    f"the validation loss became {score} at epoch {epoch}; {_kept(state)}.", epoch, spe, "val_total",
                    history=state.history, best_epoch=state.best_epoch)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(score)
            record["seconds"] = time.perf_counter() - started
            state.history.append(record)
            if val is None or score < state.best_score:
                state.best_state, state.best_epoch = _state_copy(model), epoch
                state.best_score = min(score, state.best_score)
            stopped_early = val is not None and config.patience is not None and epoch - state.best_epoch >= config.patience
            # an early stop is the end of the run: a resumed run must not train on past it
            save(RunState(config.epochs + 1 if stopped_early else epoch + 1, 0, state.history, state.best_epoch,
                          state.best_score, state.best_state), epoch_end=True,
                 last=stopped_early or epoch == config.epochs)
            if on_epoch is not None:
                on_epoch(record)
            display.update(task, advance=1, terms=format_terms(record))
            if stopped_early:
                break
    finally:
        display.stop()
        torch.set_num_threads(threads)
    model.load_state_dict(state.best_state)
    model.eval()
    if checkpoint is not None and not config.keep_checkpoints and ctx.is_main:
        remove_checkpoint(checkpoint)
    return state.history


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int) -> Any:
    """The LR scheduler of ``config.schedule`` over ``total_steps`` optimizer steps (None: constant).

    ``cosine`` without warm-up is PyTorch's ``CosineAnnealingLR`` (so earlier runs reproduce);
    with ``warmup_steps`` every schedule is one ``LambdaLR`` factor: a linear ramp over the
    warm-up, then the schedule's shape over the remaining steps.
    """
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=5)
    if config.schedule == "cosine" and not config.warmup_steps:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.schedule == "constant" and not config.warmup_steps:
        return None
    warm, schedule = config.warmup_steps, config.schedule
    rest = max(1, total_steps - warm)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(step - warm, rest) / rest  # fraction of the post-warm-up steps taken
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if schedule == "linear_decay":  # constant, then linear to zero over the last fifth
            return min(1.0, (1.0 - t) / 0.2)
        return 1.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _sync_every(device: torch.device, ctx: DistContext) -> int:
    """Steps between reads of the non-finite flag: 1 on CPU (free), SYNC_EVERY on a GPU, 0 (the
    epoch's end only) under data parallelism, where every rank must take the same steps."""
    if ctx.active:
        return 0
    return 1 if device.type == "cpu" else SYNC_EVERY


def _first_bad_over_ranks(first_bad: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The earliest non-finite step of any rank (-1: none)."""
    import torch.distributed as dist

    never = torch.iinfo(torch.long).max
    earliest = torch.where(first_bad < 0, never, first_bad).clone()
    dist.all_reduce(earliest, op=dist.ReduceOp.MIN)
    return torch.where(earliest == never, -1, earliest)


def _raise_if_diverged(first_bad: int, bad_values: torch.Tensor, names: list[str], epoch: int, state: RunState,
                       model: torch.nn.Module) -> None:
    """TrainingDivergedError naming the first non-finite term and its step, after restoring the last good weights."""
    if first_bad < 0:
        return
    values = bad_values.tolist()
    bad = next((k for k, v in zip(names, values) if k != "total" and not math.isfinite(v)), "total")
    model.load_state_dict(state.best_state)
    raise TrainingDivergedError(
        f"the loss term {bad!r} became {values[names.index(bad)]} at epoch {epoch}, step {first_bad + 1}; "
        f"{_kept(state)}. Try a lower learning rate.", epoch, first_bad + 1, bad,
        history=state.history, best_epoch=state.best_epoch)


def _kept(state: RunState) -> str:
    """What a diverged run keeps: the best finished epoch's weights, or nothing before one finished."""
    if state.history:
        return f"the model keeps its last good weights (epoch {state.best_epoch})"
    return "no epoch had finished, so there are no good weights to keep"
