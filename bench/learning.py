"""Learning at equal budget: mIoU on the synthetic val set after the same wall-clock training time per model."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.results import Row
from bench.targets import LEARNING_LEADER, leader_ahead

MODEL_TITLES = {
    "pspnet": "small PSPNet",
    "fcn": "dilated FCN (no PPM)",
    "article": "article model (RGB decoded by the palette, as inference does)",
}


@dataclass(frozen=True)
class LearningSetup:
    """What every model gets: the same data, scene size, batch, recipe (the CPU one) and wall-clock budget."""

    data: Path
    budget_minutes: float
    image_size: int = 128
    batch_size: int = 8
    recipe: str = "cpu"
    seed: int = 0


def validation_miou(model, setup: LearningSetup) -> float:
    """mIoU of `model` over the whole val split of `setup.data`, scored by the library's `inference.evaluate_split`
    (standard labels, its default)."""
    from pspnet_lib import inference

    return inference.evaluate_split(model, setup.data, "val", image_size=setup.image_size, batch_size=setup.batch_size).miou


def step_counter():
    """A Keras callback counting training batches (its `.steps`)."""
    import keras

    class StepCounter(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            self.steps += 1

    return StepCounter()


def train_within_budget(model_name: str, setup: LearningSetup, run_dir: Path) -> tuple[float, int, int]:
    """Train `model_name` for the budget with the library's `train`; (val mIoU, steps, epochs)."""
    from pspnet_lib.training import configure, train

    config = configure(
        run_dir, setup.data, setup.recipe, network=model_name, backbone="small", image_size=setup.image_size,
        batch_size=setup.batch_size, max_minutes=setup.budget_minutes, seed=setup.seed, tensorboard=False,
    )
    counter = step_counter()
    result = train(config, callbacks=[counter], verbose=0)
    return validation_miou(result.model, setup), counter.steps, len(result.history)


def learning_rows(setup: LearningSetup, model_names: tuple[str, ...] = tuple(MODEL_TITLES)) -> list[Row]:
    """One mIoU row per model; the PSPNet row carries the "ahead of the others" target."""
    scores, details = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as folder:
        for name in model_names:
            miou, steps, epochs = train_within_budget(name, setup, Path(folder) / name)
            scores[name] = None if math.isnan(miou) else miou
            details[name] = {"steps": steps, "epochs": epochs}
    settings = (
        f"{setup.budget_minutes:g} min, {setup.image_size}px, batch {setup.batch_size}, {setup.recipe} recipe"
    )
    rows = []
    for name in model_names:
        detail = f"{settings}; {details[name]['steps']} steps, {details[name]['epochs']} epochs"
        target, met = "", None
        if name == LEARNING_LEADER and len(scores) > 1:
            target, met = "> every other model", leader_ahead(scores)
        rows.append(
            Row(
                "learning",
                f"val mIoU, {MODEL_TITLES[name]}",
                scores[name],
                "mIoU",
                detail,
                target,
                met,
                extra=details[name],
            )
        )
    return rows
