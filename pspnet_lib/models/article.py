"""The source article's "simple PSPNet", built faithfully, flaws included (notebook 09's control)."""

from __future__ import annotations

import keras

from pspnet_lib.layers import DilatedResidualBlock
from pspnet_lib.models.segmentation_model import SegmentationModel
from pspnet_lib.models.spec import (
    ARTICLE_POOL_WINDOWS,
    ARTICLE_REDUCED_MAPS,
    NetworkSpec,
)


def _build_article_model(spec: NetworkSpec, name: str) -> keras.Model:
    """The source article's "simple PSPNet" `spec` describes (`build("article")`), faithfully, flaws included; it
    regresses the colour mask (MSE).

    Module b: three residual blocks with dilated (rate 2) 3x3 convolutions at full resolution, 64 -> 128 -> 256
    maps. Module c: average pools of pool SIZE global, 2x2, 4x4 and 8x8, each reduced to 64 maps by a 1x1 conv,
    bilinearly upsampled and concatenated with the 256 base maps (512 maps). Module d: one 3x3 convolution to 3
    channels with a sigmoid, i.e. an RGB image in [0, 1], flattened (`flat_output`) to 256*256*3 values as in the
    article.

    Its flaws, which the course's PSPNet fixes:
    - It predicts colours, not classes: MSE on RGB has no ignore label, penalises near-identical class colours
      as little as near-identical shades, and JPEG-blurred label borders become targets.
    - No downsampling: 256 maps at full resolution cost a lot of memory and compute, yet the base features see
      only 13 x 13 pixels (three 3x3 rate-2 convolutions), so only the global branch carries scene context.
    - Pool sizes are windows (2, 4, 8 pixels), not bins (1, 2, 3, 6 regions of the map): three of the four
      "pyramid" branches are local blurs, not sub-region context.
    - No pretrained backbone, no BN/ReLU after the reductions, no 3x3 head layer, no dropout, no auxiliary loss.
    - The input size is fixed (upsampling factors are hard-wired) and must be divisible by 8.

    Its residual blocks' BNs use the spec's `batch_norm_momentum` and `synchronized_batch_norm` like the other
    networks (the article kept Keras' 0.99, per replica).
    """
    input_shape = spec.input_shape
    height, width, _ = input_shape
    momentum, synchronized = spec.batch_norm_momentum, spec.synchronized_batch_norm
    image = keras.Input(input_shape, name="image")
    base = image
    for index, filters in enumerate((32, 64, 128), start=1):
        base = DilatedResidualBlock(
            filters,
            expansion=2,
            dilation=2,
            projection=True,
            batch_norm_momentum=momentum,
            synchronized_batch_norm=synchronized,
            name=f"article_block{index}",
        )(base)
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool_global")(base)
    branches = [base, _article_branch(pooled, "global", (height, width))]
    for window in ARTICLE_POOL_WINDOWS:
        pooled = keras.layers.AveragePooling2D(window, name=f"pool_{window}x{window}")(base)
        branches.append(_article_branch(pooled, f"{window}x{window}", (window, window)))
    x = keras.layers.Concatenate(name="pyramid_concat")(branches)
    x = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid", dtype="float32", name="rgb")(x)
    if spec.flat_output:
        x = keras.layers.Flatten(dtype="float32", name="rgb_flat")(x)
    return SegmentationModel(image, x, name=name, spec=spec)


def _article_branch(pooled, name: str, upsampling: tuple[int, int]):
    """The article's branch: 1x1 conv to 64 maps (no BN, no ReLU), bilinear upsampling by a fixed factor."""
    x = keras.layers.Conv2D(ARTICLE_REDUCED_MAPS, 1, name=f"reduce_{name}")(pooled)
    return keras.layers.UpSampling2D(upsampling, interpolation="bilinear", name=f"upsample_{name}")(x)
