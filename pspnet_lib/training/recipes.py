"""Training recipes: every setting of one way to train, as one complete, frozen value.

A `Recipe` holds the network spec, the data (scene and crop size, augmentation, how many pairs), the
optimisation (optimiser, learning rate, loss weights), the schedule (epochs, time budget, seed) and the
validation. Each field says in its metadata what it means (`help`), which values it takes (`choices`) and
how it is checked (`check`): the command line's flags, config.json and the resume check all follow from the
fields, so adding a setting is one field here plus the line that uses it (CONTRIBUTING.md shows one).

Two recipes are named: the paper's, for a GPU (the field defaults), and the one that learns most in a few
minutes on a laptop CPU, found by measurement on the real pairs (2 cores, 10 minutes, 128 px: bench/README.md).
`recipe.override(**changes)` is a recipe with some settings changed and the settings that follow from them
(crop size, learning rate, new-layer multiplier, epochs, network input size) worked out again.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pspnet_lib import models
from pspnet_lib.data.pipeline import check_scale_range
from pspnet_lib.training.losses import AUX_WEIGHT
from pspnet_lib.training.optimizers import DEFAULT_LEARNING_RATES, NEW_LAYER_LR_MULTIPLIER, OPTIMIZERS

MIN_IMAGE_SIZE = models.MIN_INPUT_SIZE  # the smallest crop every backbone maps to a feature cell
MAX_IMAGE_SIZE = 2048  # the real pairs' photos are 256 x 256; larger sizes are a typo, not a plan
WEIGHTS = (None, "imagenet")
DEFAULT_EPOCHS = 10
LR_SCHEDULES = ("poly", "constant")
UNTIL_THE_BUDGET = 100_000  # epochs of a run with a time budget and no epoch count: the budget ends it
# The network settings a recipe's changes may name directly (the command line's --network and --backbone).
SPEC_SHORTHANDS = {"network": models.NETWORKS, "backbone": tuple(models.BACKBONES)}


# --- checks: each raises ValueError naming the setting and what it expects ---------------------------------


def positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")


def optional_positive_int(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


def positive_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def non_negative(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def boolean(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def side_in_pixels(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_IMAGE_SIZE <= value <= MAX_IMAGE_SIZE:
        raise ValueError(f"{name} must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, got {value!r}")


def time_budget(name: str, value) -> None:
    if value is not None and not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number of minutes (leave it unset for no limit), got {value!r}")


def share(name: str, value) -> None:
    if value is not None and not (isinstance(value, int | float) and 0 < value <= 1):
        raise ValueError(f"{name} must be a number in (0, 1] or None (all), got {value!r}")


def setting(default, help: str, *, check: Callable[[str, Any], None] | None = None, choices: tuple | None = None,
            resumable: bool = False, loss: bool = False):
    """A recipe field: its default (the paper's), what it means, its check or choices, and whether a resumed run
    may change it (`resumable`) or it is a keyword of `losses.segmentation_loss` (`loss`)."""
    metadata = {"help": help, "check": check, "choices": choices, "resumable": resumable, "loss": loss}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Recipe:
    """Every setting of one way to train; the defaults are the paper's (Zhao et al., for a GPU)."""

    name: str = setting("paper", "what the recipe is called (config.json records the one a run started from)")
    about: str = setting("", "one line on what the recipe is for")
    # --- the network ---
    spec: models.NetworkSpec = setting(
        models.NetworkSpec("pspnet", "resnet50"), "the network (models.NetworkSpec); --network and --backbone change it"
    )
    weights: str | None = setting(
        None, "start the resnet50 backbone from ImageNet weights (downloaded once, ~95 MB); None: from scratch",
        choices=WEIGHTS,
    )
    # --- the data ---
    image_size: int = setting(256, "side of the square scenes photos are resized to, for training and validation",
                              check=side_in_pixels)
    crop_size: int = setting(256, "side of the square training crops cut from the (randomly scaled) scenes")
    scale_range: tuple[float, float] = setting((0.5, 2.0), "random scaling (low, high) of training scenes")
    full_resolution_crops: bool = setting(
        False, "cut the training crops from the pairs at their own resolution, not from scenes shrunk to image_size",
        check=boolean,
    )
    limit: int | None = setting(None, "use only the first N pairs of each split; None: all", check=optional_positive_int)
    batch_size: int = setting(8, "images per training step", check=positive_int)
    # --- the optimisation ---
    optimizer: str = setting(
        "sgd", "sgd: the paper's (momentum 0.9, L2 weight decay 1e-4 through the gradient); sgdw: Keras' decoupled "
        "decay; adam", choices=OPTIMIZERS,
    )
    lr: float = setting(0.01, "initial learning rate (another optimizer than the recipe's starts from its own default)",
                        check=positive_number)
    head_lr_multiplier: float = setting(
        1.0, "learning-rate multiplier of the new layers (pyramid module and heads): 10 for sgd from ImageNet "
        "weights unless set, else 1", check=positive_number,
    )
    aux_weight: float = setting(AUX_WEIGHT, "weight of the auxiliary head's loss", check=non_negative)
    jaccard_weight: float = setting(
        0.0, "weight of the soft Jaccard (IoU) loss added to the main output's cross-entropy", check=non_negative,
        loss=True,
    )
    # --- the schedule ---
    epochs: int = setting(DEFAULT_EPOCHS, "epochs to train (as many as fit with max_minutes when unset)",
                          check=positive_int, resumable=True)
    max_minutes: float | None = setting(
        None, "time budget: training and validation end by then, and the learning rate decays (poly) to 0 at it",
        check=time_budget, resumable=True,
    )
    lr_schedule: str = setting(
        "poly", "poly: the learning rate falls to 0 at the last epoch or at max_minutes, whichever comes first (the "
        "paper's); constant: the initial rate throughout", choices=LR_SCHEDULES,
    )
    seed: int = setting(0, "seed of the weights, the shuffling and the augmentation")
    # --- the validation ---
    validation_share: float | None = setting(
        None, "validate each epoch on this share of an epoch's training images; None: the whole val split",
        check=share,
    )
    val_limit: int | None = setting(
        None, "validate each epoch on the first N val pairs (train works it out from validation_share when unset)",
        check=optional_positive_int,
    )
    precise_batch_norm: bool = setting(
        False, "before the last validation, batch norm statistics averaged over whole training scenes (one replica)",
        check=boolean,
    )

    def __post_init__(self) -> None:
        """Check every field (its metadata's check or choices), then the settings that depend on each other."""
        if isinstance(self.spec, dict):
            object.__setattr__(self, "spec", models.NetworkSpec.from_dict(self.spec))
        if not isinstance(self.spec, models.NetworkSpec):
            raise ValueError(f"spec must be a models.NetworkSpec, got {type(self.spec).__name__}")
        object.__setattr__(self, "scale_range", check_scale_range(tuple(self.scale_range)))
        for item in dataclasses.fields(self):
            value, choices, check = getattr(self, item.name), item.metadata["choices"], item.metadata["check"]
            if choices is not None and value not in choices:
                raise ValueError(f"{item.name} must be one of {choices}, got {value!r}")
            if check is not None:
                check(item.name, value)
        fixed_input = self.spec.input_size is not None  # the article model: whole images of one size
        if fixed_input and self.spec.input_size != self.image_size:
            raise ValueError(
                f"the article model's spec.input_size ({self.spec.input_size}) must equal image_size ({self.image_size})"
            )
        crop = self.crop_size
        if isinstance(crop, bool) or not isinstance(crop, int) or not MIN_IMAGE_SIZE <= crop <= self.image_size or (
            fixed_input and crop != self.image_size
        ):
            expected = f"equal to image_size ({self.image_size}) for a fixed-size network" if fixed_input else (
                f"between {MIN_IMAGE_SIZE} and image_size ({self.image_size})")
            raise ValueError(f"crop_size must be {expected}, got {crop!r}")
        if self.weights == "imagenet" and (self.spec.backbone != "resnet50" or self.spec.network == "article"):
            raise ValueError(
                "weights='imagenet' needs network 'pspnet' or 'fcn' with backbone 'resnet50', "
                f"got network={self.spec.network!r}, backbone={self.spec.backbone!r}"
            )
        if self.head_lr_multiplier != 1 and self.optimizer != "sgd":
            raise ValueError(f"head_lr_multiplier applies to optimizer 'sgd' only, got optimizer={self.optimizer!r}")

    def override(self, **changes) -> Recipe:
        """This recipe with `changes` to its fields or to its network (any `models.NetworkSpec` field: network,
        backbone, bins, width, ...), and what follows from them: the crop keeps its share of a new image_size,
        another optimiser starts from its own default rate, the new layers learn 10x faster for sgd from ImageNet
        weights, a time budget without epochs runs until the budget ends, and the article model's input size
        follows image_size. ValueError naming a bad setting."""
        names = {item.name for item in dataclasses.fields(self)}
        spec_names = {item.name for item in dataclasses.fields(models.NetworkSpec)}
        unknown = sorted(set(changes) - names - spec_names)
        if unknown:
            raise ValueError(f"unknown recipe settings {unknown}; expected some of {sorted(names)} or a network spec setting")
        for name, choices in SPEC_SHORTHANDS.items():
            if name in changes and changes[name] not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {changes[name]!r}")
        spec_changes = {name: changes.pop(name) for name in spec_names & set(changes)}
        image = changes.get("image_size", self.image_size)
        if "spec" not in changes and (spec_changes or "image_size" in changes):
            try:
                changes["spec"] = self._changed_spec(spec_changes, image)
            except TypeError as error:  # NetworkSpec compares some settings before checking their type
                raise ValueError(f"network settings {spec_changes}: expected numbers where numbers go ({error})") from None
        fixed_input = changes.get("spec", self.spec).input_size is not None
        if "crop_size" not in changes and (image != self.image_size or fixed_input):
            fraction = 1.0 if fixed_input else self.crop_size / self.image_size
            changes["crop_size"] = image if fixed_input else max(MIN_IMAGE_SIZE, round(fraction * image))
        optimizer = changes.get("optimizer", self.optimizer)
        if "lr" not in changes and optimizer != self.optimizer:
            changes["lr"] = DEFAULT_LEARNING_RATES[optimizer] if optimizer in DEFAULT_LEARNING_RATES else self.lr
        if "head_lr_multiplier" not in changes and {"weights", "optimizer"} & changes.keys():
            paper_fine_tuning = changes.get("weights", self.weights) == "imagenet" and optimizer == "sgd"
            changes["head_lr_multiplier"] = NEW_LAYER_LR_MULTIPLIER if paper_fine_tuning else 1.0
        if "epochs" not in changes and changes.get("max_minutes") is not None:
            changes["epochs"] = UNTIL_THE_BUDGET
        return dataclasses.replace(self, **changes)

    def _changed_spec(self, changes: dict, image: int) -> models.NetworkSpec:
        """The spec with `changes`; the article model (whole images of one size, no backbone) takes image_size as
        its input size and keeps only the batch norm momentum; a network that was the article one starts afresh."""
        network = changes.get("network", self.spec.network)
        momentum = changes.get("batch_norm_momentum", self.spec.batch_norm_momentum)
        if network == "article":
            return models.NetworkSpec("article", input_size=image, batch_norm_momentum=momentum)
        if self.spec.network == "article":
            return models.NetworkSpec(**changes)
        return self.spec.replace(**changes)

    def validation_limit(self, train_images: int, at_least: int = 1) -> int | None:
        """How many of the first validation pairs each epoch scores: `val_limit` when set, else None for all or the
        share, at least `at_least` (one batch: with several workers each must get a part of it); at most `limit`."""
        if self.val_limit is not None:
            return self.val_limit
        counts = [self.limit] if self.limit is not None else []
        if self.validation_share is not None:
            counts.append(max(1, at_least, math.ceil(self.validation_share * train_images)))
        return min(counts, default=None)

    def as_dict(self) -> dict:
        """The recipe as JSON-friendly values (what config.json holds)."""
        return {**dataclasses.asdict(self), "spec": self.spec.as_dict(), "scale_range": list(self.scale_range)}


RECIPES = {
    "paper": Recipe(
        about="Zhao et al.: dilated ResNet-50, SGD 0.01 with momentum 0.9 and L2 1e-4, poly decay, random scale "
        "0.5-2, flips, aux loss 0.4; validation on the whole val split every epoch",
    ),
    "cpu": Recipe(
        name="cpu",
        about="the small PSPNet on 128 px scenes, trained on 112 px crops (random scale 0.75-1.5, flips) cut from "
        "the pairs at their own resolution, Adam 2e-3 annealed (poly) to the time budget, cross-entropy plus a soft "
        "Jaccard (IoU) loss; validation on a fixed subset (a tenth of an epoch's training images); batch norm "
        "statistics of whole scenes for the final model",
        spec=models.NetworkSpec("pspnet", "small"),
        image_size=128,
        crop_size=112,
        scale_range=(0.75, 1.5),
        full_resolution_crops=True,
        optimizer="adam",
        lr=2e-3,
        jaccard_weight=1.0,
        validation_share=0.1,
        precise_batch_norm=True,
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


def loss_options(recipe: Recipe) -> dict:
    """The recipe's settings that `losses.segmentation_loss` takes (the fields marked `loss=True`)."""
    return {item.name: getattr(recipe, item.name) for item in dataclasses.fields(recipe) if item.metadata["loss"]}


def resumable_fields() -> tuple[str, ...]:
    """The settings a resumed run may change (config.json describes every epoch, so all others must match)."""
    return tuple(item.name for item in dataclasses.fields(Recipe) if item.metadata["resumable"])
