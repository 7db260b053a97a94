"""Old import paths kept for one release after a module moved."""

from __future__ import annotations

import warnings


def warn_moved(old: str, new: str) -> None:
    """Warn once per import that module ``old`` moved to ``new``."""
    warnings.warn(f"{old} is deprecated and will be removed in the next release; import from {new} instead.",
                  DeprecationWarning, stacklevel=3)
