"""Images: arrays shaped (N, H, W) or (N, C, H, W), and folders of PNG/JPEG files, scaled to [0, 1].

Scaling rule (decided at fit time and reused for new data): arrays whose values reach above 1
(up to 255, e.g. uint8 pixels) are divided by 255; arrays already in [0, 1] are kept.
Anything negative, above 255, NaN or infinite is an error. ``fit_stream`` decides the rule in
one pass over chunks of images, from the range over all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def as_nchw(array: np.ndarray, source: str = "the images") -> np.ndarray:
    """Return a (N, C, H, W) view of an (N, H, W) or (N, C, H, W) array, or raise."""
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise InputError(f"{source} must be shaped (N, H, W) or (N, C, H, W); got shape {array.shape}.")
    if array.shape[0] == 0:
        raise InputError(f"{source} contain no images (shape {array.shape}).")
    if array.shape[1] > 4 and array.shape[-1] in (1, 3, 4):
        raise InputError(
            f"{source} look channels-last (shape {array.shape}); pass (N, C, H, W), "
            f"e.g. with array.transpose(0, 3, 1, 2)."
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{source} must be numeric, got dtype {array.dtype}.")
    return array


def load_image_array(path: Path) -> np.ndarray:
    """Load `.npy` or `.npz` (the first array, or the one named 'x'/'X'/'images')."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if not keys:
                    raise InputError(f"{path} holds no arrays.")
                key = next((k for k in ("x", "X", "images") if k in keys), keys[0])
                array = archive[key]
        else:
            array = np.load(path, allow_pickle=False)
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path} is not a readable NumPy array file ({exc}).") from None
    return as_nchw(array, source=str(path))


GREY_MODES = ("L", "1", "LA", "I", "I;16")  # PIL modes read as one grey channel


