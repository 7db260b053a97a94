"""The sliced-Wasserstein family: plain functions on tensors (NumPy in → NumPy out).

- distances: :func:`sliced_wasserstein` (SW_p), :func:`sliced_wasserstein_power` (SW_p^p),
  :func:`sliced_wasserstein_cv` (control variates), :func:`max_sliced_wasserstein`,
  :func:`distributional_sliced_wasserstein`, :func:`sliced_mmd_riesz` (energy distance);
- on the sphere: :func:`sliced_wasserstein_sphere` (SSW_p), :func:`sliced_wasserstein_sphere_unif`
  (SSW_2 to the uniform measure) and :func:`wasserstein_circle` (W_p^p on the circle);
- directions: :func:`projections` (``mc``, ``orthogonal``, ``qmc``, ``rqmc`` and, in d = 3,
  ``spiral``, ``equal_area``, ``energy`` and their randomisations), :func:`sample_vmf`,
  :class:`DirectionReservoir`, :class:`PushforwardNet` (DSW's learned directions);
- testing: :func:`sliced_two_sample_test`;
- training: :class:`SlicedLoss`, :func:`sliced_loss`, :func:`sliced_training_loss` (unchecked,
  for inside a training step).

Modules: ``core`` (exact 1-D transport, SW_p and SW_p^p), ``directions`` (direction samplers,
vMF included), ``control_variates``, ``max_sliced`` (and the ascent on the sphere that
``distributional`` reuses), ``distributional``, ``mmd``, ``sphere`` (spherical slicing and the
circle), ``reservoir``, ``two_sample``, ``loss``;
``_checks`` holds the input checks and output conversions they share. ``estimators`` is a
deprecated shim (one release) re-exporting the estimators from their new modules.
"""

from .control_variates import sliced_wasserstein_cv
from .core import sliced_wasserstein, sliced_wasserstein_power, wasserstein_1d
from .directions import METHODS, RANDOMISED_METHODS, SPHERE3_METHODS, projections, sample_vmf
from .distributional import PushforwardNet, distributional_sliced_wasserstein
from .loss import LOSS_METHODS, SlicedLoss, sliced_loss, sliced_training_loss
from .max_sliced import max_sliced_wasserstein
from .mmd import sliced_mmd_riesz
from .reservoir import DirectionReservoir
from .sphere import sliced_wasserstein_sphere, sliced_wasserstein_sphere_unif, wasserstein_circle
from .two_sample import TwoSampleResult, sliced_two_sample_test

__all__ = [
    "DirectionReservoir",
    "LOSS_METHODS",
    "METHODS",
    "PushforwardNet",
    "RANDOMISED_METHODS",
    "SPHERE3_METHODS",
    "SlicedLoss",
    "TwoSampleResult",
    "distributional_sliced_wasserstein",
    "max_sliced_wasserstein",
    "projections",
    "sample_vmf",
    "sliced_loss",
    "sliced_training_loss",
    "sliced_mmd_riesz",
    "sliced_two_sample_test",
    "sliced_wasserstein",
    "sliced_wasserstein_cv",
    "sliced_wasserstein_power",
    "sliced_wasserstein_sphere",
    "sliced_wasserstein_sphere_unif",
    "wasserstein_1d",
    "wasserstein_circle",
]
