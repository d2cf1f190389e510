"""The CPU recipe on the real pairs, beside a plain baseline: what a student without a GPU gets in 10 minutes.

Each seed trains the small PSPNet with the command line's CPU defaults (`train --recipe cpu --backbone small
--image-size 128 --batch-size 8 --max-minutes 10`) on the first 600 train pairs, and then the plain baseline
(`bench.baseline`: the same network, Adam at a constant rate, flips only, whole scenes, no validation) on the same
pairs for the same budget. Every final model (and the recipe's best checkpoint) is scored by the library's
`inference.evaluate_split` on the first 200 val pairs at 128 px, against standard labels (Cityscapes' own
decoding, the default) and, for comparison, border-aware ones. The last row is the ratio of the two systems' mean
mIoU (standard labels), with the seed spread and the CPU's instruction-set flags. Training images/s count every
second of a run: building, tracing, the first epoch's decoding and, for the recipe, every validation.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.baseline import PLAIN_LEARNING_RATE, train_plain_baseline
from bench.results import Row
from bench.targets import (
    HANDWRITTEN_IMAGES_PER_SECOND,
    RECIPE_MIN_MIOU,
    RECIPE_MIN_PIXEL_ACCURACY,
    RECIPE_MIN_RATIO_TO_BASELINE,
    rate_met,
)


@dataclass(frozen=True)
class RecipeSetup:
    """The issue's comparison: which pairs, how long, which seeds."""

    data: Path
    budget_minutes: float = 10.0
    train_pairs: int = 600
    val_pairs: int = 200
    image_size: int = 128
    batch_size: int = 8
    seeds: tuple[int, ...] = (0, 1, 2)
    without: tuple[str, ...] = ()  # ingredients (INGREDIENTS) to take out, one run each: then only those runs


@dataclass(frozen=True)
class Ingredient:
    """One ingredient of the CPU recipe (issue 38): what the recipe is without it, and the settings that take it out
    at a setup's sizes (the rest of the recipe kept)."""

    without: str
    changes: Callable[[RecipeSetup], dict]


# Width is not something the plain baseline lacks (it trains the same network): its row asks whether a narrower
# network pays. Validation cannot go whole (the precise pass and the best checkpoint follow one): it is cut to a batch.
INGREDIENTS = {
    "crops": Ingredient("training on whole scenes (crop_size = image_size, cut from the shrunk scenes), still randomly "
                        "scaled", lambda setup: {"crop_size": setup.image_size, "full_resolution_crops": False}),
    "scale-range": Ingredient("no random scaling (scale_range 1-1)", lambda setup: {"scale_range": (1.0, 1.0)}),
    "soft-jaccard": Ingredient("cross-entropy alone (jaccard_weight 0)", lambda setup: {"jaccard_weight": 0.0}),
    "precise-bn": Ingredient("the batch norm statistics training kept (no precise pass)",
                             lambda setup: {"precise_batch_norm": False}),
    "deadline-schedule": Ingredient("Adam at a constant rate to the end (lr_schedule constant)",
                                    lambda setup: {"lr_schedule": "constant"}),
    "validation": Ingredient("validation inside the budget cut to one batch an epoch (val_limit = batch_size)",
                             lambda setup: {"val_limit": setup.batch_size}),
    "width": Ingredient("the small network at width 0.75", lambda setup: {"width": 0.75}),
}


def ingredient_changes(name: str, setup: RecipeSetup) -> dict:
    """The recipe settings that take ingredient `name` out of the CPU recipe at `setup`'s sizes."""
    if name not in INGREDIENTS:
        raise ValueError(f"unknown ingredient {name!r}; expected one of {', '.join(INGREDIENTS)}")
    return INGREDIENTS[name].changes(setup)


def subset_dataset(root: Path, folder: Path, train_pairs: int, val_pairs: int) -> Path:
    """A dataset folder holding links to the first `train_pairs` / `val_pairs` files of `root`'s splits."""
    from pspnet_lib.data import list_pairs, resolve_dataset_dirs

    dirs = resolve_dataset_dirs(root)
    for split, count in (("train", train_pairs), ("val", val_pairs)):
        target = folder / split
        target.mkdir(parents=True, exist_ok=True)
        for path in list_pairs(dirs.split(split))[:count]:
            try:
                os.symlink(path.resolve(), target / path.name)
            except OSError:  # no symlinks here (some Windows set-ups): copy
                shutil.copyfile(path, target / path.name)
    return folder


