"""One training run in a folder: config.json, history.csv, best.keras, model.keras, backup/ and logs/.

`train(config)` builds the data, the model and the optimiser under the device plan and fits; run again
with the same folder it resumes an interrupted run from its last finished epoch.

With several replicas (GPUs or TF_CONFIG workers) batch norm statistics are computed over all of them, and
only the chief worker writes the run folder; every other worker writes the same files into its own
`workertemp_<index>` folder inside it (its backup for resuming), removed when training ends: the usual
Keras multi-worker pattern, safe on a shared file system.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from pspnet_lib import data, models
from pspnet_lib.inference import is_colour_model
from pspnet_lib.metrics import segmentation_metrics
from pspnet_lib.training.callbacks import (
    TimeBudget,
    atomic_write_text,
    read_history,
    run_callbacks,
)
from pspnet_lib.training.devices import DeviceSwitches, apply_precision, create_strategy, current_plan
from pspnet_lib.training.losses import AUX_WEIGHT, PaletteColourMSE, segmentation_loss
from pspnet_lib.training.optimizers import NEW_LAYER_LR_MULTIPLIER, OPTIMIZERS, build_optimizer

MODELS = ("pspnet", "fcn", "article")
WEIGHTS = (None, "imagenet")
# Settings that fix the network: a resumed run must keep them.
ARCHITECTURE_FIELDS = ("model", "backbone", "image_size")


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as config.json in the run folder."""

    out: str
    data: str | None = None
    model: str = "pspnet"
    backbone: str = "resnet50"
    weights: str | None = None  # "imagenet": start the resnet50 backbone from Keras' ImageNet ResNet-50
    image_size: int = 256
    batch_size: int = 8
    epochs: int = 10
    max_minutes: float | None = None
    limit: int | None = None
    seed: int = 0
    optimizer: str = "sgd"
    lr: float | None = None
    aux_weight: float = AUX_WEIGHT
    # None: NEW_LAYER_LR_MULTIPLIER (10) for the new layers when SGD starts from ImageNet weights, as the authors train; else 1.
    head_lr_multiplier: float | None = None
    mixed_precision: bool | None = None
    xla: bool | None = None
    distribute: bool | None = None
    tensorboard: bool = True

    def __post_init__(self) -> None:
        """Reject settings that cannot work, naming the setting."""
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be None or 'imagenet', got {self.weights!r}")
        if self.weights == "imagenet" and (self.backbone != "resnet50" or self.model == "article"):
            raise ValueError(
                "weights='imagenet' needs model 'pspnet' or 'fcn' with backbone 'resnet50', "
                f"got model={self.model!r}, backbone={self.backbone!r}"
            )
        for name in ("image_size", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.head_lr_multiplier is not None:
            if not self.head_lr_multiplier > 0:
                raise ValueError(f"head_lr_multiplier must be > 0, got {self.head_lr_multiplier!r}")
            if self.head_lr_multiplier != 1 and self.optimizer != "sgd":
                raise ValueError(
                    f"head_lr_multiplier applies to optimizer 'sgd' only, got optimizer={self.optimizer!r}"
                )

    @property
    def new_layer_lr_multiplier(self) -> float:
        """The learning-rate multiplier of the new layers: as set, else 10 for SGD from ImageNet weights, else 1."""
        if self.head_lr_multiplier is not None:
            return float(self.head_lr_multiplier)
        return NEW_LAYER_LR_MULTIPLIER if self.weights == "imagenet" and self.optimizer == "sgd" else 1.0

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return Path(self.out)


class PretrainedWeightsUnavailable(RuntimeError):
    """The ImageNet weights a run asked for could not be loaded (offline, say); nothing was trained."""


@dataclass
class TrainResult:
    """What a run produced: its folder, the trained model and the history of every epoch so far.

    `chief` is False on a worker of a multi-worker run other than the chief: it wrote nothing to `run_dir`.
    """

    run_dir: Path
    model: keras.Model
    history: list[dict[str, float]]
    stopped_by_time_budget: bool = False
    chief: bool = True


def monitor_name(model: keras.Model) -> str:
    """The validation value the best checkpoint follows: mIoU of the main output (loss for RGB models)."""
    if is_colour_model(model):
        return "val_loss"
    prefix = f"{model.output_names[0]}_" if len(model.outputs) > 1 else ""
    return f"val_{prefix}miou"


def compile_for_training(
    model: keras.Model, optimizer, aux_weight: float = AUX_WEIGHT, jit_compile: bool = False
) -> None:
    """Compile with the right loss: cross-entropy (plus weighted auxiliary loss) or the article's colour MSE."""
    if is_colour_model(model):
        model.compile(optimizer=optimizer, loss=PaletteColourMSE(), jit_compile=jit_compile)
        return
    names = model.output_names
    model.compile(
        optimizer=optimizer,
        loss={name: segmentation_loss() for name in names},
        loss_weights={names[0]: 1.0, **{name: aux_weight for name in names[1:]}},
        metrics={names[0]: segmentation_metrics(model.outputs[0].shape[-1])},
        jit_compile=jit_compile,
    )


def training_targets(dataset, model: keras.Model):
    """`dataset` of (image, label) with the label repeated for every output of `model` (main and auxiliary)."""
    if len(model.outputs) == 1:
        return dataset
    names = tuple(model.output_names)
    return dataset.map(lambda image, label: (image, {name: label for name in names}))


def build_model(config: TrainConfig, imagenet_source: keras.Model | None = None, replicas: int = 1) -> keras.Model:
    """The network named by `config.model`, for square crops of `config.image_size`.

    With `imagenet_source` (a keras.applications ResNet50, see `load_pretrained_source`) its weights are
    copied into the backbone. With `replicas` > 1 every batch norm layer shares its statistics across replicas.
    """
    if config.model == "article":
        shape = (config.image_size, config.image_size, 3)
        return models.build_article_model(shape, flatten_output=False, synchronized_batch_norm=replicas > 1)
    build = models.build_pspnet if config.model == "pspnet" else models.build_dilated_fcn
    model = build(
        data.NUM_CLASSES, backbone=config.backbone, input_shape=(None, None, 3), synchronized_batch_norm=replicas > 1
    )
    if imagenet_source is not None:
        models.transfer_resnet50_weights(imagenet_source, model)
    return model


def is_resuming(config: TrainConfig) -> bool:
    """True when the run folder holds the backup of an interrupted run (BackupAndRestore restores it)."""
    return (config.run_dir / "backup").exists()


def load_pretrained_source(config: TrainConfig) -> keras.Model | None:
    """The ImageNet ResNet-50 a fresh `weights="imagenet"` run starts from (None otherwise, or when resuming).

    Keras downloads the weights once (~95 MB). When they are not cached and their server cannot be reached
    (`models.imagenet_weights_available`), or the download fails, this raises `PretrainedWeightsUnavailable`
    at once, before any data is loaded.
    """
    if config.weights != "imagenet" or is_resuming(config):
        return None
    without = "To train without them, leave weights unset (--weights none)."
    if not models.imagenet_weights_available():
        raise PretrainedWeightsUnavailable(
            "weights='imagenet' (--weights imagenet): the ImageNet ResNet-50 weights are not in the Keras cache "
            "and their download server cannot be reached. Connect to the internet once, or copy "
            f"{models.IMAGENET_WEIGHTS_FILE} into ~/.keras/models/ (or $KERAS_HOME/models/). "
            + without
        )
    try:
        return models.load_imagenet_resnet50()
    except RuntimeError as error:
        raise PretrainedWeightsUnavailable(f"weights='imagenet' (--weights imagenet): {error}. {without}") from error


def is_chief(strategy) -> bool:
    """True for the worker that writes the run folder (the only one, unless TF_CONFIG names several)."""
    return bool(strategy.extended.should_checkpoint)


def worker_dir(config: TrainConfig, strategy) -> Path:
    """Where this worker writes: the run folder for the chief, else its own `workertemp_<index>` inside it."""
    if is_chief(strategy):
        return config.run_dir
    return config.run_dir / f"workertemp_{strategy.cluster_resolver.task_id}"


def count_batches(dataset) -> int:
    """Number of batches in `dataset` (counted by iterating when tf.data cannot tell)."""
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality >= 0 else sum(1 for _ in dataset)


def dataset_root(config: TrainConfig) -> Path:
    """The checked dataset root of the run (`default_dataset()` when none is given); DataError when wrong."""
    return data.resolve_dataset_dirs(config.data).root if config.data else data.default_dataset()


def load_datasets(config: TrainConfig, root: Path):
    """(train, val) tf.data pipelines of the dataset at `root`."""
    common = dict(image_size=config.image_size, batch_size=config.batch_size, limit=config.limit, seed=config.seed)
    train_data = data.make_dataset(root, "train", augment=True, shuffle=True, **common)
    val_data = data.make_dataset(root, "val", augment=False, shuffle=False, **common)
    return train_data, val_data


def check_run_dir(config: TrainConfig) -> None:
    """Refuse a run folder that holds a finished run or an interrupted one with another architecture."""
    run_dir = config.run_dir
    if (run_dir / "model.keras").is_file() and not is_resuming(config):
        raise ValueError(f"{run_dir} already holds a finished run (model.keras); choose another --out folder")
    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text())
    changed = [name for name in ARCHITECTURE_FIELDS if saved.get(name) != getattr(config, name)]
    if changed:
        raise ValueError(
            f"{run_dir} holds an interrupted run with different {', '.join(changed)} "
            f"({', '.join(f'{name}={saved.get(name)!r}' for name in changed)}); use the same settings or another --out"
        )


