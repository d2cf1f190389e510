"""Cityscapes image pairs: palette, synthetic city, locating/downloading, tf.data pipeline, checks.

Everything here is NumPy/Pillow only except `make_dataset`, which loads TensorFlow on first use,
so `python -m pspnet_lib data ...` and NumPy-only code start fast.
"""

from __future__ import annotations

from typing import Any

from pspnet_lib.data.check import DatasetReport, SplitReport, check_dataset
from pspnet_lib.data.errors import CredentialsRejected, DataError
from pspnet_lib.data.locate import (
    DatasetDirs,
    default_dataset,
    download_cityscapes_pairs,
    find_cityscapes_pairs,
    how_to_get,
    kaggle_reachable,
    resolve_dataset_dirs,
)
from pspnet_lib.data.pairs import list_pairs, read_pair, usable_pairs, validate_pair_file
from pspnet_lib.data.palette import (
    CLASS_NAMES,
    DEFAULT_MAX_DISTANCE,
    EVALUATION_LABELS,
    IGNORE_LABEL,
    LABEL_DECODINGS,
    NUM_CLASSES,
    PALETTE,
    TRAINING_LABELS,
    VOID_COLORS,
    decode_mask,
    ids_to_colors,
)
from pspnet_lib.data.synthetic import (
    SyntheticPair,
    default_synthetic_root,
    ensure_synthetic_dataset,
    synthetic_label_ids,
    synthetic_pair,
    write_synthetic_dataset,
)

__all__ = [
    "CLASS_NAMES", "DEFAULT_MAX_DISTANCE", "EVALUATION_LABELS", "IGNORE_LABEL", "LABEL_DECODINGS", "NUM_CLASSES",
    "PALETTE", "TRAINING_LABELS", "VOID_COLORS",
    "CredentialsRejected", "DataError", "DatasetDirs", "DatasetReport", "SplitReport", "SyntheticPair",
    "check_dataset", "decode_mask", "default_dataset", "default_synthetic_root", "download_cityscapes_pairs",
    "ensure_synthetic_dataset", "find_cityscapes_pairs", "how_to_get", "ids_to_colors", "kaggle_reachable",
    "list_pairs", "make_dataset",
    "read_pair", "resolve_dataset_dirs", "synthetic_label_ids", "synthetic_pair", "usable_pairs",
    "validate_pair_file", "write_synthetic_dataset",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    """Import the TensorFlow pipeline only when `make_dataset` is first asked for."""
    if name == "make_dataset":
        from pspnet_lib.data.pipeline import make_dataset

        return make_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
