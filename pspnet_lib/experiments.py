"""Fixed-budget comparisons: train several model variants with one recipe and score them side by side.

Notebook 08 (the paper's Table 1 at classroom scale) and notebook 09 (the source article's model against
the small PSPNet) use this: a `Variant` says which network to build, a `Budget` fixes the recipe every
variant shares (data, crop size, epochs, optimiser, seed), and `run_comparison` trains and scores each.
Each variant is one `training.train` run (`train_config` says which) and is scored by `inference.evaluate`:
a comparison trains and scores exactly as the command line and notebook 06 do.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras

from pspnet_lib import data, inference, models, training
from pspnet_lib.data.palette import EVALUATION_LABELS
from pspnet_lib.data.pipeline import DEFAULT_SCALE_RANGE
from pspnet_lib.layers import DEFAULT_BATCH_NORM_MOMENTUM, check_batch_norm_momentum
from pspnet_lib.metrics import SegmentationScores

# Keras' BatchNormalization keeps 0.99 of its moving statistics per step: after the ~100-300 steps of a
# classroom run they are still mostly their initial values and inference-mode predictions collapse to one
# class. 0.9 (PyTorch's default, 0.1 in its convention) lets them settle within a few dozen steps; the model
# builders use it by default (their `batch_norm_momentum` argument), and so does Budget.
KERAS_BATCH_NORM_MOMENTUM = 0.99  # keras.layers.BatchNormalization's own (Budget.batch_norm_momentum=None)


@dataclass(frozen=True)
class Budget:
    """The training recipe every variant of a comparison shares, and the backbone they all stand on.

    Training crops are `image_size` squares cut from scenes resized to `scene_size` (default: the crop size,
    i.e. whole scenes), after the pipeline's random scaling (0.5-2x) and flip; validation scores whole scenes
    resized to `val_image_size` (default: `scene_size`). Crops smaller than the scene, scored on whole scenes,
    show how each network copes with more scene than its receptive field covers (the pyramid's global bin
    adapts to any size, a convolution's field does not): the paper's setting.

    `backbone_width` scales every channel count of the backbone and heads (0.5: about a quarter of the
    compute), and `dilate=False` keeps its later stages at rate 1, so its receptive field shrinks (319 to 159
    pixels for the small backbone) while the feature grid stays at 1/8 of the input.
    """

    image_size: int = 128
    scene_size: int | None = None
    val_image_size: int | None = None
    epochs: int = 4
    train_limit: int | None = None
    val_limit: int | None = None
    batch_size: int = 8
    optimizer: str = "adam"
    learning_rate: float | None = None
    seed: int = 0
    batch_norm_momentum: float | None = DEFAULT_BATCH_NORM_MOMENTUM
    backbone_width: float = 1.0
    dilate: bool = True

    def __post_init__(self) -> None:
        """Reject sizes, counts and settings that cannot work, naming the field."""
        for name in ("image_size", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Budget.{name} must be a positive int, got {value!r}")
        if self.image_size < models.MIN_INPUT_SIZE:  # the smallest crop `training.train` accepts
            raise ValueError(
                f"Budget.image_size must be at least {models.MIN_INPUT_SIZE} pixels, got {self.image_size}"
            )
        for name in ("train_limit", "val_limit", "val_image_size", "scene_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"Budget.{name} must be a positive int or None, got {value!r}")
        if self.scene_size is not None and self.scene_size < self.image_size:
            raise ValueError(
                f"Budget.scene_size ({self.scene_size}) must be at least Budget.image_size ({self.image_size}): "
                "training crops are cut from the scenes"
            )
        width = self.backbone_width
        if isinstance(width, bool) or not isinstance(width, int | float) or not 0 < width <= 4:
            raise ValueError(f"Budget.backbone_width must be a number in (0, 4], got {width!r}")
        if not isinstance(self.dilate, bool):
            raise ValueError(f"Budget.dilate must be True or False, got {self.dilate!r}")
        if self.batch_norm_momentum is not None:
            try:
                check_batch_norm_momentum(self.batch_norm_momentum)
            except ValueError:
                raise ValueError(
                    f"Budget.batch_norm_momentum must be a number in [0, 1) or None, got {self.batch_norm_momentum!r}"
                ) from None


@dataclass(frozen=True)
class Variant:
    """One network of a comparison: PSPNet with some options, its dilated-FCN baseline, or the article model.

    `output="color"` makes a PSPNet or FCN paint RGB with the article's colour loss instead of class logits.
    """

    name: str
    network: str = "pspnet"
    bins: tuple[int, ...] = (1, 2, 3, 6)
    pooling: str = "avg"
    channel_reduction: bool = True
    aux_loss: bool = True
    backbone: str = "small"
    output: str = "logits"

    def __post_init__(self) -> None:
        """Reject an unknown network name or output."""
        if self.network not in models.NETWORKS:
            raise ValueError(
                f"Variant {self.name!r}: network must be one of {models.NETWORKS}, got {self.network!r}"
            )
        if self.output not in models.OUTPUTS:
            raise ValueError(f"Variant {self.name!r}: output must be one of {models.OUTPUTS}, got {self.output!r}")

    def spec(
        self,
        image_size: int,
        batch_norm_momentum: float = DEFAULT_BATCH_NORM_MOMENTUM,
        backbone_width: float = 1.0,
        dilate: bool = True,
    ) -> models.NetworkSpec:
        """The network this variant names, on the given backbone settings.

        The article model is fixed to `image_size` squares and ignores the backbone settings; "no reduction"
        keeps all the backbone's channels in every pyramid branch.
        """
        if self.network == "article":
            return models.NetworkSpec("article", input_size=image_size, batch_norm_momentum=batch_norm_momentum)
        all_channels = models.backbone_channels(self.backbone, backbone_width)
        return models.NetworkSpec(
            self.network,
            self.backbone,
            bins=self.bins,
            pooling=self.pooling,
            reduction_filters=None if self.channel_reduction else all_channels,
            aux_head=self.aux_loss,
            dilate=dilate,
            width=backbone_width,
            batch_norm_momentum=batch_norm_momentum,
            output=self.output,
        )

    def describe(self) -> str:
        """A short settings summary for tables, e.g. "avg (1, 2, 3, 6), reduction, aux"."""
        if self.output == "color" and self.network != "article":
            return f"{self.network}, RGB regression (MSE)"
        if self.network != "pspnet":
            return {"fcn": "no pyramid", "article": "RGB regression (MSE)"}[self.network] + (
                ", aux" if self.network == "fcn" and self.aux_loss else ""
            )
        parts = [f"{self.pooling} {self.bins}", "reduction" if self.channel_reduction else "no reduction"]
        return ", ".join(parts + (["aux"] if self.aux_loss else []))


@dataclass(frozen=True)
class VariantResult:
    """A trained variant: its model, what it scored on the validation split, its size and training time."""

    variant: Variant
    model: keras.Model
    scores: SegmentationScores
    parameters: int
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def miou(self) -> float:
        """Validation mean IoU."""
        return self.scores.miou


def table1_variants() -> list[Variant]:
    """The paper's Table 1 ablations (and its auxiliary-loss one) on the small backbone."""
    return [
        Variant("FCN baseline (no PPM)", network="fcn"),
        Variant("PPM max, bins 1", pooling="max", bins=(1,)),
        Variant("PPM avg, bins 1", bins=(1,)),
        Variant("PPM max, bins 1-2-3-6", pooling="max"),
        Variant("PPM avg, bins 1-2-3-6"),
        Variant("PPM avg, bins 1-2-3-6, no reduction", channel_reduction=False),
        Variant("PPM avg, bins 1-2-3-6, no aux loss", aux_loss=False),
    ]


def validation_data(data_root: str | Path, budget: Budget):
    """The validation batches of the budget (whole scenes at `val_image_size`), in file order, unaugmented, with the
    labels every score counts (`EVALUATION_LABELS`)."""
    return data.make_dataset(
        data_root,
        "val",
        image_size=budget.val_image_size or budget.scene_size or budget.image_size,
        batch_size=budget.batch_size,
        augment=False,
        shuffle=False,
        limit=budget.val_limit,
        labels=EVALUATION_LABELS,
    )


def train_config(variant: Variant, budget: Budget, data_root: str | Path, out: str | Path) -> training.TrainConfig:
    """The `training.TrainConfig` of one variant's run in folder `out`: the budget's recipe, the variant's network.

    Every variant validates after each epoch on the budget's first `val_limit` val pairs (at the scene size),
    so its history shows validation curves; the paper's random scaling (0.5-2x) and flips augment the scenes.
    """
    momentum = KERAS_BATCH_NORM_MOMENTUM if budget.batch_norm_momentum is None else budget.batch_norm_momentum
    spec = variant.spec(budget.image_size, momentum, budget.backbone_width, budget.dilate)
    scene_size = budget.scene_size or budget.image_size
    if variant.network == "article" and scene_size != budget.image_size:
        raise ValueError(
            f"Variant {variant.name!r}: the article model trains on whole scenes of its fixed size, so "
            f"Budget.scene_size must be None or Budget.image_size ({budget.image_size}), got {scene_size}"
        )
    return training.TrainConfig(
        out=str(out), data=str(data_root), recipe="paper", spec=spec, image_size=scene_size,
        crop_size=budget.image_size, batch_size=budget.batch_size, epochs=budget.epochs,
        limit=budget.train_limit, val_limit=budget.val_limit, seed=budget.seed, optimizer=budget.optimizer,
        lr=budget.learning_rate,
        scale_range=DEFAULT_SCALE_RANGE, tensorboard=False,
    )


def train_variant(
    variant: Variant, budget: Budget, data_root: str | Path, out: str | Path | None = None
) -> tuple[keras.Model, list[dict[str, float]], float]:
    """Train `variant` under `budget` with `training.train`: (model, history.csv rows, training seconds).

    The run folder is `out` (kept, with its checkpoints and history.csv), else a temporary one, removed after.
    """
    with tempfile.TemporaryDirectory(prefix="pspnet-variant-") as scratch:
        result = training.train(train_config(variant, budget, data_root, out or Path(scratch) / "run"), verbose=0)
    return result.model, result.history, 60 * result.history[-1]["train_minutes"]


def run_comparison(
    variants: Sequence[Variant],
    budget: Budget,
    data_root: str | Path,
    on_result: Callable[[VariantResult], None] | None = None,
    out: str | Path | None = None,
) -> list[VariantResult]:
    """Train every variant with the same `budget` and score it on the validation split.

    `on_result` is called after each variant (e.g. to print a line while the others still train). With `out`,
    each variant's run folder is kept in it, named after the variant's position (01, 02, ...).
    """
    names = [variant.name for variant in variants]
    if not variants or len(set(names)) != len(names):
        raise ValueError(f"variants must be a non-empty list with distinct names, got {names}")
    val_data = validation_data(data_root, budget)
    results = []
    for number, variant in enumerate(variants, start=1):
        run_dir = None if out is None else Path(out) / f"{number:02d}"
        model, history, seconds = train_variant(variant, budget, data_root, run_dir)
        scores = inference.evaluate(model, val_data, labels=EVALUATION_LABELS)
        result = VariantResult(variant, model, scores, models.count_parameters(model), seconds, history)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def format_result(result: VariantResult, name_width: int = 38) -> str:
    """One table row: name, settings, mIoU, pixel accuracy, parameters, training time."""
    return (
        f"{result.variant.name:<{name_width}} {result.variant.describe():<34} "
        f"{_percent(result.scores.miou):>6} {_percent(result.scores.pixel_accuracy):>7} "
        f"{result.parameters:>10,} {result.train_seconds:>6.0f} s"
    )


def format_results(results: Sequence[VariantResult]) -> str:
    """The comparison as a fixed-width text table, one row per variant in the given order."""
    width = max([len("variant"), *(len(result.variant.name) for result in results)])
    header = f"{'variant':<{width}} {'settings':<34} {'mIoU':>6} {'pixAcc':>7} {'params':>10} {'train':>8}"
    return "\n".join([header, *(format_result(result, width) for result in results)])


def _percent(value: float) -> str:
    """`value` as a percentage with one decimal, or "n/a" for NaN."""
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"
