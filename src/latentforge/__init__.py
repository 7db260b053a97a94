"""latentforge: autoencoder-based representation learning with sliced-Wasserstein tools.

The public names below are imported on first use (PEP 562 module ``__getattr__``), so that
``import latentforge`` — and with it every ``latentforge.<submodule>`` import, the CLI's included —
does not pay for PyTorch and scikit-learn before a command needs them. ``from latentforge import
Autoencoder`` and ``latentforge.Autoencoder`` work exactly as an eager import would.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, eagerly
    from .config import TrainConfig
    from .errors import ArtifactError, InputError, TrainingDivergedError
    from .estimator import AnomalyDetector, Autoencoder, load
    from .sae import SparseAutoencoder

#: public name → the module that defines it (imported when the name is first asked for)
_LAZY = {
    "AnomalyDetector": ".estimator", "Autoencoder": ".estimator", "load": ".estimator",
    "TrainConfig": ".config",
    "ArtifactError": ".errors", "InputError": ".errors", "TrainingDivergedError": ".errors",
    "SparseAutoencoder": ".sae",
}

__all__ = ["AnomalyDetector", "ArtifactError", "Autoencoder", "InputError", "SparseAutoencoder", "TrainConfig",
           "TrainingDivergedError", "__version__", "load"]


def __getattr__(name: str) -> Any:
    """A public name (imported now and cached), or a subpackage such as ``latentforge.data``: an
    eager ``__init__`` imported those as a side effect, so ``import latentforge; latentforge.data``
    keeps working."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
