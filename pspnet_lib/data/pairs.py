"""Pair files of one split: listing in numeric order, reading, and validation with clear errors."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pspnet_lib.data.errors import DataError
from pspnet_lib.data.palette import DEFAULT_MAX_DISTANCE, decode_mask

PAIR_SUFFIXES = (".jpg", ".jpeg")
JPEG_END_MARKER = b"\xff\xd9"
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")
EXPECTED_LAYOUT = "a 2:1 RGB JPEG (e.g. 512x256): photo on the left half, colour labels on the right"


def numeric_order(path: Path) -> tuple[int, int, str]:
    """Sort key putting 2.jpg before 10.jpg; names that are not numbers come last, alphabetically."""
    return (0, int(path.stem), path.name) if path.stem.isdigit() else (1, 0, path.name)


def list_pairs(split_dir: str | Path) -> list[Path]:
    """The pair files of a split folder, sorted numerically (1.jpg, 2.jpg, ..., 10.jpg)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(
            f"{split_dir} is not a folder: expected a split folder of pair JPEGs (1.jpg, 2.jpg, ...)"
        )
    paths = [
        path
        for path in split_dir.iterdir()
        if path.suffix.lower() in PAIR_SUFFIXES and not path.name.startswith(".") and path.is_file()
    ]
    if not paths:
        raise DataError(f"{split_dir} holds no .jpg files: expected pair JPEGs named 1.jpg, 2.jpg, ...")
    return sorted(paths, key=numeric_order)


def evenly_spaced(items: list[Path], count: int) -> list[Path]:
    """Up to `count` items spread evenly over `items` (pairs are numbered city by city: a spread covers them all)."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def has_jpeg_end_marker(path: Path) -> bool:
    """True when the file's last bytes hold the JPEG end-of-image marker (FF D9)."""
    with path.open("rb") as file:
        file.seek(0, 2)
        file.seek(max(0, file.tell() - 64))
        return JPEG_END_MARKER in file.read()


def pair_problem(path: str | Path, full_decode: bool = True) -> str | None:
    """Why `path` is not a usable pair file, or None when it is. `full_decode` also decodes every pixel."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            kind, mode, (width, height) = image.format, image.mode, image.size
            if full_decode:
                image.load()
    except UnidentifiedImageError:
        return f"not an image: expected {EXPECTED_LAYOUT}"
    except (OSError, SyntaxError, ValueError) as error:
        return f"cannot be decoded, the file is probably truncated or corrupt ({error})"
    if kind == "JPEG" and not has_jpeg_end_marker(path):
        return "truncated JPEG: no end-of-image marker, the download or copy was probably cut short"
    if mode in GRAYSCALE_MODES:
        return f"grayscale image (mode {mode}): expected {EXPECTED_LAYOUT}"
    if mode != "RGB":
        return f"colour mode {mode}: expected {EXPECTED_LAYOUT}"
    if width != 2 * height:
        return f"size {width}x{height} is not 2:1: expected {EXPECTED_LAYOUT}"
    return None


def validate_pair_file(path: str | Path, full_decode: bool = True) -> None:
    """Raise DataError naming `path` and the problem if it is not a usable pair file."""
    problem = pair_problem(path, full_decode)
    if problem is not None:
        raise DataError(f"{path}: {problem}")


def photo_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of the photo half of a pair file, read from its header."""
    with Image.open(path) as image:
        width, height = image.size
    return height, width // 2


def read_pair(path: str | Path, max_distance: float = DEFAULT_MAX_DISTANCE) -> tuple[np.ndarray, np.ndarray]:
    """Read one pair file: (photo uint8 (H, W, 3), train ids uint8 (H, W), 255 = ignore)."""
    validate_pair_file(path)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    half = pixels.shape[1] // 2
    return pixels[:, :half].copy(), decode_mask(np.ascontiguousarray(pixels[:, half:]), max_distance)


def find_bad_pairs(paths: Iterable[Path], full_decode: bool = True) -> dict[Path, str]:
    """Every unusable file among `paths`, with its problem."""
    problems = {path: pair_problem(path, full_decode) for path in paths}
    return {path: problem for path, problem in problems.items() if problem is not None}


def describe_bad_pairs(bad: dict[Path, str]) -> str:
    """One indented line per bad file: its path and its problem."""
    return "\n".join(f"  {path}: {problem}" for path, problem in bad.items())


def usable_pairs(paths: list[Path], skip_bad: bool = False, full_decode: bool = True) -> list[Path]:
    """`paths` after validation: raise listing every bad file, or with `skip_bad` warn and leave them out."""
    bad = find_bad_pairs(paths, full_decode)
    if bad and not skip_bad:
        raise DataError(
            f"{len(bad)} of {len(paths)} pair files are unusable:\n{describe_bad_pairs(bad)}\n"
            "Fix or delete them, or pass skip_bad=True to leave them out."
        )
    good = [path for path in paths if path not in bad]
    if not good:
        raise DataError(f"none of the {len(paths)} pair files is usable:\n{describe_bad_pairs(bad)}")
    if bad:
        warnings.warn(f"Skipping {len(bad)} unusable pair files:\n{describe_bad_pairs(bad)}", stacklevel=2)
    return good
