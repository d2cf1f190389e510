"""pspnet_lib.layers against NumPy references and known constructions."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from pspnet_lib.layers import (
    BATCH_NORM_EPSILON,
    DEFAULT_BATCH_NORM_MOMENTUM,
    CaffeImageNetPreprocessing,
    DilatedResidualBlock,
    PyramidPoolingModule,
    ResizeToMatch,
    adaptive_pool_2d,
    effective_kernel_size,
    empirical_receptive_field,
    receptive_field,
)

# Odd sizes, a square, and maps smaller than the largest bin (2x3 and 1x1 under bin 6).
MAP_SIZES = [(33, 47), (13, 13), (7, 4), (2, 3), (1, 1)]


def numpy_adaptive_pool(images: np.ndarray, bins: int, reduce) -> np.ndarray:
    """Reference: cell (i, j) reduces rows floor(i*H/b)..ceil((i+1)*H/b) and the same for columns."""
    batch, height, width, channels = images.shape
    out = np.empty((batch, bins, bins, channels), dtype=np.float64)
    for i in range(bins):
        rows = slice(math.floor(i * height / bins), math.ceil((i + 1) * height / bins))
        for j in range(bins):
            cols = slice(math.floor(j * width / bins), math.ceil((j + 1) * width / bins))
            out[:, i, j] = reduce(images[:, rows, cols].astype(np.float64), axis=(1, 2))
    return out


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)


@pytest.mark.parametrize("size", MAP_SIZES)
@pytest.mark.parametrize("pooling, reduce", [("avg", np.mean), ("max", np.max)])
def test_adaptive_pool_matches_numpy_reference(size, pooling, reduce) -> None:
    images = np.random.default_rng(1).normal(size=(2, *size, 3)).astype(np.float32)
    for bins in (1, 2, 3, 6):
        pooled = adaptive_pool_2d(tf.constant(images), bins, pooling).numpy()
        np.testing.assert_allclose(pooled, numpy_adaptive_pool(images, bins, reduce), rtol=1e-5, atol=1e-6)


def test_adaptive_pool_handles_sizes_known_only_at_run_time() -> None:
    pool = tf.function(
        lambda x: adaptive_pool_2d(x, 3), input_signature=[tf.TensorSpec((None, None, None, 2))]
    )
    for size in [(9, 14), (4, 5)]:
        images = np.random.default_rng(2).random((1, *size, 2)).astype(np.float32)
        np.testing.assert_allclose(pool(images).numpy(), numpy_adaptive_pool(images, 3, np.mean), rtol=1e-5)


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.parametrize("size", [(33, 47), (2, 3)])
def test_pyramid_pooling_is_differentiable_on_odd_and_tiny_maps(pooling, size) -> None:
    module = PyramidPoolingModule(pooling=pooling)
    features = tf.random.normal((2, *size, 8))
    with tf.GradientTape() as tape:
        tape.watch(features)
        outputs = module(features, training=True)
        loss = tf.reduce_sum(outputs[..., 8:] * tf.random.normal(outputs[..., 8:].shape))  # branches only
    gradients = tape.gradient(loss, [features, *module.trainable_weights])
    for gradient in gradients:
        assert (
            gradient is not None and np.all(np.isfinite(gradient.numpy())) and np.any(gradient.numpy() != 0)
        )


@pytest.mark.parametrize("size", [(33, 47), (2, 3)])
def test_pyramid_pooling_concatenates_input_and_upsampled_branches(size) -> None:
    channels = 8
    features = np.random.default_rng(3).normal(size=(1, *size, channels)).astype(np.float32)
    module = PyramidPoolingModule(bins=(1, 2, 3, 6))
    outputs = module(features, training=False).numpy()
    assert outputs.shape == (1, *size, channels + 4 * (channels // 4))
    np.testing.assert_array_equal(outputs[..., :channels], features)
    # Bin 1 branch by hand: global mean, 1x1 conv, fresh BN (x / sqrt(1 + eps)), ReLU, constant over the map.
    kernel = module.branch_convs[0].kernel.numpy()[0, 0]
    expected = np.maximum(features.mean(axis=(1, 2)) @ kernel / np.sqrt(1 + BATCH_NORM_EPSILON), 0)
    branch = outputs[..., channels : channels + channels // 4]
    np.testing.assert_allclose(
        branch, np.broadcast_to(expected[:, None, None, :], branch.shape), rtol=1e-5, atol=1e-6
    )


def test_pyramid_pooling_branch_width_and_config_round_trip() -> None:
    module = PyramidPoolingModule(bins=(1, 3), reduction_filters=5, pooling="max", name="ppm")
    assert module.compute_output_shape((None, None, None, 16)) == (None, None, None, 16 + 2 * 5)
    clone = PyramidPoolingModule.from_config(module.get_config())
    assert (clone.bins, clone.reduction_filters, clone.pooling) == ((1, 3), 5, "max")


@pytest.mark.parametrize("bins", [(), (0,), (1, -2), 3, (1.5,)])
def test_pyramid_pooling_rejects_bad_bins(bins) -> None:
    with pytest.raises(ValueError, match="bins"):
        PyramidPoolingModule(bins=bins)


def test_pyramid_pooling_rejects_unknown_pooling() -> None:
    with pytest.raises(ValueError, match="pooling"):
        PyramidPoolingModule(pooling="median")


@pytest.mark.parametrize("form, filters, expected_channels", [("bottleneck", 4, 16), ("basic", 6, 6)])
@pytest.mark.parametrize("stride", [1, 2])
def test_residual_block_output_shape(form, filters, expected_channels, stride) -> None:
    block = DilatedResidualBlock(
        filters, form=form, stride=stride, dilation=1 if stride > 1 else 2, projection=True
    )
    outputs = block(tf.random.normal((1, 11, 16, 3)))
    assert outputs.shape == (1, math.ceil(11 / stride), math.ceil(16 / stride), expected_channels)


def test_residual_block_with_silenced_branch_is_relu_of_identity() -> None:
    block = DilatedResidualBlock(4, dilation=2)  # bottleneck, 16 channels in and out, identity shortcut
    inputs = tf.random.normal((2, 9, 7, 16))
    block(inputs)
    last_norm = block.residual_layers[-1]
    last_norm.gamma.assign(tf.zeros_like(last_norm.gamma))
    last_norm.beta.assign(tf.zeros_like(last_norm.beta))
    np.testing.assert_allclose(
        block(inputs, training=False).numpy(), np.maximum(inputs.numpy(), 0), atol=1e-6
    )


def test_residual_block_puts_stride_and_dilation_where_resnet_v1_does() -> None:
    block = DilatedResidualBlock(8, stride=2, dilation=1, projection=True, name="conv3_block1")
    block.build((None, None, None, 16))
    configs = {
        layer.name: layer.get_config() for layer in block.sublayers if isinstance(layer, keras.layers.Conv2D)
    }
    assert configs["conv3_block1_1_conv"]["strides"] == (2, 2)  # stride on the first 1x1, as ResNet50 v1
    assert configs["conv3_block1_0_conv"]["strides"] == (2, 2)
    assert configs["conv3_block1_2_conv"]["kernel_size"] == (3, 3)
    dilated = DilatedResidualBlock(8, dilation=4, name="conv5_block2")
    assert dilated.residual_layers[3].get_config()["dilation_rate"] == (4, 4)


def test_residual_block_config_round_trip() -> None:
    block = DilatedResidualBlock(5, form="basic", stride=2, projection=True, use_bias=True, name="b")
    clone = DilatedResidualBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()


def test_residual_block_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="form"):
        DilatedResidualBlock(4, form="inverted")
    with pytest.raises(ValueError, match="filters"):
        DilatedResidualBlock(0)
    with pytest.raises(ValueError, match="stride > 1 and dilation > 1"):
        DilatedResidualBlock(4, form="basic", stride=2, dilation=2)
    with pytest.raises(ValueError, match="projection=True"):
        DilatedResidualBlock(4)(tf.zeros((1, 8, 8, 3)))


def test_effective_kernel_size() -> None:
    assert [effective_kernel_size(3, d) for d in (1, 2, 4)] == [3, 5, 9]
    with pytest.raises(ValueError, match="dilation"):
        effective_kernel_size(3, 0)


@pytest.mark.parametrize(
    "kernels, strides, dilations, expected",
    [
        ((3, 3, 3), (1, 1, 1), (1, 1, 1), 7),  # three stacked 3x3 convolutions (VGG)
        ((3, 3, 3), (1, 1, 1), (1, 2, 4), 15),  # Yu & Koltun's context module: 15 x 15
        ((7, 3), (2, 2), (1, 1), 11),  # ResNet stem: 7x7/2 conv then 3x3/2 max pool
    ],
)
def test_receptive_field_formula_on_known_stacks(kernels, strides, dilations, expected) -> None:
    assert receptive_field(kernels, strides, dilations) == expected


def test_receptive_field_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="one entry per layer"):
        receptive_field((3, 3), (1,), (1, 1))


@pytest.mark.parametrize(
    "strides, dilations", [((1, 1, 1), (1, 2, 4)), ((1, 2, 1), (1, 1, 2)), ((2, 1, 1), (1, 3, 1))]
)
def test_empirical_receptive_field_equals_formula_on_dilated_conv_stack(strides, dilations) -> None:
    stack = keras.Sequential(
        [keras.Input((None, None, 2))]
        + [
            keras.layers.Conv2D(
                3, 3, strides=s, dilation_rate=d, padding="same", kernel_initializer="random_normal"
            )
            for s, d in zip(strides, dilations, strict=True)
        ]
    )
    expected = receptive_field((3, 3, 3), strides, dilations)
    assert empirical_receptive_field(stack, input_size=65) == (expected, expected)


def test_empirical_receptive_field_refuses_a_clipped_probe() -> None:
    stack = keras.Sequential(
        [keras.Input((None, None, 1)), keras.layers.Conv2D(1, 9, dilation_rate=4, padding="same")]
    )
    with pytest.raises(ValueError, match="16x16 probe image: increase input_size"):
        empirical_receptive_field(stack, input_size=16)


def test_empirical_receptive_field_probes_a_fixed_size_model_at_its_size() -> None:
    stack = keras.Sequential([keras.Input((40, 30, 1)), keras.layers.Conv2D(1, 3, dilation_rate=(2, 3))])
    assert empirical_receptive_field(stack) == (5, 7)
    with pytest.raises(ValueError, match="fixed input size"):
        empirical_receptive_field(stack, input_size=64)


def test_caffe_preprocessing_matches_keras_resnet50_preprocess_input() -> None:
    images = np.random.default_rng(4).random((2, 5, 6, 3)).astype(np.float32)
    expected = keras.applications.resnet50.preprocess_input(images * 255.0)
    np.testing.assert_allclose(CaffeImageNetPreprocessing()(images).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_resize_to_match_takes_the_reference_size_and_keeps_constants() -> None:
    features = tf.fill((1, 4, 5, 2), 3.0)
    resized = ResizeToMatch()([features, tf.zeros((1, 31, 47, 3))])
    assert resized.shape == (1, 31, 47, 2)
    np.testing.assert_allclose(resized.numpy(), 3.0)


def _norms_of(layer) -> list[keras.layers.BatchNormalization]:
    """BatchNormalization layers among a block's sub-layers or a pyramid's branches."""
    found = layer.sublayers if isinstance(layer, DilatedResidualBlock) else layer.branch_norms
    return [norm for norm in found if isinstance(norm, keras.layers.BatchNormalization)]


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: DilatedResidualBlock(4, form="bottleneck", stride=2, projection=True, **kw),
        lambda **kw: DilatedResidualBlock(6, form="basic", dilation=2, projection=True, **kw),
        lambda **kw: PyramidPoolingModule(bins=(1, 2, 3, 6), **kw),
    ],
    ids=["bottleneck", "basic", "pyramid"],
)
def test_batch_norm_momentum_and_synchronization_reach_every_norm_and_survive_config(make) -> None:
    layer = make(batch_norm_momentum=0.75, synchronized_batch_norm=True)
    layer(tf.random.normal((1, 12, 12, 8)))
    expected_count = 4 if isinstance(layer, PyramidPoolingModule) else len(layer.residual_layers) // 3 + 2
    norms = _norms_of(layer)
    assert len(norms) == expected_count
    assert sum(1 for w in layer.weights if w.path.endswith("moving_mean")) == expected_count
    assert all(
        n.momentum == pytest.approx(0.75) and n.synchronized and n.epsilon == BATCH_NORM_EPSILON
        for n in norms
    )
    clone = type(layer).from_config(layer.get_config())
    clone(tf.random.normal((1, 12, 12, 8)))
    assert all(n.momentum == pytest.approx(0.75) and n.synchronized for n in _norms_of(clone))


def test_batch_norm_defaults_are_pytorch_momentum_unsynchronized() -> None:
    assert DEFAULT_BATCH_NORM_MOMENTUM == 0.9
    block, pyramid = DilatedResidualBlock(4, dilation=2), PyramidPoolingModule(bins=(1, 2))
    block(tf.random.normal((1, 8, 8, 16)))
    pyramid(tf.random.normal((1, 8, 8, 16)))
    for norm in _norms_of(block) + _norms_of(pyramid):
        assert norm.momentum == pytest.approx(0.9) and not norm.synchronized


@pytest.mark.parametrize("momentum", [1.0, -0.5, None])
def test_bad_batch_norm_momentum_is_rejected(momentum) -> None:
    with pytest.raises(ValueError, match="batch_norm_momentum"):
        DilatedResidualBlock(4, batch_norm_momentum=momentum)
    with pytest.raises(ValueError, match="batch_norm_momentum"):
        PyramidPoolingModule(batch_norm_momentum=momentum)
