"""The one progress display, on stderr so stdout stays clean for data: rich bars on a terminal,
plain rate-limited lines elsewhere (a log file, CI, a notebook).

The trainer, the posterior sampler and ``compare`` all report through :class:`ProgressDisplay`;
a disabled display does nothing, so callers never branch on it.

What each setting of ``enabled`` (the estimators' ``verbose``, ``run_compare``'s ``progress``) gives:

============  ==========================  ==============================================
``enabled``   stderr is a terminal        stderr is not a terminal
============  ==========================  ==============================================
``True``      bars                        plain lines
``None``      bars                        nothing — plain lines inside :func:`lines_when_piped`
``False``     nothing                     nothing
============  ==========================  ==============================================

The Python API keeps silence off a terminal unless asked (``verbose=True``), so a library call in
someone's pipeline does not write to their logs; the command line wraps its training commands in
:func:`lines_when_piped`, so ``make demo > log`` or a CI job shows the run advancing (``--quiet``
passes ``False``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

#: at most one plain line per task in this many seconds (plus its first and last update), so a
#: 100-epoch run that takes ten seconds writes three lines, not a hundred
LINE_INTERVAL_S = 5.0

_piped_lines = False  # set by lines_when_piped(): what enabled=None means off a terminal


@contextmanager
def lines_when_piped(on: bool = True) -> Iterator[None]:
    """Inside the block, displays made with ``enabled=None`` print plain lines when stderr is not a
    terminal (instead of nothing). The command line runs its training commands in it."""
    global _piped_lines
    before, _piped_lines = _piped_lines, on
    try:
        yield
    finally:
        _piped_lines = before


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


@dataclass
class _Line:
    """A task's state for plain lines: what to print and when the last line went out."""

    description: str
    total: int | None
    completed: int
    started_at: float
    started_from: int
    unit: str
    terms: str = ""
    printed_at: float | None = None
    printed: int | None = None       # the ``completed`` of the last printed line
    finished: bool = False


class ProgressDisplay:
    """Named progress bars (tasks) with a free-text ``terms`` column.

    ``enabled`` — see the module's table: ``True`` always reports (bars on a terminal, plain lines
    elsewhere), ``None`` reports on a terminal (and off one inside :func:`lines_when_piped`),
    ``False`` never. Use as a context manager, or call :meth:`start` / :meth:`stop`.

    Plain lines look like ``swae: epoch 12/100  total=0.031  val=0.034  elapsed 0:04  ETA 0:29``;
    each task prints its first update, then at most one line every ``interval`` seconds, then its
    last state (when it reaches its total, is hidden, or the display stops). Under torchrun only
    rank 0 prints them. ``stream`` (default ``sys.stderr``) and ``clock`` (default
    ``time.monotonic``) are for tests.
    """

    def __init__(self, enabled: bool | None = None, *, interval: float = LINE_INTERVAL_S,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self._stream = stream
        terminal = _is_terminal(self.stream)
        if enabled is False:
            self.mode = "off"
        elif terminal:
            self.mode = "bars"
        elif enabled or _piped_lines:
            self.mode = "lines" if os.environ.get("RANK", "0") == "0" else "off"
        else:
            self.mode = "off"
        #: whether anything is shown (callers may skip work that only feeds the display)
        self.enabled = self.mode != "off"
        self.interval = float(interval)
        self._clock = clock
        self._bar: Any = None
        self._lines: dict[int, _Line] | None = None

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self._stream is None else self._stream

    def start(self) -> "ProgressDisplay":
        """Begin showing (idempotent)."""
        if self.mode == "bars" and self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[terms]}"),
                                 console=Console(file=self.stream) if self._stream is not None else Console(stderr=True))
            self._bar.start()
        elif self.mode == "lines" and self._lines is None:
            self._lines = {}
        return self

    def stop(self) -> None:
        """Stop showing; plain lines first print each unfinished task's last state (an early stop)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._lines is not None:
            for task in self._lines.values():
                self._finish(task)
            self._lines = None

    def __enter__(self) -> "ProgressDisplay":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def add(self, description: str, total: int | None, completed: int = 0, *, unit: str | None = None) -> int | None:
        """A new task; returns its handle (None when nothing is shown).

        ``unit`` names what the task counts in plain lines (``"epoch"`` gives ``epoch 3/100``);
        by default a one-word description (a model or run name) counts epochs and a longer one
        (``"all runs"``, ``"bae SGHMC epochs"``) says what it counts itself.
        """
        if self._bar is not None:
            return self._bar.add_task(description, total=total, completed=completed, terms="")
        if self._lines is None:
            return None
        name = description.strip()
        handle = len(self._lines)
        self._lines[handle] = _Line(name, total, completed, self._clock(), completed,
                                    unit if unit is not None else ("epoch" if len(name.split()) == 1 else ""))
        return handle

    def update(self, task: int | None, *, advance: int | None = None, completed: int | None = None,
               total: int | None = None, terms: str | None = None, visible: bool | None = None) -> None:
        """Move a task on (``advance`` steps, or to ``completed``), change its total or terms, or hide
        it (``visible=False``: a finished compare run)."""
        if task is None:
            return
        if self._bar is not None:
            fields: dict[str, Any] = {k: v for k, v in (("advance", advance), ("completed", completed),
                                                        ("total", total), ("visible", visible)) if v is not None}
            if terms is not None:
                fields["terms"] = terms
            self._bar.update(task, **fields)
            return
        line = None if self._lines is None else self._lines.get(task)
        if line is None or line.finished:
            return
        if total is not None:
            if line.total is None:  # a waiting task (a queued compare run) starts its clock now
                line.started_at = self._clock()
                line.started_from = completed if completed is not None else line.completed
            line.total = total
        if terms is not None:
            line.terms = terms
        moved = advance is not None or completed is not None
        line.completed = completed if completed is not None else line.completed + (advance or 0)
        if visible is False:
            self._finish(line)
        elif line.total is not None and line.completed >= line.total:
            self._finish(line)
        elif moved and line.completed > 0 and (  # a run's "started" update (epoch 0) prints nothing
                line.printed_at is None or self._clock() - line.printed_at >= self.interval):
            self._print(line)

    def _finish(self, line: _Line) -> None:
        if not line.finished and line.printed != line.completed and line.completed > line.started_from:
            self._print(line)
        line.finished = True

    def _print(self, line: _Line) -> None:
        now = self._clock()
        count = f"{line.completed}/{line.total}" if line.total is not None else str(line.completed)
        parts = [f"{line.description}: {line.unit + ' ' if line.unit else ''}{count}"]
        if line.terms:
            parts.append(line.terms)
        elapsed = now - line.started_at
        parts.append(f"elapsed {_clock_text(elapsed)}")
        done = line.completed - line.started_from
        if line.total is not None and 0 < done and line.completed < line.total:
            parts.append(f"ETA {_clock_text(elapsed / done * (line.total - line.completed))}")
        print("  ".join(parts), file=self.stream, flush=True)
        line.printed_at, line.printed = now, line.completed


def _clock_text(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``: minutes and seconds, hours when there are any."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_terms(record: dict[str, float]) -> str:
    """The loss terms of one history record, e.g. ``total=0.12  kl=0.03  val=0.13``."""
    shown = "  ".join(f"{k[6:]}={v:.4g}" for k, v in record.items() if k.startswith("train_"))
    if "val_total" in record:
        shown += f"  val={record['val_total']:.4g}"
    return shown
