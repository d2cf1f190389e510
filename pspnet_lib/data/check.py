"""A health report for a dataset folder: counts, sizes, decodable label share and every bad file."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pspnet_lib.data.errors import DataError
from pspnet_lib.data.locate import SPLIT_NAMES, resolve_dataset_dirs
from pspnet_lib.data.pairs import describe_bad_pairs, find_bad_pairs, list_pairs, read_pair
from pspnet_lib.data.palette import IGNORE_LABEL

# Below this share of label pixels decoding to a class, the right halves are probably not Cityscapes
# colour maps (the real set decodes ~80%: 15-20% is void).
MIN_LABELLED_SHARE = 0.5


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


def evenly_spaced(items: list[Path], count: int) -> list[Path]:
    """Up to `count` items spread evenly over `items`."""
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


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
