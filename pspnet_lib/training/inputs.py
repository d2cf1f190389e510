"""The data of a run: its dataset root, the labels check, and the training and validation pipelines."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from pspnet_lib import data
from pspnet_lib.data.palette import EVALUATION_LABELS
from pspnet_lib.training.config import TrainConfig


def count_batches(dataset) -> int:
    """Number of batches in `dataset` (counted by iterating when tf.data cannot tell)."""
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality >= 0 else sum(1 for _ in dataset)


def dataset_root(config: TrainConfig) -> Path:
    """The checked dataset root of the run (`default_dataset()` when none is given); DataError when wrong."""
    return data.resolve_dataset_dirs(config.data).root if config.data else data.default_dataset()


def with_validation_count(config: TrainConfig, root: Path) -> TrainConfig:
    """`config` with `val_limit` decided (config.json then records it): as set, else the recipe's share of an
    epoch's training images (all val pairs for the paper's), at least one batch, at most `limit`. It counts the
    training pairs listed at `root` and reads none of them."""
    recipe = config.recipe
    listed = len(data.list_pairs(data.resolve_dataset_dirs(root).split("train"))[: recipe.limit])
    train_images = math.ceil(listed / recipe.batch_size) * recipe.batch_size  # whole batches, the last one short
    val_limit = recipe.validation_limit(train_images, at_least=recipe.batch_size)
    return dataclasses.replace(config, recipe=dataclasses.replace(recipe, val_limit=val_limit))


def load_datasets(config: TrainConfig, root: Path):
    """(train, val) tf.data pipelines of the dataset at `root`; val holds the first `val_limit` pairs (all when
    None), with labels decoded as evaluation decodes them (`EVALUATION_LABELS`), training ones as training does."""
    recipe = config.recipe
    common = dict(image_size=recipe.image_size, batch_size=recipe.batch_size, seed=recipe.seed, skip_bad=config.skip_bad)
    train_data = data.make_dataset(
        root, "train", augment=True, shuffle=True, limit=recipe.limit, scale_range=recipe.scale_range,
        crop_size=None if recipe.crop_size == recipe.image_size else recipe.crop_size,
        full_resolution=recipe.full_resolution_crops, **common
    )
    val_data = data.make_dataset(  # scored as `evaluate` scores: standard labels
        root, "val", augment=False, shuffle=False, limit=recipe.val_limit, labels=EVALUATION_LABELS, **common
    )
    return train_data, val_data


def check_labels(root: Path, split: str = "train", sample: int = 16) -> None:
    """DataError when the labels of `split` are nearly all "ignore" (as `data check` reports): nothing to learn
    (or, for evaluation, nothing to score)."""
    from pspnet_lib.data.check import MIN_LABELLED_SHARE, labelled_share
    from pspnet_lib.data.pairs import evenly_spaced, pair_problem

    split_dir = data.resolve_dataset_dirs(root).split(split)
    readable = [path for path in evenly_spaced(data.list_pairs(split_dir), sample) if pair_problem(path) is None]
    if not readable:
        return  # unusable files: the data pipeline names every one
    share = labelled_share(readable)
    if share < MIN_LABELLED_SHARE:
        raise data.DataError(
            f"{split_dir}: only {share:.0%} of label pixels (of {len(readable)} files) decode to a class, expected at least "
            f"{MIN_LABELLED_SHARE:.0%}: are the right halves Cityscapes colour label maps? "
            "(`python -m pspnet_lib data check` reports every split)"
        )

