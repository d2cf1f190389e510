"""The Cityscapes label palette: train ids <-> colours, with JPEG-tolerant colour decoding.

`decode_mask` works on NumPy arrays and, with the same arithmetic, on TensorFlow tensors inside a
tf.data graph. All colour distances are computed exactly (integers below 2**24 in float32), so both
paths give identical ids, ties included (the lower table index wins).
"""

from __future__ import annotations

from typing import Any

import numpy as np

NUM_CLASSES = 19
IGNORE_LABEL = 255

CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip

PALETTE = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)  # fmt: skip
PALETTE.setflags(write=False)

# Cityscapes labels without a train id. "polegroup" and "license plate" are left out: they share
# the colours of pole and car, so a colour map cannot tell them apart from those classes.
VOID_COLORS: dict[str, tuple[int, int, int]] = {
    "unlabeled": (0, 0, 0),
    "ego vehicle": (0, 0, 0),
    "rectification border": (0, 0, 0),
    "out of roi": (0, 0, 0),
    "static": (0, 0, 0),
    "dynamic": (111, 74, 0),
    "ground": (81, 0, 81),
    "parking": (250, 170, 160),
    "rail track": (230, 150, 140),
    "guard rail": (180, 165, 180),
    "bridge": (150, 100, 100),
    "tunnel": (150, 120, 90),
    "caravan": (0, 0, 90),
    "trailer": (0, 0, 110),
}

# Every distinct label colour (train colours first, then void colours) and the id it decodes to.
COLOR_TABLE = np.concatenate([PALETTE, np.array(list(dict.fromkeys(VOID_COLORS.values())), np.uint8)])
COLOR_TABLE.setflags(write=False)
COLOR_TABLE_IDS = np.concatenate(
    [np.arange(NUM_CLASSES, dtype=np.uint8), np.full(len(COLOR_TABLE) - NUM_CLASSES, IGNORE_LABEL, np.uint8)]
)
COLOR_TABLE_IDS.setflags(write=False)

# Nearest-colour decoding gives up on pixels farther than this (Euclidean RGB distance) from every
# label colour. In the real Kaggle pairs ~95% of label pixels lie within 40 of a palette colour and
# only ~82% within 15: 15 would throw away a fifth of the labels, mostly correct ones, while the ~5%
# beyond 40 are JPEG mixes of two neighbouring colours whose nearest colour is a guess.
DEFAULT_MAX_DISTANCE = 40.0


def color_index_of(name: str) -> int:
    """Row of `COLOR_TABLE` holding the colour of a train class or void label `name`."""
    if name in CLASS_NAMES:
        return CLASS_NAMES.index(name)
    if name not in VOID_COLORS:
        raise ValueError(f"unknown label name {name!r}: expected one of CLASS_NAMES or VOID_COLORS")
    matches = np.flatnonzero((COLOR_TABLE == VOID_COLORS[name]).all(axis=1))
    return int(matches[0])


def decode_mask(rgb: Any, max_distance: float = DEFAULT_MAX_DISTANCE) -> Any:
    """Colour label map (..., H, W, 3) uint8 -> train ids (..., H, W) uint8; void or far colours -> 255."""
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    if isinstance(rgb, np.ndarray):
        return _decode_mask_numpy(rgb, max_distance)
    return _decode_mask_tensorflow(rgb, max_distance)


def _decode_mask_numpy(rgb: np.ndarray, max_distance: float) -> np.ndarray:
    """NumPy path of `decode_mask`, exact in float32 like the TensorFlow path."""
    if rgb.dtype != np.uint8 or rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise ValueError(f"decode_mask expects a uint8 array (..., H, W, 3), got {rgb.dtype} {rgb.shape}")
    nearest, squared_distance = nearest_colors(rgb)
    too_far = squared_distance > max_distance**2
    return np.where(too_far, np.uint8(IGNORE_LABEL), COLOR_TABLE_IDS[nearest])


def nearest_colors(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of `rgb` (..., 3) uint8: the row of `COLOR_TABLE` nearest to it and its squared RGB distance (exact)."""
    pixels = rgb.astype(np.float32)
    colors = COLOR_TABLE.astype(np.float32)
    squared = (pixels**2).sum(-1, keepdims=True) - 2 * pixels @ colors.T + (colors**2).sum(-1)
    nearest = squared.argmin(-1)
    return nearest, np.take_along_axis(squared, nearest[..., None], -1)[..., 0]


def _decode_mask_tensorflow(rgb: Any, max_distance: float) -> Any:
    """TensorFlow path of `decode_mask` (graph-safe), exact in float32."""
    import tensorflow as tf

    rgb = tf.convert_to_tensor(rgb)
    if rgb.dtype != tf.uint8 or rgb.shape.rank not in (None, 3, 4) or rgb.shape[-1] not in (None, 3):
        raise ValueError(
            f"decode_mask expects a uint8 tensor (H, W, 3) or (B, H, W, 3), got {rgb.dtype} {rgb.shape}"
        )
    pixels = tf.cast(rgb, tf.float32)
    colors = tf.constant(COLOR_TABLE, tf.float32)
    cross = tf.einsum("...c,kc->...k", pixels, colors)  # tensordot here trips a oneDNN uint8 warning
    squared = tf.reduce_sum(pixels**2, -1, keepdims=True) - 2.0 * cross + tf.reduce_sum(colors**2, -1)
    nearest = tf.argmin(squared, axis=-1, output_type=tf.int32)
    ids = tf.gather(tf.constant(COLOR_TABLE_IDS, tf.int32), nearest)
    too_far = tf.reduce_min(squared, axis=-1) > float(max_distance) ** 2
    return tf.cast(tf.where(too_far, IGNORE_LABEL, ids), tf.uint8)


def ids_to_colors(ids: np.ndarray) -> np.ndarray:
    """Train ids (..., H, W) -> colour label map (..., H, W, 3) uint8; 255 (ignore) -> black."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids_to_colors expects integer train ids, got dtype {ids.dtype}")
    bad = np.unique(ids[((ids < 0) | (ids >= NUM_CLASSES)) & (ids != IGNORE_LABEL)])
    if bad.size:
        raise ValueError(
            f"ids_to_colors got ids {bad[:10].tolist()}: expected 0..{NUM_CLASSES - 1} or {IGNORE_LABEL}"
        )
    lookup = np.zeros((256, 3), np.uint8)
    lookup[:NUM_CLASSES] = PALETTE
    return lookup[ids.astype(np.int64)]


def overlay_colors(image: np.ndarray, ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 RGB blend of `image` (float [0, 1]) with the palette colours of `ids`; ignored pixels left as is."""
    if image.shape[:2] != ids.shape:
        raise ValueError(f"image {image.shape[:2]} and ids {ids.shape} must have the same height and width")
    photo = np.clip(image, 0, 1) * 255.0
    blended = (1 - alpha) * photo + alpha * ids_to_colors(ids).astype(np.float32)
    blended = np.where((ids == IGNORE_LABEL)[..., None], photo, blended)
    return np.rint(blended).astype(np.uint8)
