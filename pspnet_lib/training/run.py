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
import math
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from pspnet_lib import data, models
from pspnet_lib.data.palette import EVALUATION_LABELS
from pspnet_lib.data.pipeline import check_scale_range, scene_photos
from pspnet_lib.metrics import segmentation_metrics
from pspnet_lib.run_files import check_writable_folder
from pspnet_lib.training.callbacks import (
    PRECISE_BN_SCENES,
    PreciseBatchNorm,
    TimeBudget,
    atomic_write_text,
    precise_pass_share,
    read_history,
    run_callbacks,
)
from pspnet_lib.training.devices import (
    DeviceSwitches,
    create_strategy,
    current_plan,
    precision_scope,
    visible_gpus,
)
from pspnet_lib.training.losses import AUX_WEIGHT, PaletteColorMSE, segmentation_loss
from pspnet_lib.training.optimizers import (
    DEFAULT_LEARNING_RATES,
    NEW_LAYER_LR_MULTIPLIER,
    OPTIMIZERS,
    build_optimizer,
)
from pspnet_lib.training.recipes import default_recipe_name, get_recipe

WEIGHTS = (None, "imagenet")
MIN_IMAGE_SIZE = models.MIN_INPUT_SIZE  # the smallest crop every backbone maps to a feature cell
MAX_IMAGE_SIZE = 2048  # the real pairs' photos are 256 x 256; larger crops are a typo, not a plan
# Settings that fix the network: a resumed run must keep them.
ARCHITECTURE_FIELDS = ("model", "backbone", "image_size", "spec")
# ... and those that shape its training: config.json describes every epoch, so a resume may change only the
# epoch count, the time budget, the data location and what is logged.
RESUME_FIELDS = (
    *ARCHITECTURE_FIELDS, "weights", "batch_size", "lr", "optimizer", "crop_size", "scale_range", "aux_weight",
    "jaccard_weight", "head_lr_multiplier", "seed", "limit",
)
BACKUP_METADATA = "training_metadata.json"  # keras.callbacks.BackupAndRestore's files in backup/
BACKUP_WEIGHTS = "latest.weights.h5"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
DEFAULT_EPOCHS = 10
UNTIL_THE_BUDGET = 100_000  # epochs of a run with a time budget and no epoch count: the budget ends it


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as config.json in the run folder."""

    out: str
    data: str | None = None
    # The recipe that fills in every setting left None below: "paper" or "cpu"; None: `default_recipe_name`.
    recipe: str | None = None
    model: str = "pspnet"  # shorthand for spec.network
    backbone: str | None = None  # shorthand for spec.backbone
    weights: str | None = None  # "imagenet": start the resnet50 backbone from Keras' ImageNet ResNet-50
    image_size: int | None = None
    batch_size: int | None = None
    epochs: int | None = None  # None: DEFAULT_EPOCHS, or until the time budget with max_minutes
    # A time budget: training (validation included) stops by then, and the learning rate decays to 0 at it.
    max_minutes: float | None = None
    limit: int | None = None  # use only the first `limit` pairs of each split
    val_limit: int | None = None  # validate each epoch on the first `val_limit` val pairs; None: the recipe's share
    seed: int = 0
    optimizer: str | None = None
    lr: float | None = None  # None: the recipe's when `optimizer` is the recipe's, else the optimiser's default
    scale_range: tuple[float, float] | None = None  # random scaling of training scenes
    crop_size: int | None = None  # training crops cut from image_size scenes; None: the recipe's fraction of image_size
    aux_weight: float = AUX_WEIGHT
    # Weight of the soft Jaccard term in the main output's loss (losses.CrossEntropyJaccard); None: the recipe's.
    jaccard_weight: float | None = None
    # Recompute batch norm statistics on whole training scenes before the last validation (one replica only);
    # None: the recipe's.
    precise_batch_norm: bool | None = None
    # Cut training crops from the pairs at their own resolution (make_dataset's full_resolution); None: the recipe's.
    full_resolution_crops: bool | None = None
    # None: NEW_LAYER_LR_MULTIPLIER (10) for the new layers when SGD starts from ImageNet weights, as the authors train; else 1.
    head_lr_multiplier: float | None = None
    mixed_precision: bool | None = None
    xla: bool | None = None
    distribute: bool | None = None
    tensorboard: bool = True
    skip_bad: bool = False  # leave unusable pair files out (with a warning) instead of refusing the dataset
    # The network; None: the default spec of `model` and `backbone` (the article model at image_size).
    spec: models.NetworkSpec | None = None

    def __post_init__(self) -> None:
        """Reject settings that cannot work, naming the setting; fill in the recipe's defaults and `spec`."""
        if self.model not in models.NETWORKS:
            raise ValueError(f"model must be one of {models.NETWORKS}, got {self.model!r}")
        self._fill_from_recipe()
        self.spec = self._checked_spec()
        fixed_input = self.spec.input_size is not None  # the article model: whole images of one size
        if self.crop_size is None:
            fraction = 1.0 if fixed_input else get_recipe(self.recipe).crop_fraction
            self.crop_size = max(MIN_IMAGE_SIZE, round(fraction * self.image_size))
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be None or 'imagenet', got {self.weights!r}")
        if self.weights == "imagenet" and (self.backbone != "resnet50" or self.model == "article"):
            raise ValueError(
                "weights='imagenet' needs model 'pspnet' or 'fcn' with backbone 'resnet50', "
                f"got model={self.model!r}, backbone={self.backbone!r}"
            )
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.jaccard_weight >= 0:
            raise ValueError(f"jaccard_weight (--jaccard-weight) must be >= 0, got {self.jaccard_weight}")
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size (--image-size) must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, "
                f"got {self.image_size}"
            )
        if not MIN_IMAGE_SIZE <= self.crop_size <= self.image_size or (fixed_input and self.crop_size != self.image_size):
            expected = f"equal to image_size ({self.image_size}) for a fixed-size network" if fixed_input else (
                f"between {MIN_IMAGE_SIZE} and image_size ({self.image_size})")
            raise ValueError(f"crop_size (--crop-size) must be {expected}, got {self.crop_size}")
        if self.max_minutes is not None and not (self.max_minutes > 0 and math.isfinite(self.max_minutes)):
            raise ValueError(
                f"max_minutes (--max-minutes) must be a positive number of minutes (leave it unset for no limit), "
                f"got {self.max_minutes}"
            )
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr (--lr) must be a positive number, got {self.lr}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit (--limit) must be >= 1, got {self.limit}")
        val_limit = self.val_limit
        if val_limit is not None and (isinstance(val_limit, bool) or not isinstance(val_limit, int) or val_limit < 1):
            raise ValueError(f"val_limit must be a positive int or None, got {self.val_limit!r}")
        for name in ("precise_batch_norm", "full_resolution_crops"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.head_lr_multiplier is not None:
            if not self.head_lr_multiplier > 0:
                raise ValueError(f"head_lr_multiplier must be > 0, got {self.head_lr_multiplier!r}")
            if self.head_lr_multiplier != 1 and self.optimizer != "sgd":
                raise ValueError(
                    f"head_lr_multiplier applies to optimizer 'sgd' only, got optimizer={self.optimizer!r}"
                )

    def _fill_from_recipe(self) -> None:
        """Resolve `recipe` and give every setting left None the recipe's value."""
        if self.recipe is None:
            self.recipe = default_recipe_name(len(visible_gpus()), self.weights)
        recipe = get_recipe(self.recipe)
        if isinstance(self.spec, dict):
            self.spec = models.NetworkSpec.from_dict(self.spec)
        if self.backbone is None:
            self.backbone = self.spec.backbone if isinstance(self.spec, models.NetworkSpec) else recipe.backbone
        for name in (
            "image_size", "batch_size", "optimizer", "scale_range", "precise_batch_norm", "jaccard_weight", "full_resolution_crops"
        ):
            if getattr(self, name) is None:
                setattr(self, name, getattr(recipe, name))
        if self.lr is None:  # the recipe's rate belongs to its optimiser; another one keeps its own default
            recipe_lr = recipe.lr if self.optimizer == recipe.optimizer else None
            self.lr = recipe_lr or DEFAULT_LEARNING_RATES.get(self.optimizer)
        if self.epochs is None:
            self.epochs = DEFAULT_EPOCHS if self.max_minutes is None else UNTIL_THE_BUDGET
        self.scale_range = check_scale_range(tuple(self.scale_range))

    def _checked_spec(self) -> models.NetworkSpec:
        """The given spec (agreeing with `model`, `backbone` and, for the article model, `image_size`) or the default one."""
        spec = self.spec
        if spec is None:
            if self.model == "article":
                return models.NetworkSpec("article", input_size=self.image_size)
            return models.NetworkSpec(self.model, self.backbone)
        if not isinstance(spec, models.NetworkSpec):
            raise ValueError(f"spec must be a models.NetworkSpec, got {type(spec).__name__}")
        for name, default, value in (("model", "pspnet", spec.network), ("backbone", None, spec.backbone)):
            if getattr(self, name) not in (default, value):
                raise ValueError(f"{name}={getattr(self, name)!r} disagrees with spec ({value!r}): set only the spec")
        if spec.network == "article" and spec.input_size != self.image_size:
            raise ValueError(f"the article model's spec.input_size ({spec.input_size}) must equal image_size ({self.image_size})")
        self.model, self.backbone = spec.network, spec.backbone
        return spec

    @property
    def learning_rate(self) -> float:
        """The initial learning rate (`lr`, which `__post_init__` fills in when left None)."""
        return self.lr

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
    if models.is_color_model(model):
        return "val_loss"
    prefix = f"{model.output_names[0]}_" if len(model.outputs) > 1 else ""
    return f"val_{prefix}miou"


def compile_for_training(
    model: keras.Model, optimizer, aux_weight: float = AUX_WEIGHT, jit_compile: bool = False, jaccard_weight: float = 0.0
) -> None:
    """Compile with the right loss on every output (cross-entropy, or the colour MSE for a model that paints
    RGB), the auxiliary output weighted `aux_weight`; mIoU and pixel accuracy for class logits. The main
    output's cross-entropy gets `jaccard_weight` x the soft Jaccard loss on top; the auxiliary head's does not."""
    names = model.output_names
    if models.is_color_model(model):
        losses, metrics = {name: PaletteColorMSE() for name in names}, None
    else:
        losses = {name: segmentation_loss(jaccard_weight if name == names[0] else 0.0) for name in names}
        metrics = {names[0]: segmentation_metrics(model.outputs[0].shape[-1])}
    model.compile(
        optimizer=optimizer,
        loss=losses,
        loss_weights={names[0]: 1.0, **{name: aux_weight for name in names[1:]}},
        metrics=metrics,
        jit_compile=jit_compile,
    )
    build_training_state(model)


def build_training_state(model: keras.Model) -> None:
    """Create the compiled model's loss trackers, metrics and optimizer slots now, from one blank image.

    Keras' TensorFlow trainer leaves them to the first trace of the training step when no distribution
    strategy is set; TensorFlow then traces the step a second time without them, which doubles fit's
    start-up (about 7 s for the small PSPNet on a CPU). A strategy's own symbolic build covers that case.
    fit resets every metric at the start of each epoch, so the blank image leaves no trace in the results.
    """
    import tensorflow as tf

    if tf.distribute.has_strategy():
        return
    height, width = (size or 2 * models.MIN_INPUT_SIZE for size in model.input_shape[1:3])
    image = keras.ops.zeros((1, height, width, model.input_shape[-1]))
    predictions = model(image, training=False)
    first = predictions[0] if isinstance(predictions, (list, tuple)) else predictions
    labels = keras.ops.zeros(keras.ops.shape(first)[:3], dtype="int32")
    targets = label_per_output(model, labels)
    model.compute_loss(image, targets, predictions, training=False)
    model.compute_metrics(image, targets, predictions, sample_weight=None)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.reset_metrics()


def label_per_output(model: keras.Model, label):
    """The target of every output of `model`: `label` itself for one output, else a dict of it by output name."""
    if len(model.outputs) == 1:
        return label
    return {name: label for name in model.output_names}


def training_targets(dataset, model: keras.Model):
    """`dataset` of (image, label) with the label repeated for every output of `model` (main and auxiliary)."""
    if len(model.outputs) == 1:
        return dataset
    return dataset.map(lambda image, label: (image, label_per_output(model, label)))


def build_model(config: TrainConfig, imagenet_source: keras.Model | None = None, replicas: int = 1) -> keras.Model:
    """`models.build(config.spec)`; with several `replicas` every batch norm shares its statistics across them.

    With `imagenet_source` (a keras.applications ResNet50, see `load_pretrained_source`) its weights are
    copied into the backbone.
    """
    spec = config.spec.replace(synchronized_batch_norm=True) if replicas > 1 else config.spec
    return models.build(spec, weights=imagenet_source, image_size=config.image_size)


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
    """(train, val) tf.data pipelines of the dataset at `root`; val holds the first pairs the run validates on,
    with labels decoded as evaluation decodes them (`EVALUATION_LABELS`), training ones as training does.

    Those are `val_limit` pairs when set, else the recipe's share of an epoch (all for the paper's), at most `limit`.
    """
    common = dict(image_size=config.image_size, batch_size=config.batch_size, seed=config.seed, skip_bad=config.skip_bad)
    train_data = data.make_dataset(
        root, "train", augment=True, shuffle=True, limit=config.limit, scale_range=config.scale_range,
        crop_size=None if config.crop_size == config.image_size else config.crop_size,
        full_resolution=config.full_resolution_crops, **common
    )
    train_images = count_batches(train_data) * config.batch_size
    share_limit = get_recipe(config.recipe).validation_limit(train_images, at_least=config.batch_size)
    val_limit = config.val_limit or min((n for n in (config.limit, share_limit) if n is not None), default=None)
    val_data = data.make_dataset(  # scored as `evaluate` scores: standard labels
        root, "val", augment=False, shuffle=False, limit=val_limit, labels=EVALUATION_LABELS, **common
    )
    return train_data, val_data


def check_labels(root: Path, split: str = "train", sample: int = 16) -> None:
    """DataError when the labels of `split` are nearly all "ignore" (as `data check` reports): nothing to learn
    (or, for evaluation, nothing to score)."""
    from pspnet_lib.data.check import MIN_LABELLED_SHARE, labelled_share
    from pspnet_lib.data.pairs import evenly_spaced, pair_problem

    split_dir = data.resolve_dataset_dirs(root).split(split)
    readable = [path for path in evenly_spaced(data.list_pairs(split_dir), sample) if pair_problem(path) is None]
    if not readable:
        return  # unusable files: the data pipeline names every one
    share = labelled_share(readable)
    if share < MIN_LABELLED_SHARE:
        raise data.DataError(
            f"{split_dir}: only {share:.0%} of label pixels (of {len(readable)} files) decode to a class, expected at least "
            f"{MIN_LABELLED_SHARE:.0%}: are the right halves Cityscapes colour label maps? "
            "(`python -m pspnet_lib data check` reports every split)"
        )


def is_run_folder(run_dir: Path) -> bool:
    """True when `run_dir` was written by `train`: it holds a run's config.json (written before anything else)."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and {"model", "image_size"} <= saved.keys()


def check_backup(run_dir: Path) -> None:
    """ValueError when backup/ says epochs were trained but holds no readable weights to resume them from.

    Keras' BackupAndRestore would otherwise go on from the saved epoch with untrained weights (when the weights
    file was deleted) or fail with h5py's message and no file named (when both copies are damaged).
    """
    backup = run_dir / "backup"
    try:
        epochs = json.loads((backup / BACKUP_METADATA).read_text())["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        epochs = 0
    copies = [backup / BACKUP_WEIGHTS, backup / f"{BACKUP_WEIGHTS}.bkp"]
    present = [path for path in copies if path.is_file()]
    start_over = f"delete {backup} to start over, or choose another --out"
    if epochs and not present:
        raise ValueError(
            f"{run_dir} holds an interrupted run of {epochs} epoch(s) whose weights are gone ({copies[0]} is missing): "
            f"resuming would go on from untrained weights; {start_over}"
        )
    if present and not any(_is_hdf5(path) for path in present):
        raise ValueError(
            f"{run_dir}: the backup weights of the interrupted run are damaged "
            f"({' and '.join(str(path) for path in present)} are not HDF5 files); {start_over}"
        )


def _is_hdf5(path: Path) -> bool:
    """True when `path` starts with the HDF5 signature (a .weights.h5 file that h5py can open)."""
    with path.open("rb") as file:
        return file.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE


def check_run_dir(config: TrainConfig) -> None:
    """Refuse a run folder that is not a new or empty folder or one of `train`'s, holds a finished run, or holds
    an interrupted one with other settings or without its backup weights.

    A folder with config.json but no backup/ (a run stopped before its first epoch ended) has nothing to
    resume: it is reused with the new settings.
    """
    run_dir = config.run_dir
    if not str(config.out).strip():
        raise ValueError("--out is empty: expected a run folder (new or of an interrupted run)")
    if not is_run_folder(run_dir):
        check_writable_folder(config.out, "--out", (), "a training run")
    if (run_dir / "model.keras").is_file() and not is_resuming(config):
        raise ValueError(f"{config.out} already holds a finished run (model.keras); choose another --out folder")
    saved_path = run_dir / "config.json"
    if not (saved_path.is_file() and is_resuming(config)):
        return
    check_backup(run_dir)
    saved = json.loads(saved_path.read_text())
    current = json.loads(json.dumps(dataclasses.asdict(config)))
    changed = [name for name in RESUME_FIELDS if name in saved and saved[name] != current[name]]
    if changed:
        raise ValueError(
            f"{config.out} holds an interrupted run with different {', '.join(changed)} "
            f"({', '.join(f'{name}={saved.get(name)!r}' for name in changed)}): resume with the same settings "
            "(its config.json) or choose another --out"
        )


def train(
    config: TrainConfig, callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int | str = "auto"
) -> TrainResult:
    """Train (or resume) the run described by `config`; extra `callbacks` (e.g. a live view) run too.

    The device plan's dtype policy (mixed precision on a GPU) holds during the run only: Keras' global policy is
    restored afterwards, so later cells of a notebook build float32 models again.
    """
    check_run_dir(config)
    root = dataset_root(config)
    check_labels(root)
    imagenet_source = load_pretrained_source(config)
    plan = current_plan(DeviceSwitches(config.mixed_precision, config.xla, config.distribute))
    if plan.notice:
        print(plan.notice, file=sys.stderr)
    strategy = create_strategy(plan)
    with precision_scope(plan):
        return _fit(config, root, imagenet_source, plan, strategy, callbacks, verbose)


def _fit(config: TrainConfig, root: Path, imagenet_source, plan, strategy, callbacks, verbose) -> TrainResult:
    """Build data, model and optimiser under `strategy` and fit them; the body of `train`."""
    keras.utils.set_random_seed(config.seed)
    train_data, val_data = load_datasets(config, root)
    train_batches = count_batches(train_data)
    total_steps = train_batches * config.epochs
    write_dir = worker_dir(config, strategy)
    with strategy.scope():
        model = build_model(config, imagenet_source, strategy.num_replicas_in_sync)
        optimizer = build_optimizer(
            config.optimizer, config.learning_rate,
            # With a time budget the TimeBudget callback sets the (poly) learning rate before every step.
            None if config.max_minutes is not None else total_steps,
            new_layer_variables=models.new_layer_variables(model),
            new_layer_lr_multiplier=config.new_layer_lr_multiplier,
        )
        compile_for_training(model, optimizer, config.aux_weight, plan.jit_compile, config.jaccard_weight)
    atomic_write_text(write_dir / "config.json", json.dumps(dataclasses.asdict(config), indent=2))
    final_pass, final_pass_share = [], 0.0
    # One replica only: the eager pass is not run under a distribution strategy (the multi-GPU paper recipe
    # does not ask for it).
    if config.precise_batch_norm and strategy.num_replicas_in_sync == 1:
        scenes = min(PRECISE_BN_SCENES, train_batches * config.batch_size)
        final_pass.append(PreciseBatchNorm(scene_photos(root, "train", config.image_size, config.batch_size, scenes, config.limit)))
        final_pass_share = precise_pass_share(scenes, count_batches(val_data) * config.batch_size)
    # The clock of every run (train_minutes in history.csv); with max_minutes also its deadline and the lr schedule.
    budget = TimeBudget(
        config.max_minutes, write_dir / "history.csv",
        config.learning_rate if config.max_minutes is not None else None, total_steps,
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
        epochs=config.epochs,
        shuffle=False,  # the training pipeline shuffles, reproducibly from the seed
        callbacks=[budget, *final_pass, *run_list, *callbacks],
        verbose=verbose,
    )
    history = read_history(write_dir / "history.csv")
    if write_dir != config.run_dir:
        shutil.rmtree(write_dir, ignore_errors=True)
    return TrainResult(config.run_dir, model, history, budget.stopped, is_chief(strategy))
