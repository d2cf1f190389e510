"""Compare what the browser showed: decode PNG screenshots and measure how much of a figure changed."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Differences up to this many grey levels per channel count as unchanged (resampling noise).
PIXEL_TOLERANCE = 8


def png_to_rgb(png: bytes) -> np.ndarray:
    """Decode PNG bytes to an (H, W, 3) uint8 RGB array."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def changed_fraction(before: np.ndarray, after: np.ndarray, tolerance: int = PIXEL_TOLERANCE) -> float:
    """Fraction of pixels whose colour moved by more than `tolerance` in any channel (1.0 if sizes differ)."""
    if before.shape != after.shape:
        return 1.0
    difference = np.abs(before.astype(np.int16) - after.astype(np.int16)).max(axis=-1)
    return float(np.mean(difference > tolerance))
