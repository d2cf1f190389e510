"""Building blocks of dilated segmentation networks: residual blocks, pyramid pooling, resizing, receptive fields.

Every layer here is registered with Keras (package ``pspnet_lib``), so a model using them saves and loads as
``.keras`` once this module is imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

SERIALIZATION_PACKAGE = "pspnet_lib"
BATCH_NORM_EPSILON = (
    1.001e-5  # keras.applications.ResNet50 uses this epsilon; keep it so its weights transfer
)
# Moving-statistics momentum of every BatchNormalization built here. Keras' default of 0.99 needs many hundreds
# of steps before inference-mode predictions are usable; 0.9 is PyTorch's default (momentum=0.1 in its
# convention, new = 0.9 * old + 0.1 * batch), which the paper author's hszhao/semseg PSPNet trains with.
DEFAULT_BATCH_NORM_MOMENTUM = 0.9
BLOCK_FORMS = ("bottleneck", "basic")
POOLING_TYPES = ("avg", "max")
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)  # caffe-style ImageNet means, in BGR order, on a 0..255 scale
DEFAULT_PROBE_SIZE = 64


def effective_kernel_size(kernel_size: int, dilation: int) -> int:
    """Span in pixels of a kernel of `kernel_size` taps spaced `dilation` apart: d * (k - 1) + 1."""
    _check_positive("kernel_size", kernel_size)
    _check_positive("dilation", dilation)
    return dilation * (kernel_size - 1) + 1


def receptive_field(kernel_sizes: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> int:
    """Receptive field (pixels per side) of a stack of convolutions/poolings, exact: r += (k_eff - 1) * jump."""
    if not len(kernel_sizes) == len(strides) == len(dilations):
        raise ValueError(
            f"kernel_sizes, strides and dilations must have one entry per layer, got lengths "
            f"{len(kernel_sizes)}, {len(strides)} and {len(dilations)}"
        )
    field, jump = 1, 1
    for kernel_size, stride, dilation in zip(kernel_sizes, strides, dilations, strict=True):
        _check_positive("stride", stride)
        field += (effective_kernel_size(kernel_size, dilation) - 1) * jump
        jump *= stride
    return field


def empirical_receptive_field(
    model: keras.Model, input_size: int | None = None, seed: int = 0
) -> tuple[int, int]:
    """Height and width of the input region that moves the centre output pixel (non-zero gradient extent).

    The probe image is the model's fixed input size, else `input_size` x `input_size` (default 64). Activations
    such as ReLU can hide part of the theoretical field (a dead unit passes no gradient), so this measures what
    the network actually uses. Raises ValueError when the field reaches the probe's border (it would be clipped).
    """
    height, width = _probe_size(model, input_size)
    sensitive = _input_sensitivity(model, height, width, seed)
    rows, cols = np.nonzero(sensitive.any(axis=1))[0], np.nonzero(sensitive.any(axis=0))[0]
    if rows.size == 0:
        raise ValueError(
            "the centre output pixel does not depend on the input: no receptive field to measure"
        )
    if rows[0] == 0 or cols[0] == 0 or rows[-1] == height - 1 or cols[-1] == width - 1:
        raise ValueError(
            f"the receptive field reaches the border of the {height}x{width} probe image: increase input_size "
            "(or the model's input shape)"
        )
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _probe_size(model: keras.Model, input_size: int | None) -> tuple[int, int]:
    """The model's fixed input height and width, else `input_size` (default 64) on both sides."""
    fixed = tuple(model.input_shape[1:3])
    if None not in fixed:
        if input_size is not None and (input_size, input_size) != fixed:
            raise ValueError(f"input_size={input_size} does not match the model's fixed input size {fixed}")
        return fixed
    return (input_size or DEFAULT_PROBE_SIZE,) * 2


