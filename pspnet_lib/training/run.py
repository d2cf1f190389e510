"""`train(config)`: one training run, the fit loop under the device plan.

The run's settings are resolved before it starts (`config.configure`); `train` checks the run folder
(`run_folder`), decides how many val pairs each epoch scores and saves the whole config as config.json before
it reads any data (`inputs`), builds and compiles the model (`model_setup`) under the device plan (`devices`) and
fits. Run again with the same folder it resumes an interrupted run from its last finished epoch.

With several replicas (GPUs or TF_CONFIG workers) batch norm statistics are computed over all of them, and
only the chief worker writes the run folder; every other worker writes the same files into its own
`workertemp_<index>` folder inside it (its backup for resuming), removed when training ends: the usual
Keras multi-worker pattern, safe on a shared file system.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from pspnet_lib import models
from pspnet_lib.data.pipeline import scene_photos
from pspnet_lib.training.callbacks import (
    PRECISE_BN_SCENES,
    PreciseBatchNorm,
    TimeBudget,
    atomic_write_text,
    precise_pass_share,
    read_history,
    run_callbacks,
)
from pspnet_lib.training.config import CONFIG_FILE, TrainConfig
from pspnet_lib.training.devices import create_strategy, current_plan, precision_scope
from pspnet_lib.training.inputs import (
    check_labels,
    count_batches,
    dataset_root,
    load_datasets,
    with_validation_count,
)
from pspnet_lib.training.model_setup import (
    build_model,
    compile_for_training,
    load_pretrained_source,
    monitor_name,
    training_targets,
)
from pspnet_lib.training.optimizers import build_optimizer
from pspnet_lib.training.recipes import loss_options
from pspnet_lib.training.run_folder import check_run_dir, is_chief, worker_dir


@dataclass
class TrainResult:
    """What a run produced: its folder, the trained model and the history of every epoch so far.

    `chief` is False on a worker of a multi-worker run other than the chief: it wrote nothing to `run_dir`.
    `config` is the run's whole config as saved in config.json (with the validation count decided).
    """

    run_dir: Path
    model: keras.Model
    history: list[dict[str, float]]
    stopped_by_time_budget: bool = False
    chief: bool = True
    config: TrainConfig | None = None


def train(
    config: TrainConfig, callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int | str = "auto"
) -> TrainResult:
    """Train (or resume) the run described by `config`; extra `callbacks` (e.g. a live view) run too.

    The device plan's dtype policy (mixed precision on a GPU) holds during the run only: Keras' global policy is
    restored afterwards, so later cells of a notebook build float32 models again.
    """
    root = dataset_root(config)
    config = with_validation_count(config, root)  # the last setting decided: config.json records it
    check_run_dir(config)
    check_labels(root)
    imagenet_source = load_pretrained_source(config)
    plan = current_plan(config.devices)
    if plan.notice:
        print(plan.notice, file=sys.stderr)
    strategy = create_strategy(plan)
    with precision_scope(plan):
        return _fit(config, root, imagenet_source, plan, strategy, callbacks, verbose)


def _fit(config: TrainConfig, root: Path, imagenet_source, plan, strategy, callbacks, verbose) -> TrainResult:
    """Build data, model and optimiser under `strategy` and fit them; the body of `train`."""
    recipe = config.recipe
    write_dir = worker_dir(config, strategy)
    atomic_write_text(write_dir / CONFIG_FILE, json.dumps(config.as_dict(), indent=2))
    keras.utils.set_random_seed(recipe.seed)
    train_data, val_data = load_datasets(config, root)
    train_batches = count_batches(train_data)
    total_steps = train_batches * recipe.epochs
    decay = recipe.lr_schedule == "poly"
    with strategy.scope():
        model = build_model(config, imagenet_source, strategy.num_replicas_in_sync)
        optimizer = build_optimizer(
            recipe.optimizer, recipe.lr,
            # With a time budget the TimeBudget callback sets the (poly) learning rate before every step.
            total_steps if decay and recipe.max_minutes is None else None,
            new_layer_variables=models.new_layer_variables(model),
            head_lr_multiplier=recipe.head_lr_multiplier,
        )
        compile_for_training(model, optimizer, recipe.aux_weight, plan.jit_compile, **loss_options(recipe))
    final_pass, final_pass_share = [], 0.0
    # One replica only: the eager pass is not run under a distribution strategy (the multi-GPU paper recipe
    # does not ask for it).
    if recipe.precise_batch_norm and strategy.num_replicas_in_sync == 1:
        scenes = min(PRECISE_BN_SCENES, train_batches * recipe.batch_size)
        final_pass.append(PreciseBatchNorm(scene_photos(root, "train", recipe.image_size, recipe.batch_size, scenes, recipe.limit)))
        final_pass_share = precise_pass_share(scenes, count_batches(val_data) * recipe.batch_size)
    # The clock of every run (train_minutes in history.csv); with max_minutes also its deadline and the lr schedule.
    budget = TimeBudget(
        recipe.max_minutes, write_dir / "history.csv",
        recipe.lr if decay and recipe.max_minutes is not None else None, total_steps,
        final_pass_share=final_pass_share,
    )
    run_list = run_callbacks(write_dir, monitor_name(model), config.tensorboard)
    model.fit(
        # One iterator for the whole run, an epoch being one pass: Keras would otherwise replace the iterator
        # of a finite dataset after every epoch, and freeing one that was not read to its end can stall the
        # next epoch's first step for seconds (waiting on tf.data's threads).
        training_targets(train_data, model).repeat(),
        steps_per_epoch=train_batches,
        validation_data=training_targets(val_data, model),
        epochs=recipe.epochs,
        shuffle=False,  # the training pipeline shuffles, reproducibly from the seed
        callbacks=[budget, *final_pass, *run_list, *callbacks],
        verbose=verbose,
    )
    history = read_history(write_dir / "history.csv")
    if write_dir != config.run_dir:
        shutil.rmtree(write_dir, ignore_errors=True)
    return TrainResult(config.run_dir, model, history, budget.stopped, is_chief(strategy), config)
