"""The GPU run's batch size on faked free-tier and cloud GPUs, and out-of-memory errors as one line."""

from __future__ import annotations

import pytest

from pspnet_lib import runtime, training
from pspnet_lib.training import batch_size
from pspnet_lib.training.devices import GpuInfo

# Device descriptions as TensorFlow reports them (get_device_details: device_name, compute_capability).
T4 = GpuInfo("Tesla T4", (7, 5))
P100 = GpuInfo("Tesla P100-PCIE-16GB", (6, 0))
L4 = GpuInfo("NVIDIA L4", (8, 9))
A100_40 = GpuInfo("NVIDIA A100-SXM4-40GB", (8, 0))
A100_80 = GpuInfo("NVIDIA A100-SXM4-80GB", (8, 0))
H100 = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))


@pytest.mark.parametrize(
    ("gpu", "memory"), [(T4, 16), (P100, 16), (L4, 24), (A100_40, 40), (A100_80, 80), (H100, 80)]
)
def test_memory_comes_from_the_name_or_the_model(gpu, memory):
    assert batch_size.gpu_memory_gb(gpu) == memory


def test_an_unknown_card_has_no_memory():
    assert batch_size.gpu_memory_gb(GpuInfo("Radeon Instinct MI50", None)) is None


@pytest.mark.parametrize("gpu", [T4, P100, L4, A100_40, A100_80, H100])
def test_the_recipes_16_images_of_256_px_fit_every_listed_card(gpu):
    choice = batch_size.choose_batch_size([gpu], recipe_batch=16, crop_size=256)
    assert choice.batch_size == 16
    precision = "mixed_float16" if gpu.compute_capability < (8, 0) else "mixed_bfloat16"
    assert choice.reason.startswith(f"{gpu.name}: the recipe's batch size 16 fits (about 0.36 GB per 256x256 crop")
    assert precision in choice.reason and f"of its {batch_size.gpu_memory_gb(gpu):g} GB usable" in choice.reason


@pytest.mark.parametrize(
    ("gpu", "expected"), [(T4, 8), (P100, 8), (L4, 8), (A100_40, 16), (A100_80, 16), (H100, 16)]
)
def test_larger_crops_shrink_the_batch_on_smaller_cards(gpu, expected):
    """512 px crops: about 1.44 GB per image in mixed precision."""
    choice = batch_size.choose_batch_size([gpu], recipe_batch=16, crop_size=512)
    assert choice.batch_size == expected
    if expected < 16:
        assert f"{gpu.name}: batch size {expected} instead of the recipe's 16" in choice.reason


def test_float32_needs_more_memory_than_mixed_precision():
    mixed = batch_size.choose_batch_size([T4], recipe_batch=64, crop_size=512)
    full = batch_size.choose_batch_size([T4], recipe_batch=64, crop_size=512, precision="float32")
    assert (mixed.batch_size, full.batch_size) == (8, 4)
    assert "float32" in full.reason


def test_several_gpus_share_the_batch_and_the_smallest_card_decides():
    choice = batch_size.choose_batch_size([T4, T4], recipe_batch=32, crop_size=512)
    assert choice.batch_size == 16 and choice.reason.startswith("2x Tesla T4: batch size 16 instead of the recipe's 32")


def test_no_gpu_or_an_unknown_one_keeps_the_recipes_batch():
    assert batch_size.choose_batch_size([], 16, 256) == training.BatchChoice(
        16, "No GPU visible: the GPU run keeps the recipe's batch size 16."
    )
    unknown = batch_size.choose_batch_size([GpuInfo("Mystery GPU", (8, 0))], 16, 256)
    assert unknown.batch_size == 16 and unknown.reason.startswith("Mystery GPU: memory unknown")


def test_a_bad_recipe_batch_is_named():
    with pytest.raises(ValueError, match="recipe_batch must be a positive number of images, got 0"):
        batch_size.choose_batch_size([T4], 0, 256)


def test_fit_batch_to_gpu_replaces_only_the_batch_size(synthetic_pairs, tmp_path, capsys):
    config = training.configure(out=str(tmp_path / "run"), data=str(synthetic_pairs), recipe="cpu", batch_size=64,
                                  crop_size=512, image_size=512)
    fitted = training.fit_batch_to_gpu(config, gpus=[L4])
    assert fitted.recipe.batch_size == 8 and config.recipe.batch_size == 64
    assert fitted.recipe == config.recipe.override(batch_size=8) and fitted.out == config.out
    assert capsys.readouterr().out.startswith("NVIDIA L4: batch size 8 instead of the recipe's 64")
    assert training.fit_batch_to_gpu(config, gpus=[]) is config


class ResourceExhaustedError(Exception):
    """Stands in for tf.errors.ResourceExhaustedError (matched by name, as TensorFlow's is)."""


def test_out_of_memory_becomes_one_line_naming_a_smaller_batch():
    with pytest.raises(runtime.StopNotebook) as stopped:
        with training.explain_out_of_memory(16, 'GPU_RUN["batch_size"]'):
            raise ResourceExhaustedError("OOM when allocating tensor with shape[16,512,32,32]\n  [[node conv]]")
    message = str(stopped.value)
    assert "\n" not in message and stopped.value.__cause__ is None and stopped.value.__suppress_context__
    assert message.startswith('The GPU ran out of memory at batch size 16: set GPU_RUN["batch_size"] = 8')
    assert stopped.value._render_traceback_() == [f"Stopped: {message}"]


def test_other_errors_pass_through_unchanged():
    with pytest.raises(KeyError, match="logits"):
        with training.explain_out_of_memory(16):
            raise KeyError("logits")
    with pytest.raises(runtime.StopNotebook, match="one image per batch"):
        with training.explain_out_of_memory(1):
            raise RuntimeError("CUDA_ERROR_OUT_OF_MEMORY: out of memory")