def recipe_config(setup: RecipeSetup, data: Path, out: Path, seed: int, **changes):
    """The run of one seed: what `python -m pspnet_lib train --recipe cpu --backbone small --image-size 128
    --batch-size 8 --max-minutes 10 --seed N` configures, with `changes` (an ingredient taken out)."""
    from pspnet_lib import training

    return training.configure(
        out, data, "cpu", backbone="small", image_size=setup.image_size, batch_size=setup.batch_size,
        max_minutes=setup.budget_minutes, seed=seed, tensorboard=False, **changes,
    )


def score(model, data: Path, setup: RecipeSetup) -> dict:
    """Scores of a model or saved model file on the subset's val pairs at the training size, by label decoding: the
    evaluation default (standard, what every comparison uses) and border-aware (`metrics.SegmentationScores`)."""
    from pspnet_lib import inference
    from pspnet_lib.data.palette import LABEL_DECODINGS

    model = inference.load_model(model) if isinstance(model, Path) else model
    return {
        labels: inference.evaluate_split(model, data, "val", image_size=setup.image_size, batch_size=16, labels=labels)
        for labels in LABEL_DECODINGS
    }


def final_scores(scores: dict, prefix: str = "final") -> dict:
    """The flat result keys of `score`'s answer: `final_miou` (EVALUATION_LABELS), `final_miou_border_aware`, ...,
    and for the final model the standard labels' per-class IoU (by class name) and confusion counts (rows: truth)."""
    from pspnet_lib.data.palette import EVALUATION_LABELS

    flat = {
        f"{prefix}_{name}{'' if labels == EVALUATION_LABELS else '_' + labels.replace('-', '_')}": getattr(scores[labels], name)
        for labels in scores for name in ("miou", "pixel_accuracy")
    }
    if prefix == "final":
        standard = scores[EVALUATION_LABELS]
        flat |= {"final_per_class_iou": standard.as_dict()["per_class_iou"],
                 "final_confusion": standard.confusion.astype(int).tolist()}
    return flat


# The columns of a run's history.csv a results file keeps: the learning curve notebook 06 shows beside its own.
CURVE_COLUMNS = ("epoch", "train_minutes", "loss", "logits_miou", "val_loss", "val_logits_miou",
                 "val_logits_pixel_accuracy")


def learning_curve(history: list[dict]) -> list[dict]:
    """`history` (run_files.read_history's rows) cut to CURVE_COLUMNS, values rounded to 5 significant digits."""
    return [{key: row[key] if key == "epoch" else float(f"{row[key]:.5g}") for key in CURVE_COLUMNS if key in row}
            for row in history]


def run_seed(setup: RecipeSetup, data: Path, out: Path, seed: int, without: str | None = None) -> dict:
    """Train one seed of the recipe (or of the recipe `without` one ingredient); its scores, steps, epochs and
    images/s, and the recipe an ingredient is taken out of (rows of different runs pair only on equal recipes)."""
    import keras

    from pspnet_lib import training
    from pspnet_lib.run_files import read_history

    changes = {} if without is None else ingredient_changes(without, setup)
    base = recipe_config(setup, data, out, seed)
    config = recipe_config(setup, data, out, seed, **changes) if changes else base
    start = time.perf_counter()
    training.train(config, verbose=2)
    seconds = time.perf_counter() - start
    steps = int(keras.saving.load_model(out / "model.keras").optimizer.iterations)  # compiled: with its optimizer
    best = final_scores(score(out / "best.keras", data, setup), "best")
    history = read_history(out / "history.csv")
    return {
        "seed": seed, **final_scores(score(out / "model.keras", data, setup)),
        "best_miou": best["best_miou"], "best_pixel_accuracy": best["best_pixel_accuracy"], "steps": steps,
        "epochs": len(history), "seconds": seconds, "images_per_second": steps * setup.batch_size / seconds,
        "without": without, "changes": changes,
        "recipe": {key: value for key, value in base.recipe.as_dict().items() if key != "seed"},
        "curve": learning_curve(history),
    }


