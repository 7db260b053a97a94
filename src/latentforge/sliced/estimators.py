"""Deprecated: the estimators moved to their own modules; import them from ``latentforge.sliced``.

Kept for one release. ``sliced_wasserstein_cv`` now lives in ``control_variates``,
``max_sliced_wasserstein`` in ``max_sliced``, ``distributional_sliced_wasserstein`` and
``PushforwardNet`` in ``distributional``, ``sample_vmf`` in ``directions``. Nothing inside the
package imports this module.
"""

import warnings

from .control_variates import CV_VARIANTS, sliced_wasserstein_cv
from .directions import sample_vmf
from .distributional import DSW_FAMILIES, PushforwardNet, distributional_sliced_wasserstein
from .max_sliced import max_sliced_wasserstein

warnings.warn("latentforge.sliced.estimators is deprecated; import these names from latentforge.sliced",
              DeprecationWarning, stacklevel=2)

__all__ = [
    "CV_VARIANTS",
    "DSW_FAMILIES",
    "PushforwardNet",
    "distributional_sliced_wasserstein",
    "max_sliced_wasserstein",
    "sample_vmf",
    "sliced_wasserstein_cv",
]
