"""Sparse autoencoders on model activations: extraction, training, metrics, a feature browser.

- :class:`SparseAutoencoder` — the estimator (``fit``, ``transform``, ``inverse_transform``,
  ``components_``, ``evaluate``, ``save``/``load``); architectures in :mod:`.architectures`.
- :func:`extract_activations` — a Hugging Face model's activations at one module, to sharded
  safetensors (:class:`ActivationStore` reads them back).
- :mod:`.metrics` — FVU, L0, dead/dense fractions, density histogram;
  :func:`downstream_fidelity` — the model's output with the reconstruction spliced in.
- :func:`write_feature_browser` — a self-contained, searchable HTML page of the features.

See docs/sae.md.
"""

from .activations import extract_activations, read_texts
from .architectures import ARCHITECTURES, build_sae
from .browser import write_feature_browser
from .estimator import SparseAutoencoder, load
from .fidelity import downstream_fidelity
from .store import ActivationStore, is_activations_dir, open_activations
from .metrics import SAEStatistics, density_histogram, feature_density, fraction_of_variance_unexplained, l0

__all__ = [
    "ARCHITECTURES", "ActivationStore", "SAEStatistics", "SparseAutoencoder", "build_sae", "density_histogram",
    "downstream_fidelity", "extract_activations", "feature_density", "fraction_of_variance_unexplained",
    "is_activations_dir", "l0", "load", "open_activations", "read_texts", "write_feature_browser",
]
