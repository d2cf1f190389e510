"""Training recipes: the paper's, for a GPU, and the one that learns most in a few minutes on a laptop CPU.

A recipe fills in every training setting a run leaves unset (`TrainConfig`, the command line's `train`,
notebook 06 and `make bench` all read it here). `default_recipe_name` picks the paper's when a GPU is visible
or the run starts from ImageNet weights, else the CPU one. The CPU recipe was found by measurement on the
real pairs (2 cores, 10 minutes, 128 px): the table is in bench/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """The defaults of one way to train: backbone, scenes and crops, optimiser, augmentation and validation."""

    name: str
    backbone: str
    image_size: int
    batch_size: int
    optimizer: str
    lr: float | None  # None: the optimiser's own default (training.optimizers.DEFAULT_LEARNING_RATES)
    scale_range: tuple[float, float]  # random scaling of training scenes
    crop_fraction: float  # training crops of this fraction of image_size, cut from the (scaled) scenes
    validation_share: float | None  # validate on at most this share of an epoch's training images; None: all
    about: str
    # Before the last validation, batch norm statistics averaged over whole training scenes (callbacks.PRECISE_BN_SCENES).
    precise_batch_norm: bool = False
    # Weight of the soft Jaccard term added to the main output's cross-entropy (losses.CrossEntropyJaccard); 0: none.
    jaccard_weight: float = 0.0
    # Cut the training crops from the pairs at their own resolution, not from scenes shrunk to image_size.
    full_resolution_crops: bool = False

    def validation_limit(self, train_images: int, at_least: int = 1) -> int | None:
        """How many of the first validation pairs each epoch scores: None for all, else the share, at least
        `at_least` (one batch: with several workers each must get a part of it)."""
        if self.validation_share is None:
            return None
        return max(1, at_least, math.ceil(self.validation_share * train_images))


RECIPES = {
    "paper": Recipe(
        "paper", "resnet50", 256, 8, "sgd", 0.01, (0.5, 2.0), 1.0, None,
        "Zhao et al.: dilated ResNet-50, SGD 0.01 with momentum 0.9 and L2 1e-4, poly decay, random scale 0.5-2, "
        "flips, aux loss 0.4; validation on the whole val split every epoch",
    ),
    "cpu": Recipe(
        "cpu", "small", 128, 8, "adam", 2e-3, (0.75, 1.5), 0.875, 0.1,
        "the small PSPNet on 128 px scenes, trained on 112 px crops (random scale 0.75-1.5, flips) cut from the "
        "pairs at their own resolution, Adam 2e-3 "
        "annealed (poly) to the time budget, cross-entropy plus a soft Jaccard (IoU) loss; validation on a fixed "
        "subset (a tenth of an epoch's training images); batch norm statistics of whole scenes for the final model",
        precise_batch_norm=True,
        jaccard_weight=1.0,
        full_resolution_crops=True,
    ),
}
RECIPE_NAMES = tuple(RECIPES)


def default_recipe_name(gpu_count: int, weights: str | None = None) -> str:
    """'paper' with a GPU or ImageNet weights (the ResNet-50 the paper fine-tunes), else 'cpu'."""
    return "paper" if gpu_count > 0 or weights == "imagenet" else "cpu"


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; ValueError naming the choices."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPE_NAMES}, got {name!r}")
    return RECIPES[name]