def run_baseline_seed(setup: RecipeSetup, data: Path, seed: int) -> dict:
    """Train the plain baseline (`bench.baseline`) for one seed on the same pairs and budget; its scores and speed."""
    run = train_plain_baseline(data, setup.budget_minutes, setup.image_size, setup.batch_size, seed)
    return {
        "seed": seed, **final_scores(score(run.model, data, setup)), "steps": run.steps, "seconds": run.seconds,
        "images_per_second": run.steps * setup.batch_size / run.seconds,
    }


def seed_rows(result: dict, setup: RecipeSetup) -> list[Row]:
    """The rows of one seed: final mIoU and pixel accuracy (with their targets), best checkpoint, images/s."""
    seed = result["seed"]
    detail = (
        f"seed {seed}: {result['epochs']} epochs, {result['steps']} steps in {result['seconds']:.0f} s; "
        f"best checkpoint {result['best_miou']:.3f} mIoU / {result['best_pixel_accuracy']:.3f} pixel acc"
        + border_aware_note(result)
    )
    low, high = HANDWRITTEN_IMAGES_PER_SECOND
    return [
        Row("recipe", f"final model mIoU, seed {seed}", result["final_miou"], "mIoU", detail,
            f">= {RECIPE_MIN_MIOU}", result["final_miou"] >= RECIPE_MIN_MIOU, extra=result),
        Row("recipe", f"final model pixel accuracy, seed {seed}", result["final_pixel_accuracy"], "fraction", "",
            f">= {RECIPE_MIN_PIXEL_ACCURACY}", result["final_pixel_accuracy"] >= RECIPE_MIN_PIXEL_ACCURACY),
        Row("recipe", f"train images/s (everything in the budget), seed {seed}", result["images_per_second"],
            "images/s", f"hand-written small PSPNet: {low}-{high} images/s", f">= {low}",
            rate_met(result["images_per_second"], low)),
    ]


def ablation_row(result: dict) -> Row:
    """The row of one seed of the recipe without one ingredient: its final mIoU (standard labels), no target."""
    name, seed = result["without"], result["seed"]
    detail = (
        f"seed {seed}, {INGREDIENTS[name].without}: {result['epochs']} epochs, {result['steps']} steps in "
        f"{result['seconds']:.0f} s; {result['final_pixel_accuracy']:.3f} pixel acc" + border_aware_note(result)
    )
    return Row("recipe", f"recipe without {name} final mIoU, seed {seed}", result["final_miou"], "mIoU", detail,
               extra=result)


def border_aware_note(result: dict) -> str:
    """'; border-aware labels: 0.xxx mIoU' when the result holds that score."""
    miou = result.get("final_miou_border_aware")
    return "" if miou is None else f"; final model on border-aware labels: {miou:.3f} mIoU"


def baseline_rows(result: dict, setup: RecipeSetup) -> list[Row]:
    """The rows of one seed of the plain baseline: final mIoU (standard labels) and images/s; no targets."""
    seed = result["seed"]
    detail = (
        f"seed {seed}: Adam {PLAIN_LEARNING_RATE:g} constant, flips only, whole {setup.image_size} px scenes, "
        f"no validation; {result['steps']} steps in {result['seconds']:.0f} s; "
        f"{result['final_pixel_accuracy']:.3f} pixel acc" + border_aware_note(result)
    )
    return [
        Row("recipe", f"plain baseline final mIoU, seed {seed}", result["final_miou"], "mIoU", detail, extra=result),
        Row("recipe", f"plain baseline train images/s, seed {seed}", result["images_per_second"], "images/s"),
    ]


def spread(values: list[float]) -> float | None:
    """Sample standard deviation over seeds (None with fewer than two)."""
    return statistics.stdev(values) if len(values) > 1 else None


