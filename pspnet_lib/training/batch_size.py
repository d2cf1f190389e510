"""A batch size that fits the GPU found (free-tier T4/P100 16 GB, L4 24 GB, A100 40/80 GB, H100 80 GB), and an
out-of-memory error turned into one line naming a smaller one.

`choose_batch_size` is pure (GPU descriptions in, a choice and its reason out), so every card is testable on a
CPU. The memory model is an estimate, deliberately on the safe side: hszhao/semseg trains PSPNet50 at 713x713 with
2 images per 12 GB GPU in float32, about 5 GB per image, i.e. about 10 GB of activations per megapixel of crop;
mixed precision keeps most activations in 16 bits (a little over half of that). On top come the weights, their
gradients and SGD momentum and cuDNN's workspace (FIXED_GB), and only USABLE_FRACTION of the card is counted.
The recipe's batch size is never exceeded (its learning rate is tuned for it): smaller cards get the largest
power of two that fits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pspnet_lib.runtime import StopNotebook
from pspnet_lib.training.devices import GpuInfo, plan_devices, visible_gpus

if TYPE_CHECKING:
    from pspnet_lib.training.config import TrainConfig

# Cards whose name does not state their memory ("Tesla T4", "NVIDIA L4"); "A100-SXM4-80GB" and "H100 80GB HBM3" do.
GPU_MEMORY_GB = {"H100": 80.0, "A100": 40.0, "L4": 24.0, "A10G": 24.0, "V100": 16.0, "P100": 16.0, "T4": 16.0}
MEMORY_IN_NAME = re.compile(r"(\d+)\s*GB", re.IGNORECASE)
GB_PER_MEGAPIXEL = {"float32": 10.0, "mixed_float16": 5.5, "mixed_bfloat16": 5.5}
FIXED_GB = 2.0
USABLE_FRACTION = 0.9
OUT_OF_MEMORY_SIGNS = ("ResourceExhaustedError", "OOM when allocating", "out of memory")


@dataclass(frozen=True)
class BatchChoice:
    """The batch size chosen and one sentence saying which GPU it fits and why."""

    batch_size: int
    reason: str


def gpu_memory_gb(gpu: GpuInfo) -> float | None:
    """The card's memory in GB: from its name ("...-80GB"), else from its model (GPU_MEMORY_GB), else None."""
    stated = MEMORY_IN_NAME.search(gpu.name)
    if stated:
        return float(stated.group(1))
    words = re.split(r"[\s\-_]+", gpu.name.upper())
    return next((memory for model, memory in GPU_MEMORY_GB.items() if model in words), None)


def gb_per_image(crop_size: int, precision: str) -> float:
    """Estimated training memory of one crop_size x crop_size image at this precision (activations and grads)."""
    return GB_PER_MEGAPIXEL[precision] * crop_size * crop_size / 1e6


def choose_batch_size(gpus: Sequence[GpuInfo], recipe_batch: int, crop_size: int, precision: str | None = None) -> BatchChoice:
    """The recipe's batch size when it fits every GPU (split evenly across them), else the largest power of two
    that does; the recipe's when no GPU is visible or its memory is unknown. `precision`: the device plan's."""
    if recipe_batch < 1:
        raise ValueError(f"recipe_batch must be a positive number of images, got {recipe_batch}")
    if not gpus:
        return BatchChoice(recipe_batch, f"No GPU visible: the GPU run keeps the recipe's batch size {recipe_batch}.")
    precision = precision or plan_devices(gpus).precision
    memories = [gpu_memory_gb(gpu) for gpu in gpus]
    if None in memories:
        unknown = gpus[memories.index(None)].name
        return BatchChoice(
            recipe_batch,
            f"{unknown}: memory unknown, keeping the recipe's batch size {recipe_batch} (if it runs out of memory, "
            "the error names a smaller one).",
        )
    smallest = min(memories)
    usable = USABLE_FRACTION * smallest - FIXED_GB
    per_image = gb_per_image(crop_size, precision)
    per_gpu = max(1, int(usable // per_image))
    fits = per_gpu * len(gpus)
    batch = recipe_batch if fits >= recipe_batch else max(len(gpus), 2 ** (fits.bit_length() - 1))
    card = f"{len(gpus)}x {gpus[0].name}" if len(gpus) > 1 else gpus[0].name
    why = (
        f"about {per_image:.2f} GB per {crop_size}x{crop_size} crop in {precision}, {usable:.1f} of its "
        f"{smallest:g} GB usable"
    )
    if batch == recipe_batch:
        return BatchChoice(batch, f"{card}: the recipe's batch size {batch} fits ({why}: up to {fits} images).")
    return BatchChoice(batch, f"{card}: batch size {batch} instead of the recipe's {recipe_batch} ({why}).")


def fit_batch_to_gpu(config: TrainConfig, gpus: Sequence[GpuInfo] | None = None) -> TrainConfig:
    """`config` with the batch size `choose_batch_size` picks for these GPUs (default: the visible ones); prints why."""
    gpus = visible_gpus() if gpus is None else gpus
    precision = None if config.devices.mixed_precision is not False or not gpus else "float32"
    choice = choose_batch_size(gpus, config.recipe.batch_size, config.recipe.crop_size, precision)
    print(choice.reason)
    if choice.batch_size == config.recipe.batch_size:
        return config
    return dataclasses.replace(config, recipe=config.recipe.override(batch_size=choice.batch_size))


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is TensorFlow running out of GPU memory (ResourceExhaustedError, "OOM when allocating")."""
    text = f"{type(error).__name__} {(str(error).splitlines() or [''])[0]}"
    return any(sign in text for sign in OUT_OF_MEMORY_SIGNS)


@contextlib.contextmanager
def explain_out_of_memory(batch_size: int, setting: str = "batch_size") -> Iterator[None]:
    """Turn an out-of-memory error in the block into one line naming a smaller batch size for `setting`."""
    try:
        yield
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        if batch_size <= 1:
            raise StopNotebook(
                "The GPU ran out of memory with one image per batch: use smaller crops or a smaller backbone."
            ) from None
        raise StopNotebook(
            f"The GPU ran out of memory at batch size {batch_size}: set {setting} = {batch_size // 2} and run this "
            "cell again (a run folder with a backup resumes where it stopped)."
        ) from None