def _input_sensitivity(model: keras.Model, height: int, width: int, seed: int) -> np.ndarray:
    """(height, width) mask of the input pixels with a non-zero gradient on the centre output pixel.

    Traced as a graph so that only the input's gradient is computed: run eagerly, TensorFlow also computes
    every convolution's filter gradient, and its CPU kernel for that (Conv2DBackpropFilter) was seen to
    corrupt memory on some whole-network probes.
    """
    image = tf.random.stateless_uniform((1, height, width, model.input_shape[-1]), seed=(seed, 0))

    @tf.function
    def input_gradient(image: tf.Tensor) -> tf.Tensor:
        """d(sum of the centre output pixel) / d(image), weights held constant."""
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(image)
            output = tf.nest.flatten(model(image, training=False))[0]
            centre = tf.reduce_sum(output[0, output.shape[1] // 2, output.shape[2] // 2])
        return tape.gradient(centre, image)

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # one trace per probe is intended: no "triggered tf.function retracing" warning
    try:
        gradient = input_gradient(image)
    finally:
        logger.setLevel(level)
    return np.abs(gradient.numpy()[0]).sum(axis=-1) > 0


def adaptive_bin_edges(length, bins: int) -> list[tuple]:
    """(start, end) of each of `bins` windows over `length` cells: bin i spans floor(i*L/b) to ceil((i+1)*L/b).

    `length` may be a Python int or a scalar integer tensor (a dynamic height or width).
    """
    return [((i * length) // bins, -((-(i + 1) * length) // bins)) for i in range(bins)]


def adaptive_pool_2d(images: tf.Tensor, bins: int, pooling: str = "avg") -> tf.Tensor:
    """Pool (B, H, W, C) to (B, bins, bins, C) with the paper's/PyTorch's adaptive windows, for any H and W.

    Unlike keras.layers.AdaptiveAveragePooling2D it works when H and W are only known at run time, which a
    model with input shape (None, None, 3) needs; it is differentiable for both "avg" and "max".
    """
    reduce = _pooling_reduction(pooling)
    return _pool_along_axis(_pool_along_axis(images, bins, 1, reduce), bins, 2, reduce)


def _pool_along_axis(images: tf.Tensor, bins: int, axis: int, reduce) -> tf.Tensor:
    """Reduce `axis` of `images` to `bins` cells over the adaptive windows along that axis."""
    leading = (slice(None),) * axis
    cells = [
        reduce(images[leading + (slice(start, end),)], axis=axis, keepdims=True)
        for start, end in adaptive_bin_edges(tf.shape(images)[axis], bins)
    ]
    return tf.concat(cells, axis=axis)


def _pooling_reduction(pooling: str):
    """tf reduction for a pooling type name ("avg" or "max")."""
    if pooling not in POOLING_TYPES:
        raise ValueError(f"pooling must be one of {POOLING_TYPES}, got {pooling!r}")
    return tf.reduce_mean if pooling == "avg" else tf.reduce_max


def resize_bilinear(images: tf.Tensor, size) -> tf.Tensor:
    """Bilinear resize of (B, H, W, C) to `size` (static or dynamic), keeping the dtype of `images`."""
    return tf.cast(tf.image.resize(images, size, method="bilinear"), images.dtype)


def check_bins(bins: Sequence[int]) -> tuple[int, ...]:
    """`bins` as a tuple, or ValueError unless it is a non-empty sequence of positive integers."""
    if isinstance(bins, int | str) or len(bins) == 0:
        raise ValueError(
            f"bins must be a non-empty sequence of positive integers, e.g. (1, 2, 3, 6), got {bins!r}"
        )
    for size in bins:
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise ValueError(f"bins must contain positive integers, got {bins!r}")
    return tuple(int(size) for size in bins)


def batch_normalization(
    name: str, momentum: float = DEFAULT_BATCH_NORM_MOMENTUM, synchronized: bool = False
) -> keras.layers.BatchNormalization:
    """BatchNormalization with the ResNet-50 epsilon, `momentum` and (multi-replica runs) `synchronized` statistics."""
    check_batch_norm_momentum(momentum)
    return keras.layers.BatchNormalization(
        momentum=momentum, epsilon=BATCH_NORM_EPSILON, synchronized=bool(synchronized), name=name
    )


def check_batch_norm_momentum(momentum: float) -> float:
    """`momentum` as a float, or ValueError unless 0 <= momentum < 1."""
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0.0 <= momentum < 1.0:
        raise ValueError(f"batch_norm_momentum must be a number in [0, 1), got {momentum!r}")
    return float(momentum)


def _check_positive(name: str, value: int) -> None:
    """ValueError unless `value` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _build_in_sequence(layers: Sequence[keras.layers.Layer], input_shape: tuple) -> tuple:
    """Build each layer on the previous one's output shape; return the last output shape."""
    shape = input_shape
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


def _output_shape_in_sequence(layers: Sequence[keras.layers.Layer], input_shape: tuple) -> tuple:
    """Output shape of `layers` applied one after another."""
    shape = input_shape
    for layer in layers:
        shape = layer.compute_output_shape(shape)
    return shape


def _call_in_sequence(layers: Sequence[keras.layers.Layer], inputs, training=None):
    """Apply `layers` one after another."""
    outputs = inputs
    for layer in layers:
        outputs = layer(outputs, training=training)
    return outputs


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class DilatedResidualBlock(keras.layers.Layer):
    """ResNet v1 residual block whose 3x3 convolutions are dilated: "bottleneck" (1x1-3x3-1x1) or "basic" (3x3-3x3).

    The bottleneck form puts the stride on its first 1x1 convolution as keras.applications.ResNet50 does, and
    names its sub-layers like that model (``<name>_1_conv``, ``<name>_0_bn``, ...) so ImageNet weights map onto
    it by name. `projection` adds the 1x1 convolution + BN shortcut a change of stride or width needs.
    Its BNs use `batch_norm_momentum` (default 0.9, PyTorch's 0.1) and, for multi-replica training,
    `synchronized_batch_norm` (statistics over all replicas' batches).
    """

    def __init__(
        self,
        filters: int,
        form: str = "bottleneck",
        stride: int = 1,
        dilation: int = 1,
        projection: bool = False,
        expansion: int | None = None,
        use_bias: bool = False,
        batch_norm_momentum: float = DEFAULT_BATCH_NORM_MOMENTUM,
        synchronized_batch_norm: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if form not in BLOCK_FORMS:
            raise ValueError(f"form must be one of {BLOCK_FORMS}, got {form!r}")
        for name, value in (("filters", filters), ("stride", stride), ("dilation", dilation)):
            _check_positive(name, value)
        if form == "basic" and stride > 1 and dilation > 1:
            raise ValueError(
                "a basic block cannot have both stride > 1 and dilation > 1 (strided dilated 3x3)"
            )
        self.filters, self.form, self.stride, self.dilation = filters, form, stride, dilation
        self.projection, self.use_bias = bool(projection), bool(use_bias)
        self.batch_norm_momentum = check_batch_norm_momentum(batch_norm_momentum)
        self.synchronized_batch_norm = bool(synchronized_batch_norm)
        self.expansion = expansion if expansion is not None else (4 if form == "bottleneck" else 1)
        _check_positive("expansion", self.expansion)
        self.output_channels = filters * self.expansion
        self.residual_layers = self._make_residual_layers()
        self.shortcut_layers = self._make_shortcut_layers() if self.projection else []

    def _conv(self, suffix: str, filters: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        """Conv2D with 'same' padding named `<block>_<suffix>`."""
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=stride,
            dilation_rate=dilation,
            padding="same",
            use_bias=self.use_bias,
            name=f"{self.name}_{suffix}",
        )

    def _norm(self, suffix: str) -> keras.layers.BatchNormalization:
        """BatchNormalization named `<block>_<suffix>`."""
        return batch_normalization(
            f"{self.name}_{suffix}", self.batch_norm_momentum, self.synchronized_batch_norm
        )

    def _make_residual_layers(self) -> list[keras.layers.Layer]:
        """Layers of the residual branch, in order; the last one is a BN (the add and ReLU come after)."""
        f, s, d = self.filters, self.stride, self.dilation
        if self.form == "bottleneck":
            convs = [self._conv("1_conv", f, 1, stride=s), self._conv("2_conv", f, 3, dilation=d)]
            last = self._conv("3_conv", self.output_channels, 1)
        else:
            convs = [self._conv("1_conv", f, 3, stride=s, dilation=d)]
            last = self._conv("2_conv", self.output_channels, 3, dilation=d)
        layers: list[keras.layers.Layer] = []
        for index, conv in enumerate(convs, start=1):
            layers += [conv, self._norm(f"{index}_bn"), keras.layers.ReLU(name=f"{self.name}_{index}_relu")]
        return layers + [last, self._norm(f"{len(convs) + 1}_bn")]

    def _make_shortcut_layers(self) -> list[keras.layers.Layer]:
        """1x1 convolution + BN projecting the input to the block's stride and width."""
        return [self._conv("0_conv", self.output_channels, 1, stride=self.stride), self._norm("0_bn")]

    @property
    def sublayers(self) -> list[keras.layers.Layer]:
        """Every layer inside the block (residual branch, then shortcut)."""
        return [*self.residual_layers, *self.shortcut_layers]

    def build(self, input_shape) -> None:
        """Create the sub-layers' weights; the input must match the output unless there is a projection."""
        channels = input_shape[-1]
        if not self.projection and (self.stride != 1 or channels != self.output_channels):
            raise ValueError(
                f"{self.name}: a block with stride {self.stride} mapping {channels} to {self.output_channels} "
                "channels needs projection=True"
            )
        _build_in_sequence(self.residual_layers, input_shape)
        _build_in_sequence(self.shortcut_layers, input_shape)

    def call(self, inputs, training=None):
        """relu(residual(x) + shortcut(x))."""
        residual = _call_in_sequence(self.residual_layers, inputs, training)
        shortcut = _call_in_sequence(self.shortcut_layers, inputs, training)
        return keras.ops.relu(residual + shortcut)

    def compute_output_shape(self, input_shape) -> tuple:
        """Same as the residual branch's output shape."""
        return _output_shape_in_sequence(self.residual_layers, input_shape)

    def get_config(self) -> dict:
        """Constructor arguments, for saving."""
        return {
            **super().get_config(),
            "filters": self.filters,
            "form": self.form,
            "stride": self.stride,
            "dilation": self.dilation,
            "projection": self.projection,
            "expansion": self.expansion,
            "use_bias": self.use_bias,
            "batch_norm_momentum": self.batch_norm_momentum,
            "synchronized_batch_norm": self.synchronized_batch_norm,
        }


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class PyramidPoolingModule(keras.layers.Layer):
    """PSPNet's pyramid pooling: per bin size b, adaptive pool to b x b, 1x1 conv + BN + ReLU, upsample, concat.

    Works for any feature-map height and width, including odd sizes and maps smaller than a bin. Each branch has
    `reduction_filters` channels (default: input channels / number of bins, as in the paper); the output is the
    input followed by the branches, in the order of `bins`. The branch BNs take `batch_norm_momentum` and
    `synchronized_batch_norm` like the residual blocks.
    """

    def __init__(
        self,
        bins: Sequence[int] = (1, 2, 3, 6),
        reduction_filters: int | None = None,
        pooling: str = "avg",
        batch_norm_momentum: float = DEFAULT_BATCH_NORM_MOMENTUM,
        synchronized_batch_norm: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.bins = check_bins(bins)
        if reduction_filters is not None:
            _check_positive("reduction_filters", reduction_filters)
        _pooling_reduction(pooling)
        self.reduction_filters, self.pooling = reduction_filters, pooling
        self.batch_norm_momentum = check_batch_norm_momentum(batch_norm_momentum)
        self.synchronized_batch_norm = bool(synchronized_batch_norm)
        self.branch_convs: list[keras.layers.Conv2D] = []
        self.branch_norms: list[keras.layers.BatchNormalization] = []

    def branch_filters(self, input_channels: int) -> int:
        """Channels of each branch for an input with `input_channels` channels."""
        return self.reduction_filters or max(1, input_channels // len(self.bins))

    def build(self, input_shape) -> None:
        """Create one 1x1 conv + BN per bin size; the channel count must be known."""
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"{self.name}: the number of input channels must be known, got shape {input_shape}"
            )
        filters = self.branch_filters(channels)
        for size in self.bins:
            conv = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{self.name}_bin{size}_conv")
            norm = batch_normalization(
                f"{self.name}_bin{size}_bn", self.batch_norm_momentum, self.synchronized_batch_norm
            )
            _build_in_sequence([conv, norm], (None, size, size, channels))
            self.branch_convs.append(conv)
            self.branch_norms.append(norm)

    def call(self, inputs, training=None):
        """Concatenate the input with each bin's pooled, reduced and upsampled features."""
        size = tf.shape(inputs)[1:3]
        features = [inputs]
        for bins, conv, norm in zip(self.bins, self.branch_convs, self.branch_norms, strict=True):
            pooled = adaptive_pool_2d(inputs, bins, self.pooling)
            reduced = keras.ops.relu(norm(conv(pooled), training=training))
            features.append(resize_bilinear(reduced, size))
        return tf.concat(features, axis=-1)

    def compute_output_shape(self, input_shape) -> tuple:
        """Input shape with the branches' channels added."""
        channels = input_shape[-1]
        return (*input_shape[:-1], channels + len(self.bins) * self.branch_filters(channels))

    def get_config(self) -> dict:
        """Constructor arguments, for saving."""
        return {
            **super().get_config(),
            "bins": list(self.bins),
            "reduction_filters": self.reduction_filters,
            "pooling": self.pooling,
            "batch_norm_momentum": self.batch_norm_momentum,
            "synchronized_batch_norm": self.synchronized_batch_norm,
        }


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ResizeToMatch(keras.layers.Layer):
    """Bilinearly resize the first input to the height and width of the second: ``layer([features, image])``."""

    def call(self, inputs):
        """Resize `features` to `reference`'s spatial size."""
        features, reference = inputs
        return resize_bilinear(features, tf.shape(reference)[1:3])

    def compute_output_shape(self, input_shape) -> tuple:
        """(batch, reference height, reference width, feature channels)."""
        features_shape, reference_shape = input_shape
        return (features_shape[0], reference_shape[1], reference_shape[2], features_shape[-1])


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class CaffeImageNetPreprocessing(keras.layers.Layer):
    """RGB in [0, 1] -> what caffe-trained ImageNet ResNet-50 weights expect: x * 255, RGB -> BGR, minus mean."""

    def call(self, inputs):
        """Scale, reverse the channels and subtract the BGR ImageNet mean."""
        mean = keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=inputs.dtype)
        return keras.ops.flip(inputs * 255.0, axis=-1) - mean

    def compute_output_shape(self, input_shape) -> tuple:
        """Unchanged."""
        return input_shape