def scan_image_folder(path: Path) -> tuple[list[Path], str, tuple[int, int, int]]:
    """(files sorted by name, PIL mode to decode with, (C, H, W)) of a folder of PNG/JPEG files,
    from the headers alone: grey-only folders give one channel, anything else RGB; all images must
    share one size (an error names the odd one)."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"the folder {path} contains no PNG or JPEG images.")
    grey, size = True, None
    for f in files:
        try:
            with Image.open(f) as im:
                this_size, mode = im.size, im.mode
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"image {f.name} in {path} cannot be read ({exc}).") from None
        if size is None:
            size = this_size
        elif this_size != size:
            raise InputError(f"image {f.name} is {this_size[0]}x{this_size[1]} but {files[0].name} is "
                             f"{size[0]}x{size[1]}; all images must share one size.")
        grey = grey and mode in GREY_MODES
    return files, "L" if grey else "RGB", (1 if grey else 3, size[1], size[0])


def decode_images(files: list[Path], mode: str, shape: tuple[int, int, int]) -> np.ndarray:
    """The files decoded in ``mode`` as one (N, C, H, W) uint8 array, one file open at a time."""
    from PIL import Image

    out = np.empty((len(files), *shape), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                pixels = np.asarray(im.convert(mode), dtype=np.uint8)
        except OSError as exc:
            raise InputError(f"image {f.name} cannot be decoded ({exc}).") from None
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if pixels.shape != shape:
            raise InputError(f"image {f.name} is now shaped {pixels.shape}, not {shape}; the folder changed.")
        out[i] = pixels
    return out


def load_image_folder(path: Path) -> tuple[np.ndarray, list[str]]:
    """Load every PNG/JPEG in a folder (sorted by name) as one (N, C, H, W) uint8 array."""
    files, mode, shape = scan_image_folder(path)
    return decode_images(files, mode, shape), [f.name for f in files]


class ImagePreprocessor:
    """Check the image shape against the fitted one and scale pixels to [0, 1]."""

    kind = "image"
    #: images have no id or label columns; the attributes exist so code that carries a table's
    #: ids through (embed, score, evaluate) finds none instead of failing
    id_columns: list[str] = []
    label: str | None = None

    def __init__(self) -> None:
        self.shape_: tuple[int, int, int] | None = None
        self.scale_: float = 1.0

    def fit(self, images: np.ndarray) -> "ImagePreprocessor":
        """Fit on one (N, H, W) or (N, C, H, W) array."""
        return self.fit_stream([images])

    def fit_stream(self, chunks: Iterable[np.ndarray]) -> "ImagePreprocessor":
        """Fit in one pass over chunks of images, each (n, H, W) or (n, C, H, W), all of one (C, H, W).

        The state is the one ``fit`` gives on their concatenation: the scaling rule comes from
        the range over every chunk (a first chunk in [0, 1] followed by uint8 pixels gives /255).

        Parameters
        ----------
        chunks : iterable of numpy.ndarray
            The images, piece by piece; read once.

        Returns
        -------
        ImagePreprocessor
            ``self``, fitted.
        """
        if isinstance(chunks, np.ndarray):  # iterating one array would give single (C, H, W) images
            raise InputError("fit_stream takes an iterable of image arrays (e.g. [images]); use fit(images) for one array.")
        shape: tuple[int, int, int] | None = None
        lo, hi = np.inf, -np.inf
        for i, chunk in enumerate(chunks):
            source = "the images" if i == 0 else f"the images of chunk {i}"
            chunk = as_nchw(chunk, source=source)
            if shape is None:
                shape = tuple(int(s) for s in chunk.shape[1:])  # type: ignore[assignment]
            elif tuple(chunk.shape[1:]) != shape:
                raise InputError(f"chunk {i} holds images shaped (C, H, W) = {tuple(chunk.shape[1:])}, "
                                 f"but the first chunk's are {shape}; all images must share one shape.")
            # integers and floats are checked in place: no float64 copy of every chunk
            values = chunk if chunk.dtype.kind in "biuf" else chunk.astype(float)
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                raise InputError(f"{source} contain NaN or infinite values.")
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
        if shape is None:
            raise InputError("the images contain no images (no chunks).")
        # checked once all chunks are read, so the message gives the whole range, as fit does
        if lo < 0 or hi > 255:
            raise InputError(f"pixel values must lie in [0, 1] or [0, 255]; these range over [{lo:g}, {hi:g}].")
        self.shape_, self.scale_ = shape, 255.0 if hi > 1 else 1.0
        return self

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Images (N, H, W) or (N, C, H, W) of the fitted shape → float32 pixels in [0, 1].

        A table (a DataFrame) is refused in one sentence: an image model cannot read columns.
        """
        if self.shape_ is None:
            raise RuntimeError("the preprocessor is not fitted yet.")
        if isinstance(images, pd.DataFrame):
            raise InputError(f"the model was fitted on images shaped (C, H, W) = {self.shape_}, but got a table "
                             f"(columns {', '.join(map(repr, map(str, images.columns[:5])))}"
                             f"{' ...' if images.shape[1] > 5 else ''}); give it images.")
        images = as_nchw(images)
        if tuple(images.shape[1:]) != self.shape_:
            raise InputError(
                f"the model was fitted on images shaped (C, H, W) = {self.shape_}, but these are {tuple(images.shape[1:])}."
            )
        out = images.astype(np.float32) / self.scale_
        if not np.isfinite(out).all():
            raise InputError("the images contain NaN or infinite values.")
        if out.min() < 0 or out.max() > 1 + 1e-6:
            raise InputError(
                f"pixel values fall outside the range the model was fitted on ([0, {self.scale_:g}])."
            )
        return out

    def inverse_transform(self, features: np.ndarray) -> np.ndarray:
        """Model outputs in [0, 1] → images shaped (N, C, H, W), still in [0, 1]."""
        return np.asarray(features, dtype=np.float32).reshape((-1, *self.input_shape))

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.shape_ is None:
            raise RuntimeError("the preprocessor is not fitted yet.")
        return self.shape_

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def layout(self) -> list[tuple[str, int, int]]:
        return [("bernoulli", 0, self.n_features)]

    @property
    def feature_names(self) -> list[str]:
        c, h, w = self.input_shape
        return [f"c{k}_y{i}_x{j}" for k in range(c) for i in range(h) for j in range(w)]

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "shape": list(self.input_shape), "scale": self.scale_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "ImagePreprocessor":
        pre = cls()
        pre.shape_ = tuple(state["shape"])  # type: ignore[assignment]
        pre.scale_ = float(state["scale"])
        return pre
