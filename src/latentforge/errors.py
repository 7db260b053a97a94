"""Exceptions shared by every stage.

`InputError` is raised for anything the user can fix (a file, a column, a shape, a config);
the CLI turns it into one sentence and exit status 2. Everything else is a bug (exit 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(ValueError):
    """Bad input at the library's boundary: the message names the culprit in one sentence."""


class ArtifactError(InputError):
    """A saved model directory that cannot be loaded (missing, truncated, newer format...)."""


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite loss; the model keeps its last good weights.

    ``epoch``, ``step`` and ``term`` say where and which loss term; ``history`` holds the records
    of the epochs that finished and ``best_epoch`` the epoch whose weights were restored (0: none
    finished). ``Autoencoder.fit`` sets ``kept_model``: whether the estimator stayed fitted (and
    can be saved) with those weights. The CLI exits with status 3.
    """

    def __init__(self, message: str, epoch: int, step: int, term: str, *,
                 history: list[dict[str, float]] | None = None, best_epoch: int = 0):
        super().__init__(message)
        self.epoch, self.step, self.term = epoch, step, term
        self.history, self.best_epoch = list(history or []), best_epoch
        self.kept_model = False


def unknown_name_error(kind: str, name: str, choices: Iterable[str]) -> InputError:
    """An error for an unknown registry name that suggests the closest valid ones."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.4)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return InputError(f"unknown {kind} {name!r}: {hint}choose one of {', '.join(choices)}.")
