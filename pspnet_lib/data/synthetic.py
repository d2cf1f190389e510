"""The synthetic city: offline stand-in for the Kaggle pairs, written in exactly their file format.

Each pair is a 512x256 JPEG, photo on the left half, Cityscapes colour labels on the right half,
stored as `<root>/train/1.jpg ..` and `<root>/val/1.jpg ..`. Every pair is rendered from its own
seed `(seed, split, index)`, so `synthetic_pair` regenerates the exact label ids of any file.
A dataset generated with `pedestrian_share` > 0 has that share of its streets in the old-town pedestrian
zone (`city.OLD_TOWN`); the default city has none.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pspnet_lib.config import data_root
from pspnet_lib.data.city import check_pedestrian_share, codes_to_ids, render_street
from pspnet_lib.data.errors import DataError
from pspnet_lib.data.palette import COLOR_TABLE
from pspnet_lib.run_files import claim_folder

SPLITS = ("train", "val")
HALF_SIZE = 256  # each half of a pair is 256x256 pixels, like the Kaggle files
# Written as the Kaggle files are (checked on all of them: Pillow's quality-95 quantisation tables and
# `JpegImagePlugin.get_sampling(...) == 2`, i.e. 4:2:0 chroma subsampling, which blends label colours over
# 2x2 blocks at class borders). `decode_mask`'s border-aware rule is designed against exactly these blends.
JPEG_QUALITY = 95
JPEG_SUBSAMPLING = 2  # Pillow's code for 4:2:0
# Bumped whenever the files change for the same settings (1: quality 75, 4:4:4; 2: quality 95, 4:2:0), so
# `ensure_synthetic_dataset` regenerates a folder written by an older version of the library.
FILE_FORMAT = 2
MARKER_NAME = "synthetic.json"
# Written first into a folder the writer claims: only a new or empty folder, or one holding this file or a complete
# set's MARKER_NAME, is written into (never a folder of the user's own, such as the real pairs, which use the same names).
OWNER_MARKER = ".pspnet-synthetic"


@dataclass(frozen=True)
class SyntheticPair:
    """One generated pair: the photo, its colour label map, and the exact train ids behind it."""

    image: np.ndarray
    label_colors: np.ndarray
    label_ids: np.ndarray

    def side_by_side(self) -> np.ndarray:
        """The file layout: photo left, colour labels right, (256, 512, 3) uint8."""
        return np.concatenate([self.image, self.label_colors], axis=1)


def synthetic_pair(seed: int, split: str, index: int, pedestrian_share: float = 0.0) -> SyntheticPair:
    """Render pair number `index` (1-based, as in the file name) of `split` for a dataset `seed`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if seed < 0 or index < 1:
        raise ValueError(f"seed must be >= 0 and index >= 1, got seed={seed}, index={index}")
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    image, codes = render_street(rng, HALF_SIZE, HALF_SIZE, pedestrian_share)
    return SyntheticPair(image=image, label_colors=COLOR_TABLE[codes], label_ids=codes_to_ids(codes))


def save_jpeg(array: np.ndarray, path: Path) -> None:
    """Write `array` as a JPEG via a temporary file and `os.replace`, so a kill never leaves half a file.

    The temporary name holds the process id: two processes generating the same set (parallel tests, two
    notebooks) each write their own file and replace the same identical one.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(array).save(temporary, format="JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING)
    os.replace(temporary, path)


def write_synthetic_dataset(
    root: str | Path, num_train: int = 200, num_val: int = 50, seed: int = 0, pedestrian_share: float = 0.0
) -> Path:
    """Write `num_train` + `num_val` synthetic pairs under `root` (train/, val/); returns `root`.

    `root` must be new, empty or a synthetic dataset written before (ValueError otherwise): a folder of other
    files, such as the real pairs with the same names, is never overwritten.
    """
    counts = {"train": num_train, "val": num_val}
    if min(counts.values()) < 1 or seed < 0:
        raise ValueError(f"need num_train >= 1, num_val >= 1 and seed >= 0, got {counts} and seed={seed}")
    settings = generation_settings(num_train, num_val, seed, pedestrian_share)
    root = claim_folder(root, "the synthetic dataset folder", (OWNER_MARKER, MARKER_NAME), "a synthetic dataset")
    (root / MARKER_NAME).unlink(missing_ok=True)
    for split, count in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for index in range(1, count + 1):
            pair = synthetic_pair(seed, split, index, pedestrian_share)
            save_jpeg(pair.side_by_side(), root / split / f"{index}.jpg")
        remove_numbered_files_beyond(root / split, count)
    write_marker(root, settings)
    return root


def generation_settings(num_train: int, num_val: int, seed: int, pedestrian_share: float = 0.0) -> dict:
    """The marker's record of a generation (file format included); `pedestrian_share` only when it is not 0."""
    settings = {"format": FILE_FORMAT, "seed": seed, "train": num_train, "val": num_val}
    if check_pedestrian_share(pedestrian_share) > 0:
        settings["pedestrian_share"] = float(pedestrian_share)
    return settings


def remove_numbered_files_beyond(folder: Path, count: int) -> None:
    """Delete `<n>.jpg` files with n > `count` left over from a larger earlier generation."""
    for path in folder.glob("*.jpg"):
        if path.stem.isdigit() and int(path.stem) > count:
            path.unlink()


def write_marker(root: Path, settings: dict[str, float]) -> None:
    """Record the generation settings; written last, so its presence means the folder is complete."""
    temporary = root / f".{MARKER_NAME}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(settings, indent=1))
    os.replace(temporary, root / MARKER_NAME)


def read_marker(root: str | Path) -> dict[str, float] | None:
    """The settings a synthetic dataset was generated with, or None if `root` holds no complete one."""
    try:
        return json.loads((Path(root) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_complete(root: Path, settings: dict[str, float]) -> bool:
    """True when `root` was fully generated with `settings` and all its files are still there."""
    if read_marker(root) != settings:
        return False
    return all(
        (root / split / f"{i}.jpg").is_file() for split in SPLITS for i in range(1, settings[split] + 1)
    )


def default_synthetic_root(pedestrian_share: float = 0.0) -> Path:
    """Where the synthetic city lives by default: `data_root()/toy_cityscapes` (`..._old_town_50` for a 0.5 share)."""
    if check_pedestrian_share(pedestrian_share) == 0:
        return data_root() / "toy_cityscapes"
    return data_root() / f"toy_cityscapes_old_town_{round(100 * pedestrian_share)}"


def ensure_synthetic_dataset(
    root: str | Path | None = None,
    num_train: int = 200,
    num_val: int = 50,
    seed: int = 0,
    pedestrian_share: float = 0.0,
) -> Path:
    """The synthetic dataset at `root` (default `default_synthetic_root()`), generated if missing or incomplete."""
    root = Path(root) if root is not None else default_synthetic_root(pedestrian_share)
    if not is_complete(root, generation_settings(num_train, num_val, seed, pedestrian_share)):
        write_synthetic_dataset(root, num_train, num_val, seed, pedestrian_share)
    return root


def synthetic_label_ids(root: str | Path, split: str, index: int) -> np.ndarray:
    """The exact train ids (256, 256) uint8 behind file `<root>/<split>/<index>.jpg` of a synthetic dataset."""
    settings = read_marker(root)
    if settings is None:
        raise DataError(f"{root} is not a complete synthetic dataset (no {MARKER_NAME}); generate it first")
    return synthetic_pair(settings["seed"], split, index, settings.get("pedestrian_share", 0.0)).label_ids
