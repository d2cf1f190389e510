"""Fixed-budget comparisons: train several network variants with one recipe and score them side by side.

Notebook 08 (the paper's Table 1 at classroom scale) and notebook 09 (the source article's model against
the small PSPNet) use this: the budget is a training recipe every variant shares (data, crop size, epochs,
optimiser, seed; `budget(...)` is `COMPARISON` with some settings changed), a `Variant` names the changes to its
network, and `run_comparison` trains and scores each. Each variant is one `training.train` run (`train_config`
says which: its config.json records the recipe it really trains with) scored by `inference.evaluate`: a
comparison trains and scores exactly as the command line and notebook 06 do.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from pspnet_lib import data, inference, models, training
from pspnet_lib.data.palette import EVALUATION_LABELS
from pspnet_lib.metrics import SegmentationScores

# The recipe a comparison starts from: the small PSPNet on whole 128 px scenes (random scaling 0.5-2x and flips),
# Adam at its default rate for 4 epochs, validating on every val pair it is given.
COMPARISON = training.RECIPES["paper"].override(
    name="comparison", backbone="small", image_size=128, optimizer="adam", epochs=4,
    about="fixed-budget comparison of network variants (notebooks 08 and 09): the small PSPNet on whole scenes, "
    "random scale 0.5-2 and flips, Adam at its default rate",
)


def budget(**changes) -> training.Recipe:
    """The recipe every variant of a comparison shares: `COMPARISON` with `changes` (`Recipe.override`: e.g.
    image_size, crop_size, epochs, limit, val_limit, batch_size, and network settings such as width or dilate)."""
    return COMPARISON.override(**changes)


@dataclass(frozen=True, init=False)
class Variant:
    """One network of a comparison: a name and changes to the budget's network spec (`models.NetworkSpec` fields:
    network="fcn" or "article", bins, pooling, aux_head, output="color", ...). `channel_reduction=False` keeps all
    the backbone's channels in every pyramid branch (the spec's reduction_filters for its backbone and width)."""

    name: str
    changes: tuple[tuple[str, object], ...]

    def __init__(self, name: str, **changes) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "changes", tuple(sorted(changes.items())))
        self.recipe(COMPARISON)  # a bad setting fails here, naming the variant

    def get(self, name: str, default=None):
        """The value this variant gives setting `name`, else `default`."""
        return dict(self.changes).get(name, default)

    def recipe(self, base: training.Recipe) -> training.Recipe:
        """`base` with this variant's network; ValueError naming the variant when a setting cannot work."""
        changes = dict(self.changes)
        try:
            if changes.pop("channel_reduction", True) is False:
                spec = base.override(**changes).spec
                changes["reduction_filters"] = models.backbone_channels(spec.backbone, spec.width)
            if changes.get("network") == "article" and base.crop_size != base.image_size:
                raise ValueError(
                    "the article model trains on whole scenes of its fixed size, so the budget's crop_size must "
                    f"equal its image_size ({base.image_size}), got {base.crop_size}"
                )
            return base.override(**changes)
        except ValueError as error:
            raise ValueError(f"Variant {self.name!r}: {error}") from None

    def spec(self, base: training.Recipe = COMPARISON) -> models.NetworkSpec:
        """The network this variant trains under `base`."""
        return self.recipe(base).spec

    def describe(self) -> str:
        """A short settings summary for tables, e.g. "avg (1, 2, 3, 6), reduction, aux"."""
        spec = self.spec()
        if spec.output == "color" and spec.network != "article":
            return f"{spec.network}, RGB regression (MSE)"
        if spec.network != "pspnet":
            return {"fcn": "no pyramid", "article": "RGB regression (MSE)"}[spec.network] + (
                ", aux" if spec.network == "fcn" and spec.aux_head else ""
            )
        parts = [f"{spec.pooling} {spec.bins}", "reduction" if spec.reduction_filters is None else "no reduction"]
        return ", ".join(parts + (["aux"] if spec.aux_head else []))


@dataclass(frozen=True)
class VariantResult:
    """A trained variant: its training run (model, history, config), what it scored on the validation split, its
    size and training time."""

    variant: Variant
    run: training.TrainResult | None
    scores: SegmentationScores
    parameters: int
    train_seconds: float

    @property
    def model(self) -> keras.Model:
        """The trained model."""
        return self.run.model

    @property
    def history(self) -> list[dict[str, float]]:
        """history.csv of the run: one row per epoch."""
        return self.run.history

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
        Variant("PPM avg, bins 1-2-3-6, no aux loss", aux_head=False),
    ]


def validation_data(data_root: str | Path, recipe: training.Recipe):
    """The validation batches of `recipe` (whole scenes at its image_size, its first `val_limit` pairs), in file order,
    unaugmented, with the labels every score counts (`EVALUATION_LABELS`)."""
    return data.make_dataset(
        data_root, "val", image_size=recipe.image_size, batch_size=recipe.batch_size, augment=False, shuffle=False,
        limit=recipe.val_limit, labels=EVALUATION_LABELS,
    )


def train_config(variant: Variant, recipe: training.Recipe, data_root: str | Path, out: str | Path) -> training.TrainConfig:
    """The `training.TrainConfig` of one variant's run in folder `out`: the budget's recipe, the variant's network.

    Every variant validates after each epoch on the recipe's first `val_limit` val pairs, so its history shows
    validation curves."""
    return training.configure(out, data_root, variant.recipe(recipe), tensorboard=False)


def train_variant(
    variant: Variant, budget: training.Recipe, data_root: str | Path, out: str | Path | None = None
) -> training.TrainResult:
    """Train `variant` under `budget` with `training.train`.

    The run folder is `out` (kept, with its checkpoints and history.csv), else a temporary one, removed after.
    """
    with tempfile.TemporaryDirectory(prefix="pspnet-variant-") as scratch:
        return training.train(train_config(variant, budget, data_root, out or Path(scratch) / "run"), verbose=0)


def run_comparison(
    variants: Sequence[Variant],
    budget: training.Recipe,
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
        run = train_variant(variant, budget, data_root, run_dir)
        scores = inference.evaluate(run.model, val_data, labels=EVALUATION_LABELS)
        seconds = 60 * run.history[-1]["train_minutes"]
        result = VariantResult(variant, run, scores, models.count_parameters(run.model), seconds)
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
