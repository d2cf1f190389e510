"""Reading a photo to predict on: any JPEG or PNG, or the left half of a Kaggle pair (photo | colour labels).

NumPy and Pillow only. A 2:1 image is a Kaggle pair only when its right half looks like a colour label map:
at least PAIR_MIN_LABEL_FRACTION of its pixels lie within PAIR_COLOR_DISTANCE (RGB) of a Cityscapes label
colour, and at least PAIR_MIN_COLORS of those colours each cover PAIR_MIN_COLOR_SHARE of it. The real pairs
have ~82% of label pixels within 15; photos (real or synthetic) have far fewer, noise and gradients ~2%, and
a dark photo, nearly all black, has one colour only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pspnet_lib.data.errors import DataError
from pspnet_lib.data.palette import COLOR_TABLE, nearest_colors

PAIR_COLOR_DISTANCE = 15.0
PAIR_MIN_LABEL_FRACTION = 0.6
PAIR_MIN_COLORS = 3
PAIR_MIN_COLOR_SHARE = 0.01
PAIR_SAMPLE_SIDE = 256  # the half is subsampled to about this many pixels a side before measuring
LAYOUTS = ("auto", "pair", "photo")


def label_color_shares(rgb: np.ndarray, max_distance: float = PAIR_COLOR_DISTANCE) -> np.ndarray:
    """Share of the pixels of `rgb` (H, W, 3) uint8 within `max_distance` of each Cityscapes label colour.

    One entry per row of the palette's colour table (train colours, then void colours); a pixel counts for its
    nearest colour only. Large images are subsampled on a regular grid.
    """
    step = max(1, max(rgb.shape[:2]) // PAIR_SAMPLE_SIDE)
    pixels = rgb[::step, ::step].reshape(-1, 3)
    nearest, squared_distance = nearest_colors(pixels)
    near = squared_distance <= max_distance**2
    return np.bincount(nearest[near], minlength=len(COLOR_TABLE)) / max(1, len(pixels))


def looks_like_label_map(rgb: np.ndarray) -> bool:
    """True when `rgb` (H, W, 3) uint8 is mostly Cityscapes label colours, several of them."""
    shares = label_color_shares(rgb)
    return bool(shares.sum() >= PAIR_MIN_LABEL_FRACTION and (shares >= PAIR_MIN_COLOR_SHARE).sum() >= PAIR_MIN_COLORS)


def is_kaggle_pair(pixels: np.ndarray) -> bool:
    """True for a photo|colour-labels pair: width = 2 x height and a right half that looks like a label map."""
    height, width = pixels.shape[:2]
    return width == 2 * height and looks_like_label_map(pixels[:, height:])


def read_rgb(path: Path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); DataError naming the file when it cannot be read."""
    try:
        with warnings.catch_warnings():  # a photo of 90-180 megapixels is fine here: `predict` shrinks it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
    except Image.DecompressionBombError as error:
        raise DataError(f"cannot read image {path}: {error} (shrink it first)") from error
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(f"cannot read image {path}: expected a JPEG or PNG photo or Kaggle pair ({error})") from error


def read_photo(path: Path, layout: str = "auto") -> tuple[np.ndarray, bool]:
    """An image file as float32 RGB (H, W, 3) in [0, 1] (of a pair, its left half), and whether it was a pair.

    `layout`: "auto" takes the left half only when `is_kaggle_pair` says so, "pair" always (the image must be
    twice as wide as high), "photo" never.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    path = Path(path)
    pixels = read_rgb(path)
    height, width = pixels.shape[:2]
    if layout == "pair" and width != 2 * height:
        raise DataError(
            f"{path} is {width}x{height}: a Kaggle pair must be twice as wide as high (photo left, labels right)"
        )
    is_pair = layout == "pair" or (layout == "auto" and is_kaggle_pair(pixels))
    if is_pair:
        pixels = pixels[:, :height]
    return pixels.astype(np.float32) / 255.0, is_pair


def load_photo(path: Path, layout: str = "auto") -> np.ndarray:
    """`read_photo`'s photo alone: float32 RGB (H, W, 3) in [0, 1]."""
    return read_photo(path, layout)[0]
