"""Training-step and inference speed of the PSPNets, achieved GFLOP/s, and the machine's float32 matmul peak."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from bench.results import Row
from bench.timing import items_per_second

TRAINING_FLOPS_PER_FORWARD = 3  # forward + backward (about twice the forward) per training step


@dataclass(frozen=True)
class ThroughputCase:
    """One configuration to time: backbone, square image size, batch, XLA, precision policy and step counts."""

    backbone: str
    image_size: int
    batch_size: int
    xla: bool
    precision: str = "float32"
    steps: int = 3
    warmup: int = 1

    def label(self) -> str:
        """The row name of the case, e.g. `small 128px XLA off float32`."""
        return f"{self.backbone} {self.image_size}px XLA {'on' if self.xla else 'off'} {self.precision}"


def flops_from_multiply_adds(multiply_adds: int, training: bool) -> int:
    """FLOPs of one image: 2 per multiply-add, times 3 for a training step (forward + backward)."""
    return 2 * multiply_adds * (TRAINING_FLOPS_PER_FORWARD if training else 1)


def gflops_per_second(images_per_second: float, flops_per_image: int) -> float:
    """Achieved GFLOP/s at `images_per_second`."""
    return images_per_second * flops_per_image / 1e9


def throughput_cases(
    backbones: tuple[str, ...], sizes: tuple[int, ...], precisions: tuple[str, ...], quick: bool
) -> list[ThroughputCase]:
    """Every backbone x size x XLA off/on x precision; ResNet-50 with batch 2 and few steps."""
    cases = []
    for backbone in backbones:
        batch, steps = (2, 2) if backbone == "resnet50" else (8, 5)
        if quick:
            batch, steps = 1, 1
        for size in sizes:
            for precision in precisions:
                for xla in (False, True):
                    cases.append(ThroughputCase(backbone, size, batch, xla, precision, steps))
    return cases


def matmul_peak_gflops(size: int = 2048, repeats: int = 10, trials: int = 3) -> float:
    """Best float32 GFLOP/s of a chain of `repeats` (size x size) tf.matmul calls, over `trials` runs."""
    import tensorflow as tf

    start_matrix = tf.random.uniform((size, size), dtype=tf.float32)
    factor = tf.random.uniform((size, size), dtype=tf.float32) / size  # keeps the chained values bounded

    @tf.function
    def chain() -> tf.Tensor:
        product = start_matrix
        for _ in range(repeats):  # each product feeds the next, so no two calls can be merged or skipped
            product = tf.linalg.matmul(product, factor)
        return product

    chain().numpy()  # trace and warm up
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        chain().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


def case_spec(backbone: str, image_size: int):
    """The network every throughput row times: the paper's PSPNet on `backbone` at `image_size` squares."""
    from pspnet_lib.models import NetworkSpec

    return NetworkSpec("pspnet", backbone, input_size=image_size)


def build_case_model(case: ThroughputCase):
    """A freshly compiled PSPNet for `case` (SGD, the library's losses, XLA as asked) under its precision."""
    import keras

    from pspnet_lib import models
    from pspnet_lib.training import build_optimizer, compile_for_training

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(case.precision)
    model = models.build(case_spec(case.backbone, case.image_size))
    compile_for_training(model, build_optimizer("sgd", total_steps=1000), jit_compile=case.xla)
    return model


def random_batch(case: ThroughputCase, output_names: list[str], seed: int = 0):
    """Random images in [0, 1] and random labels 0..18 for every output of the model."""
    rng = np.random.default_rng(seed)
    shape = (case.batch_size, case.image_size, case.image_size)
    images = rng.random((*shape, 3), dtype=np.float32)
    labels = rng.integers(0, 19, shape).astype(np.int32)
    return images, {name: labels for name in output_names}


def measure_case(case: ThroughputCase) -> tuple[float, float]:
    """(training images/s, inference images/s) of one case."""
    import keras

    try:
        model = build_case_model(case)
        images, targets = random_batch(case, list(model.output_names))

        def train_step() -> int:
            model.train_on_batch(images, targets)
            return case.batch_size

        def predict_step() -> int:
            model.predict_on_batch(images)
            return case.batch_size

        return (
            items_per_second(train_step, case.warmup, case.steps),
            items_per_second(predict_step, case.warmup, case.steps),
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


def case_rows(case: ThroughputCase, multiply_adds: int, peak_gflops: float) -> list[Row]:
    """Training and inference rows of one case, with GFLOP/s and the fraction of the matmul peak."""
    try:
        rates = measure_case(case)
    except Exception as error:  # noqa: BLE001 - an XLA or memory failure is a result to report, not a crash
        reason = f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
        return [
            Row("training", f"{kind} {case.label()}", None, "images/s", reason)
            for kind in ("train step", "inference")
        ]
    rows = []
    for kind, rate, training in (("train step", rates[0], True), ("inference", rates[1], False)):
        achieved = gflops_per_second(rate, flops_from_multiply_adds(multiply_adds, training))
        detail = (
            f"batch {case.batch_size}, {case.steps} steps; {achieved:.1f} GFLOP/s = "
            f"{achieved / peak_gflops:.0%} of matmul peak"
        )
        extra = {
            "gflops_per_second": achieved,
            "fraction_of_peak": achieved / peak_gflops,
            "forward_multiply_adds": multiply_adds,
            **asdict(case),
        }
        rows.append(Row("training", f"{kind} {case.label()}", rate, "images/s", detail, extra=extra))
    return rows


def forward_multiply_adds(backbone: str, image_size: int) -> int:
    """`count_flops` (multiply-adds of one forward pass) of the PSPNet at `image_size`."""
    import keras

    from pspnet_lib import models

    keras.backend.clear_session()
    model = models.build(case_spec(backbone, image_size))
    return models.count_flops(model, (image_size, image_size, 3))


def training_rows(cases: list[ThroughputCase], matmul_size: int = 2048) -> list[Row]:
    """The matmul peak row, then training and inference rows of every case."""
    peak = matmul_peak_gflops(matmul_size)
    rows = [
        Row(
            "training",
            "float32 matmul peak (tf.matmul loop)",
            peak,
            "GFLOP/s",
            f"{matmul_size}x{matmul_size}",
        )
    ]
    multiply_adds = {}
    for case in cases:
        key = (case.backbone, case.image_size)
        if key not in multiply_adds:
            multiply_adds[key] = forward_multiply_adds(*key)
        rows.extend(case_rows(case, multiply_adds[key], peak))
    return rows
