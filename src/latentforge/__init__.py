"""latentforge: autoencoder-based representation learning with sliced-Wasserstein tools."""

from ._version import __version__

from .estimator import AnomalyDetector, Autoencoder, load  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .errors import ArtifactError, InputError, TrainingDivergedError  # noqa: E402
from .sae import SparseAutoencoder  # noqa: E402

__all__ = ["AnomalyDetector", "ArtifactError", "Autoencoder", "InputError", "SparseAutoencoder", "TrainConfig", "TrainingDivergedError", "__version__", "load"]