def train(
    config: TrainConfig, callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int | str = "auto"
) -> TrainResult:
    """Train (or resume) the run described by `config`; extra `callbacks` (e.g. a live view) run too."""
    check_run_dir(config)
    root = dataset_root(config)
    imagenet_source = load_pretrained_source(config)
    plan = current_plan(DeviceSwitches(config.mixed_precision, config.xla, config.distribute))
    if plan.notice:
        print(plan.notice, file=sys.stderr)
    strategy = create_strategy(plan)
    apply_precision(plan)
    keras.utils.set_random_seed(config.seed)
    train_data, val_data = load_datasets(config, root)
    with strategy.scope():
        model = build_model(config, imagenet_source, strategy.num_replicas_in_sync)
        optimizer = build_optimizer(
            config.optimizer, config.lr, count_batches(train_data) * config.epochs,
            new_layer_variables=models.new_layer_variables(model),
            new_layer_lr_multiplier=config.new_layer_lr_multiplier,
        )
        compile_for_training(model, optimizer, config.aux_weight, plan.jit_compile)
    write_dir = worker_dir(config, strategy)
    atomic_write_text(write_dir / "config.json", json.dumps(dataclasses.asdict(config), indent=2))
    budget = [TimeBudget(config.max_minutes)] if config.max_minutes else []
    run_list = run_callbacks(write_dir, monitor_name(model), config.tensorboard)
    model.fit(
        training_targets(train_data, model),
        validation_data=training_targets(val_data, model),
        epochs=config.epochs,
        shuffle=False,  # the training pipeline shuffles, reproducibly from the seed
        callbacks=[*budget, *run_list, *callbacks],
        verbose=verbose,
    )
    history = read_history(write_dir / "history.csv")
    if write_dir != config.run_dir:
        shutil.rmtree(write_dir, ignore_errors=True)
    return TrainResult(config.run_dir, model, history, bool(budget and budget[0].stopped), is_chief(strategy))
