"""Nearest palette colour, vectorised and per pixel (the tutorial way): the pipeline section's plain baseline."""

from __future__ import annotations

import numpy as np

from pspnet_lib.data import PALETTE

PALETTE_FLOAT = PALETTE.astype(np.float32)


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """`rgb` as a uint8 array (..., 3); ValueError otherwise."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB of shape (..., 3), got {rgb.dtype} {rgb.shape}")
    return rgb


def nearest_palette_ids(rgb: np.ndarray) -> np.ndarray:
    """Train id (uint8) of the nearest of the 19 palette colours for every pixel of uint8 RGB (..., 3)."""
    pixels = check_rgb(rgb).astype(np.float32)
    squared = ((pixels[..., None, :] - PALETTE_FLOAT) ** 2).sum(-1)
    return squared.argmin(-1).astype(np.uint8)


def nearest_palette_ids_per_pixel(rgb: np.ndarray) -> np.ndarray:
    """Like `nearest_palette_ids` for (H, W, 3), one pixel at a time in a Python loop, as tutorials do."""
    rgb = check_rgb(rgb)
    if rgb.ndim != 3:
        raise ValueError(f"expected one image (H, W, 3), got shape {rgb.shape}")
    ids = np.zeros(rgb.shape[:2], np.uint8)
    for row in range(rgb.shape[0]):
        for column in range(rgb.shape[1]):
            distances = np.sum((PALETTE_FLOAT - rgb[row, column]) ** 2, axis=1)
            ids[row, column] = np.argmin(distances)
    return ids

