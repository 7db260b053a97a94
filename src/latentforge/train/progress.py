"""The one progress display: rich bars on stderr, so stdout stays clean for data.

The trainer, the posterior sampler and ``compare`` all report through :class:`ProgressDisplay`;
a disabled display does nothing, so callers never branch on it.
"""

from __future__ import annotations

import sys
from typing import Any


class ProgressDisplay:
    """Named progress bars (tasks) with a free-text ``terms`` column.

    ``enabled=None`` shows bars only when stderr is a terminal. Use as a context manager, or call
    :meth:`start` / :meth:`stop`.
    """

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._bar: Any = None

    def start(self) -> "ProgressDisplay":
        if self.enabled and self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[terms]}"),
                                 console=Console(stderr=True))
            self._bar.start()
        return self

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "ProgressDisplay":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def add(self, description: str, total: int | None, completed: int = 0) -> int | None:
        """A new bar; returns its handle (None when disabled)."""
        if self._bar is None:
            return None
        return self._bar.add_task(description, total=total, completed=completed, terms="")

    def update(self, task: int | None, *, advance: int | None = None, completed: int | None = None,
               total: int | None = None, terms: str | None = None, visible: bool | None = None) -> None:
        if self._bar is None or task is None:
            return
        fields: dict[str, Any] = {k: v for k, v in (("advance", advance), ("completed", completed),
                                                    ("total", total), ("visible", visible)) if v is not None}
        if terms is not None:
            fields["terms"] = terms
        self._bar.update(task, **fields)


def format_terms(record: dict[str, float]) -> str:
    """The loss terms of one history record, e.g. ``total=0.12  kl=0.03  val=0.13``."""
    shown = "  ".join(f"{k[6:]}={v:.4g}" for k, v in record.items() if k.startswith("train_"))
    if "val_total" in record:
        shown += f"  val={record['val_total']:.4g}"
    return shown
