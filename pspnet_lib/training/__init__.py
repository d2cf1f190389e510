"""Training: recipes, loss, optimiser, device plan (mixed precision, XLA, distribution), callbacks and `train`.

Submodules, one concept each: `recipes` (every setting), `config` (a run's settings, resolved once), `losses`,
`optimizers`, `devices`, `batch_size`, `callbacks`, `run_folder`, `inputs` (the run's data), `model_setup`, `run`. The names a notebook
or the command line needs are re-exported here.
"""

from pspnet_lib.training.batch_size import (
    BatchChoice,
    choose_batch_size,
    explain_out_of_memory,
    fit_batch_to_gpu,
)
from pspnet_lib.training.callbacks import (
    BestCheckpoint,
    CsvHistory,
    NanGuard,
    PreciseBatchNorm,
    SaveFinalModel,
    TimeBudget,
    TrainingDiverged,
    atomic_save_model,
    atomic_write_text,
    read_history,
    recompute_batch_norm_statistics,
    run_callbacks,
)
from pspnet_lib.training.config import TrainConfig, configure
from pspnet_lib.training.devices import (
    DevicePlan,
    DeviceSwitches,
    GpuInfo,
    apply_precision,
    create_strategy,
    current_plan,
    plan_devices,
    visible_gpus,
)
from pspnet_lib.training.losses import (
    AUX_WEIGHT,
    CrossEntropyJaccard,
    PaletteColorMSE,
    PaletteColourMSE,
    segmentation_loss,
    soft_jaccard_loss,
)
from pspnet_lib.training.model_setup import (
    PretrainedWeightsUnavailable,
    build_model,
    compile_for_training,
    monitor_name,
    training_targets,
)
from pspnet_lib.training.optimizers import PaperSGD, build_optimizer, poly_schedule
from pspnet_lib.training.recipes import RECIPES, Recipe, default_recipe_name, get_recipe
from pspnet_lib.training.run import TrainResult, train

__all__ = [
    "AUX_WEIGHT", "BatchChoice", "BestCheckpoint", "CrossEntropyJaccard", "CsvHistory", "DevicePlan", "DeviceSwitches", "GpuInfo",
    "NanGuard", "PaperSGD", "PreciseBatchNorm", "PaletteColorMSE", "PaletteColourMSE", "PretrainedWeightsUnavailable", "RECIPES", "Recipe", "SaveFinalModel", "TimeBudget", "TrainConfig",
    "TrainResult", "TrainingDiverged", "apply_precision", "atomic_save_model", "atomic_write_text",
    "build_model", "build_optimizer", "choose_batch_size", "compile_for_training", "configure", "create_strategy", "current_plan", "default_recipe_name",
    "explain_out_of_memory", "fit_batch_to_gpu", "get_recipe",
    "monitor_name", "plan_devices", "poly_schedule", "read_history", "recompute_batch_norm_statistics", "run_callbacks",
    "segmentation_loss", "soft_jaccard_loss", "train", "training_targets", "visible_gpus",
]