def system_summary(results: list[dict]) -> dict:
    """Per-seed final mIoU (both label decodings) of one system, with the means and the spread over seeds."""
    standard = [result["final_miou"] for result in results]
    border_aware = [result.get("final_miou_border_aware") for result in results]
    summary = {"seeds": [result["seed"] for result in results], "miou": standard, "mean_miou": statistics.fmean(standard),
               "sd_miou": spread(standard)}
    if None not in border_aware:
        summary |= {"miou_border_aware": border_aware, "mean_miou_border_aware": statistics.fmean(border_aware)}
    return summary


def comparison_row(recipe: list[dict], baseline: list[dict], cpu_flags: list[str]) -> Row:
    """Recipe / plain baseline: the ratio of mean final mIoU (standard labels), the paired per-seed ratios' spread,
    both systems' seeds, the same ratio on border-aware labels, and the CPU's instruction-set flags."""
    from pspnet_lib.data.palette import EVALUATION_LABELS

    ours, plain = system_summary(recipe), system_summary(baseline)
    ratio = ours["mean_miou"] / plain["mean_miou"] if plain["mean_miou"] > 0 else None
    paired = [r["final_miou"] / b["final_miou"] for r, b in zip(recipe, baseline, strict=True) if b["final_miou"] > 0]
    extra = {
        "labels": EVALUATION_LABELS, "recipe": ours, "baseline": plain, "ratio": ratio, "paired_ratios": paired,
        "ratio_range": [min(paired), max(paired)] if paired else None, "ratio_sd": spread(paired), "cpu_flags": cpu_flags,
    }
    if "mean_miou_border_aware" in ours and "mean_miou_border_aware" in plain and plain["mean_miou_border_aware"] > 0:
        extra["ratio_border_aware"] = ours["mean_miou_border_aware"] / plain["mean_miou_border_aware"]

    def sd(value: float | None) -> str:
        return "" if value is None else f" ± {value:.3f}"

    detail = (
        f"{len(recipe)} seeds each, {EVALUATION_LABELS} labels: recipe {ours['mean_miou']:.3f}{sd(ours['sd_miou'])}, plain "
        f"baseline {plain['mean_miou']:.3f}{sd(plain['sd_miou'])} mIoU (mean ± sd over seeds)"
        + (f"; per-seed ratios {min(paired):.2f}-{max(paired):.2f}" if paired else "")
        + f"; CPU flags: {' '.join(cpu_flags) or 'none found'}"
    )
    met = None if ratio is None else ratio >= RECIPE_MIN_RATIO_TO_BASELINE
    return Row("recipe", "recipe / plain baseline, mean final mIoU", ratio, "x", detail,
               f">= {RECIPE_MIN_RATIO_TO_BASELINE:g}x", met, extra=extra)


def recipe_rows(setup: RecipeSetup, scratch: Path, cpu_flags: list[str] | None = None):
    """Train every seed of `setup`, the recipe then the plain baseline, and yield the rows as soon as each is
    scored; finally the comparison row (the CPU's `cpu_flags` recorded in it). With `setup.without`, seed by seed the
    recipe itself (a control, marked `control`) and then the recipe without each of those ingredients: the machine's
    speed drifts between sittings, so `python -m bench.recipe_summary` pairs each with the control of its sitting."""
    data = subset_dataset(setup.data, scratch / "pairs", setup.train_pairs, setup.val_pairs)
    if setup.without:
        for seed in setup.seeds:  # the recipe itself first: its control, trained at this sitting's machine speed
            yield from seed_rows(run_seed(setup, data, scratch / f"control-seed{seed}", seed) | {"control": True}, setup)
            for name in setup.without:
                yield ablation_row(run_seed(setup, data, scratch / f"without-{name}-seed{seed}", seed, without=name))
        return
    recipe, baseline = [], []
    for seed in setup.seeds:
        recipe.append(run_seed(setup, data, scratch / f"seed{seed}", seed))
        yield from seed_rows(recipe[-1], setup)
        baseline.append(run_baseline_seed(setup, data, seed))
        yield from baseline_rows(baseline[-1], setup)
    yield comparison_row(recipe, baseline, list(cpu_flags or []))
