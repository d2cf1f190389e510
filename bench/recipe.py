"""The CPU recipe on the real pairs: what a student without a GPU gets from `train` in 10 minutes on 2 cores.

Each seed trains the small PSPNet with the command line's CPU defaults (`train --recipe cpu --backbone small
--image-size 128 --batch-size 8 --max-minutes 10`) on the first 600 train pairs; the final model.keras and
the best checkpoint are scored by the library's `inference.evaluate` on the first 200 val pairs at 128 px.
Training images/s count every second of the `train` call: building, tracing, the first epoch's decoding and
every validation.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.results import Row
from bench.targets import (
    HANDWRITTEN_IMAGES_PER_SECOND,
    RECIPE_MIN_MIOU,
    RECIPE_MIN_PIXEL_ACCURACY,
    rate_met,
)

INTERRUPTED = 130  # the command line's exit status after Ctrl-C or SIGTERM


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


def train_command(setup: RecipeSetup, data: Path, out: Path, seed: int) -> list[str]:
    """The `python -m pspnet_lib` arguments of one seed's run."""
    return [
        "train", "--recipe", "cpu", "--data", str(data), "--out", str(out), "--backbone", "small",
        "--image-size", str(setup.image_size), "--batch-size", str(setup.batch_size),
        "--max-minutes", f"{setup.budget_minutes:g}", "--seed", str(seed), "--no-tensorboard", "--quiet",
    ]


def score(model_path: Path, data: Path, setup: RecipeSetup) -> dict:
    """mIoU and pixel accuracy of a saved model on the subset's val pairs at the training size."""
    from pspnet_lib import inference
    from pspnet_lib.data import make_dataset

    dataset = make_dataset(data, "val", image_size=setup.image_size, batch_size=16, augment=False, shuffle=False)
    return inference.evaluate(inference.load_model(model_path), dataset).as_dict()


def run_seed(setup: RecipeSetup, data: Path, out: Path, seed: int) -> dict:
    """Train one seed through the command line; its scores, steps, epochs and images/s."""
    import keras

    from pspnet_lib.cli import main
    from pspnet_lib.run_files import read_history

    start = time.perf_counter()
    status = main(train_command(setup, data, out, seed))
    seconds = time.perf_counter() - start
    if status == INTERRUPTED:
        raise KeyboardInterrupt(f"train of seed {seed} interrupted")
    if status != 0:
        raise RuntimeError(f"train exited with status {status} for seed {seed}")
    steps = int(keras.saving.load_model(out / "model.keras").optimizer.iterations)  # compiled: with its optimizer
    final, best = score(out / "model.keras", data, setup), score(out / "best.keras", data, setup)
    return {
        "seed": seed, "final_miou": final["miou"], "final_pixel_accuracy": final["pixel_accuracy"],
        "best_miou": best["miou"], "best_pixel_accuracy": best["pixel_accuracy"], "steps": steps,
        "epochs": len(read_history(out / "history.csv")), "seconds": seconds,
        "images_per_second": steps * setup.batch_size / seconds,
    }


def seed_rows(result: dict, setup: RecipeSetup) -> list[Row]:
    """The rows of one seed: final mIoU and pixel accuracy (with their targets), best checkpoint, images/s."""
    seed = result["seed"]
    detail = (
        f"seed {seed}: {result['epochs']} epochs, {result['steps']} steps in {result['seconds']:.0f} s; "
        f"best checkpoint {result['best_miou']:.3f} mIoU / {result['best_pixel_accuracy']:.3f} pixel acc"
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


def recipe_rows(setup: RecipeSetup, scratch: Path):
    """Train every seed of `setup` and yield its rows as soon as it is scored."""
    data = subset_dataset(setup.data, scratch / "pairs", setup.train_pairs, setup.val_pairs)
    for seed in setup.seeds:
        yield from seed_rows(run_seed(setup, data, scratch / f"seed{seed}", seed), setup)
