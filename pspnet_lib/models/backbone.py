"""The dilated residual backbone: stems, four stages whose strides turn into dilations past the output stride,
their receptive field, and the batch norms inside."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from pspnet_lib.layers import (
    DEFAULT_BATCH_NORM_MOMENTUM,
    CaffeImageNetPreprocessing,
    DilatedResidualBlock,
    PyramidPoolingModule,
    batch_normalization,
    check_batch_norm_momentum,
    receptive_field,
)
from pspnet_lib.models.spec import (
    AUX_STAGE,
    NOMINAL_STAGE_STRIDES,
    STEM_STRIDE,
    BackboneSpec,
    _backbone_spec,
    _check_dilate,
    _check_input_shape,
    _check_output_stride,
)


@dataclass(frozen=True)
class _NormSettings:
    """How every BatchNormalization of a model is built."""

    momentum: float = DEFAULT_BATCH_NORM_MOMENTUM
    synchronized: bool = False

    def layer(self, name: str) -> keras.layers.BatchNormalization:
        """A BatchNormalization named `name` with these settings."""
        return batch_normalization(name, self.momentum, self.synchronized)


def backbone_channels(backbone: str = "resnet50", width_multiplier: float = 1.0) -> int:
    """Channels of the backbone's conv5 output (the pyramid pooling module's input): 2048 for ResNet-50."""
    spec = _backbone_spec(backbone, width_multiplier)
    return spec.stage_filters[-1] * (4 if spec.form == "bottleneck" else 1)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization of `model`, including those inside residual blocks and the pyramid pooling module."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, DilatedResidualBlock):
            found += [sub for sub in layer.sublayers if isinstance(sub, keras.layers.BatchNormalization)]
        elif isinstance(layer, PyramidPoolingModule):
            found += list(layer.branch_norms)
        elif isinstance(layer, keras.Model):
            found += batch_norm_layers(layer)
    return found


def stage_strides_and_dilations(output_stride: int, dilate: bool = True) -> list[tuple[int, int]]:
    """(stride, dilation) of each of the four stages so the backbone stops downsampling at `output_stride`.

    A stage that would go past `output_stride` keeps stride 1 and multiplies the dilation instead, which keeps
    the receptive field of the strided network (8: conv4 dilation 2, conv5 dilation 4; 16: conv5 dilation 2).
    `dilate=False` leaves those stages at rate 1: the same feature grid with a smaller receptive field.
    """
    _check_output_stride(output_stride)
    schedule, reached, dilation = [], STEM_STRIDE, 1
    for stride in NOMINAL_STAGE_STRIDES:
        if reached * stride > output_stride:
            dilation *= stride if dilate else 1
            schedule.append((1, dilation))
        else:
            reached *= stride
            schedule.append((stride, 1))
    return schedule


def receptive_field_of(backbone: str = "resnet50", output_stride: int = 8, dilate: bool = True) -> int:
    """Theoretical receptive field (pixels per side) of the head's output: stem, the four stages, the 3x3 head.

    The small backbone's is 319 pixels dilated and 159 with `dilate=False` (both at output stride 8); the
    bilinear upsampling of the logits widens what one output pixel sees by up to one feature cell more.
    """
    spec = _backbone_spec(backbone, 1.0)
    chain = [(7, 2, 1), (3, 2, 1)] if backbone == "resnet50" else [(3, 2, 1), (3, 2, 1)]  # stem conv, max pool
    schedule = stage_strides_and_dilations(output_stride, _check_dilate(dilate))
    for blocks, (stride, dilation) in zip(spec.stage_blocks, schedule, strict=True):
        for index in range(blocks):
            first_stride = stride if index == 0 else 1
            if spec.form == "bottleneck":  # stride on the first 1x1, like keras.applications.ResNet50
                chain += [(1, first_stride, 1), (3, 1, dilation), (1, 1, 1)]
            else:
                chain += [(3, first_stride, dilation), (3, 1, dilation)]
    chain.append((3, 1, 1))  # the head's 3x3 convolution
    kernels, strides, dilations = zip(*chain, strict=True)
    return receptive_field(kernels, strides, dilations)


def build_backbone(
    backbone: str = "resnet50",
    input_shape: tuple = (None, None, 3),
    output_stride: int = 8,
    width_multiplier: float = 1.0,
    batch_norm_momentum: float = DEFAULT_BATCH_NORM_MOMENTUM,
    synchronized_batch_norm: bool = False,
    dilate: bool = True,
    name: str | None = None,
) -> keras.Model:
    """The dilated backbone alone, outputs [conv4 features (aux head input), conv5 features].

    Segmentation models nest it as their sub-model named `BACKBONE_NAME`; alone it is named `dilated_<backbone>`.
    """
    spec = _backbone_spec(backbone, width_multiplier)
    norm = _NormSettings(check_batch_norm_momentum(batch_norm_momentum), bool(synchronized_batch_norm))
    image = keras.Input(_check_input_shape(input_shape), name="image")
    aux_features, features = _backbone_features(image, backbone, spec, output_stride, norm, _check_dilate(dilate))
    return keras.Model(image, [aux_features, features], name=name or f"dilated_{backbone}")


def _backbone_features(
    image, backbone: str, spec: BackboneSpec, output_stride: int, norm: _NormSettings, dilate: bool = True
) -> tuple:
    """Run the stem and the four dilated stages on `image`; return (conv4 output, conv5 output)."""
    x = _resnet50_stem(image, norm) if backbone == "resnet50" else _small_stem(image, spec.stem_filters, norm)
    stage_outputs = []
    schedule = stage_strides_and_dilations(output_stride, dilate)
    for index, (filters, blocks, (stride, dilation)) in enumerate(
        zip(spec.stage_filters, spec.stage_blocks, schedule, strict=True)
    ):
        x = _residual_stage(
            x, f"conv{index + 2}", filters, blocks, stride, dilation, spec.form, backbone == "resnet50", norm
        )
        stage_outputs.append(x)
    return stage_outputs[AUX_STAGE], stage_outputs[-1]


def _resnet50_stem(image, norm: _NormSettings):
    """Caffe preprocessing, then keras.applications.ResNet50's stem (same layer names): 7x7/2 conv, 3x3/2 max pool."""
    x = CaffeImageNetPreprocessing(name="caffe_preprocessing")(image)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = norm.layer("conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def _small_stem(image, filters: int, norm: _NormSettings):
    """3x3/2 conv + BN + ReLU, then 3x3/2 max pool: stride 4 like a ResNet stem, far cheaper."""
    x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(image)
    x = norm.layer("stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    return keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)


def _residual_stage(
    x,
    name: str,
    filters: int,
    blocks: int,
    stride: int,
    dilation: int,
    form: str,
    use_bias: bool,
    norm: _NormSettings,
):
    """`blocks` residual blocks named `<name>_block<i>`; the first one strides and projects."""
    for index in range(blocks):
        x = DilatedResidualBlock(
            filters,
            form=form,
            stride=stride if index == 0 else 1,
            dilation=dilation,
            projection=index == 0,
            use_bias=use_bias,
            batch_norm_momentum=norm.momentum,
            synchronized_batch_norm=norm.synchronized,
            name=f"{name}_block{index + 1}",
        )(x)
    return x
