"""Data pipeline speed: the library's tf.data pipeline against one-file-at-a-time Python loops over the same files.

The plain loop is the way most tutorials load the Kaggle pairs: PIL open, split the halves, nearest palette
colour per pixel in NumPy, resize with PIL, then random scale / crop / flip in NumPy. A second loop that
decodes labels with the library's vectorised `read_pair` shows how much of the gap is the per-pixel loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from bench.nearest_colour import nearest_palette_ids_per_pixel
from bench.results import Row
from bench.targets import PIPELINE_MIN_SPEEDUP, speedup, speedup_met
from bench.timing import timed
from pspnet_lib.data import IGNORE_LABEL, list_pairs, read_pair, resolve_dataset_dirs

SCALE_RANGE = (0.5, 2.0)
PairLoader = Callable[[Path], tuple[np.ndarray, np.ndarray]]


def resize_pair_pil(
    photo: np.ndarray, ids: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Photo (uint8) bilinearly and ids with nearest neighbour, to (height, width), with PIL."""
    image = np.asarray(Image.fromarray(photo).resize((width, height), Image.BILINEAR))
    labels = np.asarray(Image.fromarray(ids).resize((width, height), Image.NEAREST))
    return image, labels


def augment_pair_numpy(
    photo: np.ndarray, ids: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random scale, pad (image 0, label ignore), random `size` crop and flip, in NumPy and PIL."""
    scaled = max(1, round(size * rng.uniform(*SCALE_RANGE)))
    photo, ids = resize_pair_pil(photo, ids, scaled, scaled)
    pad = max(0, size - scaled)
    photo = np.pad(photo, ((0, pad), (0, pad), (0, 0)))
    ids = np.pad(ids, ((0, pad), (0, pad)), constant_values=IGNORE_LABEL)
    top, left = rng.integers(0, ids.shape[0] - size + 1), rng.integers(0, ids.shape[1] - size + 1)
    photo, ids = photo[top : top + size, left : left + size], ids[top : top + size, left : left + size]
    if rng.random() < 0.5:
        photo, ids = photo[:, ::-1], ids[:, ::-1]
    return photo, ids


def tutorial_read_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """PIL open, split the halves, nearest palette colour pixel by pixel: (photo uint8, ids uint8)."""
    pixels = np.array(Image.open(path).convert("RGB"))
    half = pixels.shape[1] // 2
    return pixels[:, :half], nearest_palette_ids_per_pixel(pixels[:, half:])


def load_one_by_one(
    paths: list[Path], read: PairLoader, size: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read, resize, augment and scale every file in turn: (image float32 [0, 1], ids int32) pairs."""
    rng = np.random.default_rng(seed)
    pairs = []
    for path in paths:
        photo, ids = read(path)
        photo, ids = resize_pair_pil(photo, ids, size, size)
        photo, ids = augment_pair_numpy(photo, ids, size, rng)
        pairs.append((photo.astype(np.float32) / 255.0, ids.astype(np.int32)))
    return pairs


def loop_rate(paths: list[Path], read: PairLoader, size: int) -> float:
    """Pairs per second of `load_one_by_one` over `paths`."""
    _, seconds = timed(lambda: load_one_by_one(paths, read, size))
    return len(paths) / seconds


def tf_data_rate(root: Path, size: int, limit: int, batch_size: int = 8) -> float:
    """Pairs per second of the library's augmented tf.data pipeline over `limit` training files (first batch untimed)."""
    from pspnet_lib.data import make_dataset

    dataset = make_dataset(
        root, "train", image_size=size, batch_size=batch_size, augment=True, shuffle=True, limit=limit
    )
    iterator = iter(dataset.repeat())
    next(iterator)  # builds the graph and starts the worker threads
    batches = max(1, limit // batch_size)
    _, seconds = timed(lambda: [next(iterator) for _ in range(batches)])
    return batches * batch_size / seconds


def pipeline_rows(root: Path, size: int = 256, tf_data_files: int = 200, loop_files: int = 12) -> list[Row]:
    """Rows: tf.data, plain tutorial loop, vectorised loop (pairs/s) and the speed-up against the target."""
    paths = list_pairs(resolve_dataset_dirs(root).train)
    tf_data_files, loop_files = min(tf_data_files, len(paths)), min(loop_files, len(paths))
    pipeline = tf_data_rate(root, size, tf_data_files)
    plain = loop_rate(paths[:loop_files], tutorial_read_pair, size)
    vectorised = loop_rate(paths[:tf_data_files], read_pair, size)
    ratio = speedup(pipeline, plain)
    where = f"{size}x{size}, augmented"
    return [
        Row(
            "pipeline",
            "tf.data pipeline (make_dataset)",
            pipeline,
            "pairs/s",
            f"{where}, {tf_data_files} files",
        ),
        Row(
            "pipeline",
            "plain loop: PIL + per-pixel nearest colour",
            plain,
            "pairs/s",
            f"{where}, {loop_files} files",
        ),
        Row(
            "pipeline",
            "loop with vectorised read_pair",
            vectorised,
            "pairs/s",
            f"{where}, {tf_data_files} files",
        ),
        Row(
            "pipeline",
            "tf.data speed-up over the plain loop",
            ratio,
            "x",
            "",
            f">= {PIPELINE_MIN_SPEEDUP:g}x",
            speedup_met(ratio),
        ),
    ]
