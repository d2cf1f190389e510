"""Data pipeline speed: the library's tf.data pipeline against one-file-at-a-time Python loops over the same files.

The plain loop is the way most tutorials load the Kaggle pairs: PIL open, split the halves, nearest palette
colour per pixel in NumPy, resize with PIL, then random scale / crop / flip in NumPy. A second loop that
decodes labels with the library's vectorised `read_pair` shows how much of the gap is the per-pixel loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from bench.nearest_colour import nearest_palette_ids_per_pixel
from bench.results import Row
from bench.targets import PIPELINE_MIN_PAIRS_PER_SECOND, PIPELINE_MIN_SPEEDUP, rate_met, speedup, speedup_met
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


def epoch_rates(
    root: Path, size: int, limit: int, batch_size: int = 8, later_epochs: int = 2
) -> tuple[float, float, float]:
    """The library's augmented, shuffled training pipeline over `limit` files: pairs/s and CPU time.

    (first epoch pairs/s, later epochs pairs/s, later epochs CPU ms per pair): the first epoch decodes
    every JPEG and label (and fills the cache); the later ones, timed together, read the cache and only
    augment. Iterator start-up counts, as in training. CPU time (all threads) barely depends on other
    work on a shared machine, unlike the wall-clock rates.
    """
    from pspnet_lib.data import make_dataset

    dataset = make_dataset(
        root, "train", image_size=size, batch_size=batch_size, augment=True, shuffle=True, limit=limit
    )

    def one_epoch() -> int:
        """Iterate the dataset once; the number of pairs seen."""
        return sum(int(labels.shape[0]) for _, labels in dataset)

    pairs, first_seconds = timed(one_epoch)
    cpu_start = time.process_time()
    later_pairs, later_seconds = timed(lambda: sum(one_epoch() for _ in range(later_epochs)))
    cpu_ms_per_pair = 1000 * (time.process_time() - cpu_start) / later_pairs
    return pairs / first_seconds, later_pairs / later_seconds, cpu_ms_per_pair


def pipeline_rows(root: Path, size: int = 256, tf_data_files: int = 800, loop_files: int = 12) -> list[Row]:
    """Rows: tf.data first and later epoch, plain tutorial loop, vectorised loop (pairs/s), against the targets."""
    paths = list_pairs(resolve_dataset_dirs(root).train)
    tf_data_files, loop_files = min(tf_data_files, len(paths)), min(loop_files, len(paths))
    first, pipeline, cpu_ms = epoch_rates(root, size, tf_data_files)
    plain = loop_rate(paths[:loop_files], tutorial_read_pair, size)
    vectorised = loop_rate(paths[:tf_data_files], read_pair, size)
    ratio = speedup(pipeline, plain)
    where = f"{size}x{size}, augmented"
    return [
        Row(
            "pipeline",
            "tf.data pipeline (make_dataset), first epoch",
            first,
            "pairs/s",
            f"{where}, {tf_data_files} files: JPEG and colour decoding, fills the cache",
        ),
        Row(
            "pipeline",
            "tf.data pipeline (make_dataset), later epochs",
            pipeline,
            "pairs/s",
            f"{where}, {tf_data_files} files: from the cache, augmented anew",
            f">= {PIPELINE_MIN_PAIRS_PER_SECOND:g} pairs/s",
            rate_met(pipeline),
        ),
        Row(
            "pipeline",
            "tf.data pipeline (make_dataset), later epochs, CPU time",
            cpu_ms,
            "ms/pair",
            f"{where}: all threads; 2 cores give at most {2000 / cpu_ms:.0f} pairs/s however busy the machine",
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
            "tf.data speed-up over the plain loop (later epochs)",
            ratio,
            "x",
            "",
            f">= {PIPELINE_MIN_SPEEDUP:g}x",
            speedup_met(ratio),
        ),
    ]
