"""A health report for a dataset folder: counts, sizes, decodable label share and every bad file."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pspnet_lib.data.errors import DataError
from pspnet_lib.data.locate import SPLIT_NAMES, resolve_dataset_dirs
from pspnet_lib.data.pairs import (
    PAIR_SUFFIXES,
    describe_bad_pairs,
    evenly_spaced,
    find_bad_pairs,
    list_pairs,
    read_pair,
)
from pspnet_lib.data.palette import IGNORE_LABEL, decode_mask

# Below this share of label pixels decoding to a class, the right halves are probably not Cityscapes
# colour maps (the real set decodes ~80%: 15-20% is void).
MIN_LABELLED_SHARE = 0.5
# A single file whose label half has less than this share of pixels near a palette colour is named: its right
# half is probably a photo, blank or of another palette (a real pair decodes ~80%, its worst few ~40%).
MIN_FILE_LABELLED_SHARE = 0.05
FILE_LABEL_STEP = 8  # every file's label half is decoded on this pixel grid (cheap, enough for a share)
IMAGE_SUFFIXES = (".png", ".jpeg", ".jpe", ".bmp", ".tif", ".tiff", ".webp", ".gif")  # images `list_pairs` skips


@dataclass
class SplitReport:
    """What one split folder holds."""

    name: str
    folder: Path
    count: int = 0
    sizes: Counter = field(default_factory=Counter)
    labelled_share: float | None = None
    bad_files: dict[Path, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        """A few readable lines about this split."""
        sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in self.sizes.most_common()) or "none"
        share = "n/a" if self.labelled_share is None else f"{self.labelled_share:.1%}"
        lines = [
            f"{self.name}: {self.count} files in {self.folder}, {len(self.bad_files)} bad",
            f"  sizes: {sizes}",
            f"  label pixels decoding to a class (sample): {share}",
        ]
        if self.bad_files:
            lines.append(describe_bad_pairs(self.bad_files))
        return "\n".join(lines + [f"  problem: {problem}" for problem in self.problems])


@dataclass
class DatasetReport:
    """Report of `check_dataset`; `ok` is True only when the dataset is usable as it is."""

    root: Path
    splits: list[SplitReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the folder resolves and no split has a problem."""
        return not self.problems and bool(self.splits) and not any(split.problems for split in self.splits)

    def __str__(self) -> str:
        """The full readable report, ending with a verdict line."""
        lines = [f"Dataset {self.root}"] + [str(split) for split in self.splits]
        lines += [f"problem: {problem}" for problem in self.problems]
        lines.append("OK: usable." if self.ok else "NOT USABLE: fix the problems above.")
        return "\n".join(lines)


def labelled_share(paths: list[Path]) -> float:
    """Share of label pixels, over `paths`, that decode to one of the 19 classes."""
    labels = [read_pair(path)[1] for path in paths]
    return float(np.mean([np.mean(label != IGNORE_LABEL) for label in labels]))


def file_labelled_share(path: Path) -> float:
    """Share of one file's label half, sampled every FILE_LABEL_STEP pixels, that decodes to one of the 19 classes."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    labels = pixels[::FILE_LABEL_STEP, pixels.shape[1] // 2 :: FILE_LABEL_STEP]
    return float(np.mean(decode_mask(np.ascontiguousarray(labels)) != IGNORE_LABEL))


def check_split(name: str, folder: Path, label_sample: int) -> SplitReport:
    """Validate every file of one split (full decode) and decode the labels of a sample."""
    report = SplitReport(name=name, folder=folder)
    try:
        paths = list_pairs(folder)
    except DataError as error:
        report.problems.append(str(error))
        return report
    report.count = len(paths)
    report.bad_files = find_bad_pairs(paths, full_decode=True)
    good = [path for path in paths if path not in report.bad_files]
    for path in good:
        with Image.open(path) as image:
            report.sizes[image.size] += 1
    if report.bad_files:
        report.problems.append(f"{len(report.bad_files)} unusable files (listed above)")
    if not good:
        report.problems.append("no usable files")
        return report
    skipped = sorted(
        path.name for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and path.suffix.lower() not in PAIR_SUFFIXES
    )
    if skipped:
        report.problems.append(
            f"{len(skipped)} image files are not read, pairs must be .jpg: {', '.join(skipped[:5])}"
            + (" ..." if len(skipped) > 5 else "") + " (convert them to JPEG or remove them)"
        )
    unlabelled = [path for path in good if file_labelled_share(path) < MIN_FILE_LABELLED_SHARE]
    for path in unlabelled:
        report.bad_files[path] = (
            f"its label half matches no Cityscapes palette colour (< {MIN_FILE_LABELLED_SHARE:.0%} of pixels)"
        )
    if unlabelled:
        report.problems.append(f"{len(unlabelled)} label halves are not Cityscapes colour label maps (listed above)")
        good = [path for path in good if path not in report.bad_files]
        if not good:
            return report
    report.labelled_share = labelled_share(evenly_spaced(good, label_sample))
    if report.labelled_share < MIN_LABELLED_SHARE:
        report.problems.append(
            f"only {report.labelled_share:.0%} of label pixels decode to a class (expected >= "
            f"{MIN_LABELLED_SHARE:.0%}): are the right halves Cityscapes colour label maps?"
        )
    return report


def check_dataset(root: str | Path, label_sample: int = 32) -> DatasetReport:
    """Check a dataset folder: counts and image sizes per split, decodable label share, every bad file by name."""
    report = DatasetReport(root=Path(root))
    try:
        dirs = resolve_dataset_dirs(root)
    except DataError as error:
        report.problems.append(str(error))
        return report
    report.root = dirs.root
    report.splits = [check_split(name, dirs.split(name), label_sample) for name in SPLIT_NAMES]
    return report
