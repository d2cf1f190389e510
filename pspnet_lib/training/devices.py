"""Where and how to train: GPUs, mixed precision, XLA and distribution, decided by one pure function.

`plan_devices` looks only at its arguments (the visible GPUs with their compute capabilities, the user's
switches and the TF_CONFIG text), so every branch is testable on a CPU. `visible_gpus`, `apply_precision`
and `create_strategy` are the thin TensorFlow ends around it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# bfloat16 runs at full speed from Ampere (compute capability 8.0) on; older GPUs need float16 with loss scaling.
# XLA counts as a GPU option: on this kind of CPU it trained the small PSPNet ~4x slower than without.
BFLOAT16_MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class GpuInfo:
    """One visible GPU: its name and CUDA compute capability (None when TensorFlow does not report it)."""

    name: str
    compute_capability: tuple[int, int] | None = None


@dataclass(frozen=True)
class DeviceSwitches:
    """The user's choices; None means automatic (on when a GPU is visible), False turns a feature off."""

    mixed_precision: bool | None = None
    xla: bool | None = None
    distribute: bool | None = None


@dataclass(frozen=True)
class DevicePlan:
    """What training will use: a strategy kind, a Keras dtype policy, XLA or not, and a notice to print."""

    strategy: str  # "default", "mirrored" or "multi_worker"
    precision: str  # "float32", "mixed_bfloat16" or "mixed_float16"
    jit_compile: bool
    notice: str | None = None


def cluster_size(tf_config: str | None) -> int:
    """Number of workers (chief included) described by a TF_CONFIG JSON text; 0 when unset."""
    if not tf_config or not tf_config.strip():
        return 0
    try:
        cluster = json.loads(tf_config).get("cluster", {})
        return sum(len(cluster.get(role, [])) for role in ("chief", "worker"))
    except (json.JSONDecodeError, AttributeError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is not valid JSON with a 'cluster' of workers: {error}") from error


def _gpu_precision(gpus: Sequence[GpuInfo]) -> str:
    """mixed_bfloat16 when every GPU is Ampere or newer, else mixed_float16."""
    capable = all(gpu.compute_capability and gpu.compute_capability >= BFLOAT16_MIN_CAPABILITY for gpu in gpus)
    return "mixed_bfloat16" if capable else "mixed_float16"


def _strategy_kind(gpu_count: int, workers: int, distribute: bool | None) -> str:
    """multi_worker for a TF_CONFIG cluster, mirrored for several local GPUs, else default."""
    if distribute is False:
        return "default"
    if workers > 1:
        return "multi_worker"
    return "mirrored" if gpu_count > 1 else "default"


def _cpu_notice(mixed_precision: bool, xla: bool, gpu_distribution: bool) -> str | None:
    """One line when GPU-only options were asked for on a machine without a GPU."""
    options = (("mixed precision", mixed_precision), ("XLA", xla), ("multi-GPU distribution", gpu_distribution))
    asked = [name for name, wanted in options if wanted]
    if not asked:
        return None
    return f"No GPU visible: ignoring {', '.join(asked)}; training on the CPU in float32 without XLA."


def plan_devices(
    gpus: Sequence[GpuInfo], switches: DeviceSwitches = DeviceSwitches(), tf_config: str | None = None
) -> DevicePlan:
    """The device plan for these GPUs, user switches and TF_CONFIG (pure: reads nothing else)."""
    workers = cluster_size(tf_config)
    strategy = _strategy_kind(len(gpus), workers, switches.distribute)
    if not gpus:
        notice = _cpu_notice(
            switches.mixed_precision is True, switches.xla is True, switches.distribute is True and workers < 2
        )
        return DevicePlan(strategy, "float32", jit_compile=False, notice=notice)
    precision = "float32" if switches.mixed_precision is False else _gpu_precision(gpus)
    return DevicePlan(strategy, precision, jit_compile=switches.xla is not False)


def visible_gpus() -> list[GpuInfo]:
    """The GPUs TensorFlow can see, with their compute capabilities."""
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append(GpuInfo(details.get("device_name", device.name), details.get("compute_capability")))
    return gpus


def current_plan(switches: DeviceSwitches = DeviceSwitches()) -> DevicePlan:
    """`plan_devices` for this machine: its visible GPUs and the TF_CONFIG environment variable."""
    return plan_devices(visible_gpus(), switches, os.environ.get("TF_CONFIG"))


def apply_precision(plan: DevicePlan) -> None:
    """Set the global Keras dtype policy the plan asks for (float16 gets loss scaling at compile time)."""
    import keras

    keras.mixed_precision.set_global_policy(plan.precision)


@contextlib.contextmanager
def precision_scope(plan: DevicePlan) -> Iterator[None]:
    """`apply_precision(plan)` for the `with` block only: the previous global dtype policy comes back after it."""
    import keras

    previous = keras.mixed_precision.global_policy()
    apply_precision(plan)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def create_strategy(plan: DevicePlan):
    """The tf.distribute strategy of the plan (MultiWorkerMirroredStrategy reads TF_CONFIG itself)."""
    import tensorflow as tf

    if plan.strategy == "multi_worker":
        return _nest_reducing(tf.distribute.MultiWorkerMirroredStrategy)()
    if plan.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _nest_reducing(strategy_class: type) -> type:
    """`strategy_class` with a `reduce` that Keras 3 `fit` can use across several workers.

    Keras reduces a whole (x, y) batch with one `strategy.reduce` call, and per-replica scalars (loss,
    metrics) with `axis=0` or no axis at all; TensorFlow's multi-worker reduce takes one value at a time,
    needs `axis`, and rejects axis 0 on scalars (keras-team/keras#20585). This `reduce` goes leaf by leaf,
    with `axis` optional and ignored for scalars.
    """

    class NestReducingStrategy(strategy_class):
        def reduce(self, reduce_op, value, axis=None):
            """Reduce every leaf of `value` separately (scalars over replicas only)."""
            import tensorflow as tf

            def reduce_leaf(leaf):
                rank = self.experimental_local_results(leaf)[0].shape.rank
                return super(NestReducingStrategy, self).reduce(reduce_op, leaf, None if rank == 0 else axis)

            return tf.nest.map_structure(reduce_leaf, value)

    NestReducingStrategy.__name__ = f"NestReducing{strategy_class.__name__}"
    return NestReducingStrategy
