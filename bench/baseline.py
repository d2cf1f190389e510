"""The plain baseline the CPU recipe must beat: the same small network, trained the simplest way.

What an hour of plain code would do: the small PSPNet the recipe trains (`NetworkSpec("pspnet", "small")`), Adam
at a constant learning rate, whole scenes with random left-right flips and nothing else (no scaling, no crops),
cross-entropy (the auxiliary head weighted as everywhere in the course), and no validation inside the budget: the
model is scored once, at the end. It trains on the same pairs and size as the recipe and is scored by the same
scorer (`inference.evaluate_split`). Keras' own `fit`, not the library's `train`, so none of the recipe's
ingredients can creep in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PLAIN_LEARNING_RATE = 2e-3  # Adam, constant: the rate the recipe starts its annealing from
UNTIL_THE_BUDGET = 100_000  # epochs: the time budget ends training long before


@dataclass(frozen=True)
class PlainRun:
    """A trained plain baseline: the model, its optimiser steps and the seconds `fit` took."""

    model: object  # keras.Model
    steps: int
    seconds: float


def train_plain_baseline(
    data: Path, budget_minutes: float, image_size: int, batch_size: int, seed: int
) -> PlainRun:
    """Train the plain baseline on `data`'s train split for `budget_minutes` (building and tracing included)."""
    import time

    import keras

    from pspnet_lib import models
    from pspnet_lib.data import make_dataset
    from pspnet_lib.training import TimeBudget, compile_for_training, training_targets

    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = models.build(models.NetworkSpec("pspnet", "small"))
    compile_for_training(model, keras.optimizers.Adam(PLAIN_LEARNING_RATE))
    scenes = make_dataset(  # scale 1 of the whole scene: the only augmentation left is the flip
        data, "train", image_size=image_size, batch_size=batch_size, augment=True, scale_range=(1.0, 1.0), seed=seed
    )
    left = budget_minutes - (time.perf_counter() - start) / 60.0  # building the model and the data count too
    budget = TimeBudget(max(left, 1e-3))  # stops after the step that reaches it; no validation held in reserve
    model.fit(training_targets(scenes, model), epochs=UNTIL_THE_BUDGET, callbacks=[budget], shuffle=False, verbose=0)
    return PlainRun(model, int(model.optimizer.iterations), time.perf_counter() - start)
