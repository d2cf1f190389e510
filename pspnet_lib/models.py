"""Segmentation models: PSPNet and its dilated-FCN baseline on a dilated ResNet-50 or a small teaching backbone,
the source article's model, ImageNet weight transfer, and parameter / multiply-add counters.

Models take float32 RGB in [0, 1] of shape (B, H, W, 3) and return float32 logits (B, H, W, num_classes) at the
input's height and width; with an auxiliary head they return ``[logits, aux_logits]`` (output layers named so).

Every BatchNormalization uses `batch_norm_momentum` (default 0.9: PyTorch's default momentum of 0.1 in its
convention, which the paper author's hszhao/semseg trains with; Keras' own default of 0.99 leaves the moving
statistics unsettled after a short classroom run) and, with `synchronized_batch_norm=True`, computes its batch
statistics over all replicas of a multi-device run (keras.layers.BatchNormalization(synchronized=True)).

The backbone is a nested sub-model named "backbone" (`BACKBONE_NAME`); everything else (pyramid pooling module,
head, auxiliary head) are the "new layers" that `new_layer_variables` lists for the paper's 10x learning rate.

Two decisions where this code differs from the authors' PyTorch code (hszhao/semseg), and why:

- Upsampling uses half-pixel centres (TensorFlow's `tf.image.resize`), not `align_corners=True`. semseg trains
  on 713-pixel crops, 8k+1 pixels, where feature cell k sits on pixel 8k, and corner alignment is exact. Our
  crops and scenes are multiples of 8 (128, 256, 512 x 256), where cell k averages pixels 8k..8k+7 and its
  centre is pixel 8k+3.5: half-pixel resizing puts it there, corner alignment shifts it by up to 3.5 pixels
  towards the borders. Measured on a 64-pixel-period sine, stride-8 cell averages upsampled back to 256
  pixels: mean absolute error 0.052 with half-pixel centres, 0.118 with aligned corners (at 257 pixels,
  sampled every 8th pixel, the order flips: 0.112 vs 0.032).
- The ResNet-50 stem is Keras' 7x7/2 convolution, not the paper's three 3x3 convolutions (ResNet-50 "deep
  stem", 64-64-128 channels): the ImageNet weights that `keras.applications.ResNet50` provides are for the 7x7
  stem, and pretrained weights matter far more than the stem's shape (the paper's own ablations start from
  ImageNet). The deep stem would see 11 instead of 7 pixels before pooling and costs 1.84 G instead of 0.15 G
  multiply-adds at 256x256 (counted: 3*3*3*64 + 3*3*64*64 + 3*3*64*128 vs 7*7*3*64 per position of the
  128x128 grid), and its 128 output channels would change conv2_block1's kernels, so no ImageNet weights fit.
  The small teaching backbone uses a single 3x3/2 convolution.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pspnet_lib.config import host_reachable
from pspnet_lib.data.palette import NUM_CLASSES
from pspnet_lib.layers import (
    DEFAULT_BATCH_NORM_MOMENTUM,
    POOLING_TYPES,
    CaffeImageNetPreprocessing,
    DilatedResidualBlock,
    PyramidPoolingModule,
    ResizeToMatch,
    batch_normalization,
    check_batch_norm_momentum,
    check_bins,
    receptive_field,
)

OUTPUT_STRIDES = (8, 16, 32)
MIN_INPUT_SIZE = (
    32  # the smallest side every backbone maps to at least one feature cell, at any output stride
)
STEM_STRIDE = 4
NOMINAL_STAGE_STRIDES = (1, 2, 2, 2)  # conv2..conv5 of a ResNet, after the stride-4 stem
AUX_STAGE = 2  # index of the stage feeding the auxiliary head (conv4 of a ResNet)
ARTICLE_POOL_WINDOWS = (2, 4, 8)
ARTICLE_REDUCED_MAPS = 64
IMAGENET_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_WEIGHTS_HOST = ("storage.googleapis.com", 443)  # where keras.applications downloads them from
BACKBONE_NAME = "backbone"  # the nested sub-model holding the stem and the four stages


@dataclass(frozen=True)
class BackboneSpec:
    """Widths and depths of a four-stage dilated residual backbone and of the heads put on it."""

    stem_filters: int
    stage_filters: tuple[int, int, int, int]
    stage_blocks: tuple[int, int, int, int]
    form: str
    head_filters: int
    aux_head_filters: int

    def scaled(self, width_multiplier: float) -> BackboneSpec:
        """The same spec with every width multiplied by `width_multiplier` (at least 4 channels)."""

        def scale(channels: int) -> int:
            return max(4, round(channels * width_multiplier))

        return BackboneSpec(
            stem_filters=scale(self.stem_filters),
            stage_filters=tuple(scale(f) for f in self.stage_filters),
            stage_blocks=self.stage_blocks,
            form=self.form,
            head_filters=scale(self.head_filters),
            aux_head_filters=scale(self.aux_head_filters),
        )


BACKBONES = {
    "resnet50": BackboneSpec(64, (64, 128, 256, 512), (3, 4, 6, 3), "bottleneck", 512, 256),
    "small": BackboneSpec(24, (32, 64, 112, 128), (1, 1, 2, 1), "basic", 96, 48),
}


NETWORKS = ("pspnet", "fcn", "article")
OUTPUTS = ("logits", "color")  # class scores, or an RGB painting of the colour mask


@dataclass(frozen=True)
class NetworkSpec:
    """Which network to build, in one place: `build(spec)` builds it and the model keeps it as `model.spec`.

    `network`: "pspnet", "fcn" (PSPNet without the pyramid module, the paper's baseline) or "article" (the
    source article's colour-painting model, which uses only `input_size`, `flat_output` and the batch norm
    settings). `reduction_filters`: channels of each pyramid branch (None: backbone channels / len(bins), the
    paper's reduction). `width` scales every channel count of the small backbone. `dilate=False` keeps the later
    stages at rate 1. `input_size`: a fixed side, or (height, width), of the input (the article model needs
    one), None for any size. `output`: "logits" (`num_classes` class scores, the paper's head) or "color" (3
    sigmoid channels painting the colour mask, as the article model does; notebook 09's control).
    """

    network: str = "pspnet"
    backbone: str = "resnet50"
    bins: tuple[int, ...] = (1, 2, 3, 6)
    pooling: str = "avg"
    reduction_filters: int | None = None
    aux_head: bool = True
    output_stride: int = 8
    dilate: bool = True
    width: float = 1.0
    dropout: float = 0.1
    batch_norm_momentum: float = DEFAULT_BATCH_NORM_MOMENTUM
    synchronized_batch_norm: bool = False
    num_classes: int = NUM_CLASSES
    input_size: int | tuple[int, int] | None = None
    flat_output: bool = False
    output: str = "logits"

    def __post_init__(self) -> None:
        """Reject a setting that cannot be built, naming it (ValueError)."""
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        object.__setattr__(self, "bins", check_bins(self.bins))
        if self.pooling not in POOLING_TYPES:
            raise ValueError(f"pooling must be one of {POOLING_TYPES}, got {self.pooling!r}")
        for name in ("aux_head", "dilate", "synchronized_batch_norm", "flat_output"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.reduction_filters is not None and (
            isinstance(self.reduction_filters, bool) or not isinstance(self.reduction_filters, int) or self.reduction_filters < 1
        ):
            raise ValueError(f"reduction_filters must be a positive int or None, got {self.reduction_filters!r}")
        _backbone_spec(self.backbone, self.width)
        _check_output_stride(self.output_stride)
        _check_dropout(self.dropout)
        check_batch_norm_momentum(self.batch_norm_momentum)
        _check_num_classes(self.num_classes)
        if isinstance(self.input_size, list | tuple):
            object.__setattr__(self, "input_size", tuple(self.input_size))
        if self.network == "article":
            _check_article_input_shape(self.input_shape)
        elif self.input_size is not None:
            _check_input_shape(self.input_shape)
        elif self.flat_output:
            raise ValueError("flat_output applies to network='article' only")

    def replace(self, **changes) -> NetworkSpec:
        """A copy with `changes` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The spec as JSON-friendly values (bins as a list)."""
        return {**dataclasses.asdict(self), "bins": list(self.bins)}

    @classmethod
    def from_dict(cls, values: dict) -> NetworkSpec:
        """The spec `as_dict` wrote; ValueError naming unknown keys."""
        unknown = set(values) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown network spec settings {sorted(unknown)}")
        return cls(**{**values, **({"bins": tuple(values["bins"])} if "bins" in values else {})})

    @property
    def input_shape(self) -> tuple:
        """(H, W, 3) of the model's input, H and W None for any size."""
        size = self.input_size
        return (*size, 3) if isinstance(size, tuple) else (size, size, 3)


@keras.saving.register_keras_serializable(package="pspnet_lib")
class SegmentationModel(keras.Model):
    """A functional model that records the `NetworkSpec` it was built from and the image size it is meant for.

    `image_size`: the side, or (height, width), scenes are resized to before they reach the model (training
    records its own `image_size`; a fixed-size network's `spec.input_size` by default). Both are saved in .keras
    files and read back on load, so scoring a saved model needs no guess. A file saved before the size was
    recorded loads with `image_size` None.
    """

    def __init__(
        self, *args, spec: NetworkSpec | dict | None = None, image_size: int | Sequence[int] | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.spec = NetworkSpec.from_dict(spec) if isinstance(spec, dict) else spec
        if image_size is None and self.spec is not None:
            image_size = self.spec.input_size
        self.recorded_image_size = _check_image_size(image_size)

    def get_config(self) -> dict:
        """The functional config plus the spec and the image size."""
        size = self.recorded_image_size
        return {
            **super().get_config(),
            "spec": None if self.spec is None else self.spec.as_dict(),
            "image_size": list(size) if isinstance(size, tuple) else size,
        }


def network_spec(model: keras.Model) -> NetworkSpec | None:
    """The spec `model` was built from, or None for a model not built by `build`."""
    spec = getattr(model, "spec", None)
    return spec if isinstance(spec, NetworkSpec) else None


def image_size_of(model: keras.Model) -> int | tuple[int, int] | None:
    """The image size `model` records (see `SegmentationModel`), else its fixed input size, else None."""
    recorded = getattr(model, "recorded_image_size", None)
    if recorded is not None:
        return recorded
    height, width = model.inputs[0].shape[1:3] if model.inputs else (None, None)
    if not (height and width):
        return None
    return height if height == width else (height, width)


def _check_image_size(size: int | Sequence[int] | None) -> int | tuple[int, int] | None:
    """`size` as None, a side or (height, width), each at least MIN_INPUT_SIZE pixels; ValueError otherwise."""
    if size is None:
        return None
    sides = tuple(size) if isinstance(size, list | tuple) else (size,)
    if len(sides) not in (1, 2) or any(
        isinstance(side, bool) or not isinstance(side, int | np.integer) or side < MIN_INPUT_SIZE for side in sides
    ):
        raise ValueError(f"image_size must be a side or (height, width) of at least {MIN_INPUT_SIZE} pixels, got {size!r}")
    sides = tuple(int(side) for side in sides)
    return sides[0] if len(sides) == 1 or sides[0] == sides[1] else sides


def is_color_model(model: keras.Model) -> bool:
    """True for a model that paints RGB instead of predicting class logits: the article model, or output="color"."""
    spec = network_spec(model)
    return spec is not None and (spec.network == "article" or spec.output == "color")


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


def build(
    spec: NetworkSpec,
    weights: str | keras.Model | None = None,
    name: str | None = None,
    image_size: int | Sequence[int] | None = None,
) -> keras.Model:
    """The untrained network `spec` describes (a `SegmentationModel` recording the spec).

    `weights="imagenet"` starts the resnet50 backbone from Keras' ImageNet ResNet-50 (downloaded once);
    a keras.applications ResNet50 model passed as `weights` is copied from instead (no download).
    `image_size`: the scene size the model is meant for, recorded with it (training passes its own).
    """
    if not isinstance(spec, NetworkSpec):
        raise ValueError(f"spec must be a models.NetworkSpec, got {type(spec).__name__}")
    if spec.network == "article":
        if weights is not None:
            raise ValueError("the article model has no pretrained weights: build it with weights=None")
        model = _build_article_model(spec, name or "article_pspnet")
    else:
        _check_weights(weights if weights is None or isinstance(weights, str) else "imagenet", spec.backbone)
        model = _build_segmentation_model(spec, name or ("pspnet" if spec.network == "pspnet" else "dilated_fcn"), weights)
    if image_size is not None:
        size = _check_image_size(image_size)
        if spec.input_size is not None and size != spec.input_size:
            raise ValueError(f"image_size {image_size!r} differs from the fixed spec.input_size {spec.input_size!r}")
        model.recorded_image_size = size
    return model


def build_pspnet(
    num_classes: int,
    backbone: str = "resnet50",
    input_shape: tuple = (None, None, 3),
    bins: Sequence[int] = (1, 2, 3, 6),
    output_stride: int = 8,
    aux_head: bool = True,
    weights: str | None = None,
    dropout: float = 0.1,
    pooling: str = "avg",
    width_multiplier: float = 1.0,
    name: str = "pspnet",
    reduction_filters: int | None = None,
    batch_norm_momentum: float = DEFAULT_BATCH_NORM_MOMENTUM,
    synchronized_batch_norm: bool = False,
    dilate: bool = True,
) -> keras.Model:
    """PSPNet: dilated backbone, pyramid pooling over `bins`, 3x3 conv head, bilinear upsampling to the input.

    `reduction_filters` sets the channels of each pyramid branch (default: backbone channels / len(bins), the
    paper's reduction; the backbone's channel count keeps them all, i.e. no reduction). `dilate=False` keeps
    the backbone's later stages at rate 1 (a smaller receptive field, see `stage_strides_and_dilations`).
    Shorthand for `build(NetworkSpec(...))`; `input_shape` may fix a non-square size.
    """
    spec = NetworkSpec(
        "pspnet", backbone, bins, pooling, reduction_filters, aux_head, output_stride, dilate, width_multiplier,
        dropout, batch_norm_momentum, synchronized_batch_norm, num_classes, _input_size(input_shape),
    )
    return _build_segmentation_model(spec, name, _checked_weights(weights, backbone))


def build_dilated_fcn(
    num_classes: int,
    backbone: str = "resnet50",
    input_shape: tuple = (None, None, 3),
    output_stride: int = 8,
    aux_head: bool = True,
    weights: str | None = None,
    dropout: float = 0.1,
    width_multiplier: float = 1.0,
    name: str = "dilated_fcn",
    batch_norm_momentum: float = DEFAULT_BATCH_NORM_MOMENTUM,
    synchronized_batch_norm: bool = False,
    dilate: bool = True,
) -> keras.Model:
    """The paper's baseline: PSPNet without the pyramid pooling module (same backbone and heads)."""
    spec = NetworkSpec(
        "fcn", backbone, aux_head=aux_head, output_stride=output_stride, dilate=dilate, width=width_multiplier,
        dropout=dropout, batch_norm_momentum=batch_norm_momentum,
        synchronized_batch_norm=synchronized_batch_norm, num_classes=num_classes, input_size=_input_size(input_shape),
    )
    return _build_segmentation_model(spec, name, _checked_weights(weights, backbone))


def _input_size(input_shape: tuple) -> int | tuple[int, int] | None:
    """A spec's `input_size` for a checked (H, W, 3) `input_shape`: None (any size), a side, or (H, W)."""
    height, width, _ = _check_input_shape(input_shape)
    if height is None and width is None:
        return None
    if height is None or width is None:
        raise ValueError(f"input_shape must fix both height and width or neither, got {input_shape!r}")
    return height if height == width else (height, width)


def _checked_weights(weights: str | None, backbone: str) -> str | None:
    """`weights` after `_check_weights`."""
    _check_weights(weights, backbone)
    return weights


def _build_segmentation_model(spec: NetworkSpec, name: str, weights: str | keras.Model | None = None) -> keras.Model:
    """Backbone sub-model -> pyramid pooling (PSPNet) -> head (+ aux head), outputs upsampled to the input size."""
    input_shape = spec.input_shape
    norm = _NormSettings(spec.batch_norm_momentum, spec.synchronized_batch_norm)
    widths = _backbone_spec(spec.backbone, spec.width)
    source = load_imagenet_resnet50() if weights == "imagenet" else weights
    image = keras.Input(input_shape, name="image")
    backbone = build_backbone(
        spec.backbone, input_shape, spec.output_stride, spec.width, norm.momentum, norm.synchronized, spec.dilate,
        name=BACKBONE_NAME,
    )
    aux_features, features = backbone(image)
    if spec.network == "pspnet":
        features = PyramidPoolingModule(
            bins=spec.bins,
            pooling=spec.pooling,
            reduction_filters=spec.reduction_filters,
            batch_norm_momentum=norm.momentum,
            synchronized_batch_norm=norm.synchronized,
            name="pyramid_pooling",
        )(features)
    head = _segmentation_head(features, image, widths.head_filters, spec, "head", "logits", norm)
    outputs = [head]
    if spec.aux_head:
        outputs.append(
            _segmentation_head(aux_features, image, widths.aux_head_filters, spec, "aux_head", "aux_logits", norm)
        )
    model = SegmentationModel(image, outputs if spec.aux_head else outputs[0], name=name, spec=spec)
    if source is not None:
        transfer_resnet50_weights(source, model)
    return model


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


def _segmentation_head(
    features, image, filters: int, spec: NetworkSpec, name: str, output_name: str, norm: _NormSettings
):
    """3x3 conv + BN + ReLU + channel dropout + 1x1 classifier, then float32 bilinear upsampling to the image size.

    The dropout drops whole feature maps (SpatialDropout2D, PyTorch's Dropout2d as in the authors' code).
    """
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(features)
    x = norm.layer(f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    x = keras.layers.SpatialDropout2D(spec.dropout, name=f"{name}_dropout")(x)
    if spec.output == "color":  # an RGB painting in [0, 1] instead of class scores
        x = keras.layers.Conv2D(3, 1, name=f"{name}_painter")(x)
        x = ResizeToMatch(name=f"{name}_upsampling", dtype="float32")([x, image])
        return keras.layers.Activation("sigmoid", dtype="float32", name=output_name)(x)
    x = keras.layers.Conv2D(spec.num_classes, 1, name=f"{name}_classifier")(x)
    return ResizeToMatch(name=output_name, dtype="float32")([x, image])


def build_article_model(
    input_shape: tuple = (256, 256, 3),
    flatten_output: bool = True,
    batch_norm_momentum: float = DEFAULT_BATCH_NORM_MOMENTUM,
    synchronized_batch_norm: bool = False,
) -> keras.Model:
    """The source article's "simple PSPNet", faithfully, flaws included; it regresses the colour mask (MSE).

    Module b: three residual blocks with dilated (rate 2) 3x3 convolutions at full resolution, 64 -> 128 -> 256
    maps. Module c: average pools of pool SIZE global, 2x2, 4x4 and 8x8, each reduced to 64 maps by a 1x1 conv,
    bilinearly upsampled and concatenated with the 256 base maps (512 maps). Module d: one 3x3 convolution to 3
    channels with a sigmoid, i.e. an RGB image in [0, 1], flattened to 256*256*3 values as in the article.

    Its flaws, which the course's PSPNet fixes:
    - It predicts colours, not classes: MSE on RGB has no ignore label, penalises near-identical class colours
      as little as near-identical shades, and JPEG-blurred label borders become targets.
    - No downsampling: 256 maps at full resolution cost a lot of memory and compute, yet the base features see
      only 13 x 13 pixels (three 3x3 rate-2 convolutions), so only the global branch carries scene context.
    - Pool sizes are windows (2, 4, 8 pixels), not bins (1, 2, 3, 6 regions of the map): three of the four
      "pyramid" branches are local blurs, not sub-region context.
    - No pretrained backbone, no BN/ReLU after the reductions, no 3x3 head layer, no dropout, no auxiliary loss.
    - The input size is fixed (upsampling factors are hard-wired) and must be divisible by 8.

    Its residual blocks' BNs use `batch_norm_momentum` and `synchronized_batch_norm` like the other builders
    (the article kept Keras' 0.99, per replica). Shorthand for `build(NetworkSpec("article", input_size=...))`
    for square inputs.
    """
    height, width, _ = _check_article_input_shape(input_shape)
    spec = NetworkSpec(
        "article", input_size=height if height == width else (height, width), flat_output=bool(flatten_output),
        batch_norm_momentum=batch_norm_momentum, synchronized_batch_norm=bool(synchronized_batch_norm),
    )
    return _build_article_model(spec, "article_pspnet")


def _build_article_model(spec: NetworkSpec, name: str) -> keras.Model:
    """The article model `spec` describes."""
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


def imagenet_weights_available(timeout: float = 3.0) -> bool:
    """True when the ResNet-50 ImageNet weights are cached, or their download server answers within `timeout` s.

    Looks for IMAGENET_WEIGHTS_FILE in $KERAS_HOME/models (default ~/.keras/models), then tries one TCP
    connection to storage.googleapis.com:443 (`config.host_reachable`). Offline it returns False within `timeout`
    seconds, name lookup included, so a notebook can skip the ~95 MB download instead of failing.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    if (keras_home / "models" / IMAGENET_WEIGHTS_FILE).is_file():
        return True
    return host_reachable(IMAGENET_WEIGHTS_HOST, timeout)


def load_imagenet_resnet50() -> keras.Model:
    """keras.applications.ResNet50(weights="imagenet", include_top=False), or a RuntimeError saying what to do."""
    try:
        return keras.applications.ResNet50(weights="imagenet", include_top=False)
    except Exception as error:  # keras' get_file raises a bare Exception when the download fails
        raise RuntimeError(
            "could not load the ImageNet ResNet-50 weights (Keras downloads "
            "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 on first use, ~95 MB). Connect to the internet "
            "once, or copy that file into ~/.keras/models/ (or $KERAS_HOME/models/), or build with weights=None. "
            f"Cause: {error}"
        ) from error


def transfer_resnet50_weights(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy every weighted layer of a keras.applications ResNet50 into `target`'s same-named layers.

    Dilation does not change kernel shapes, so the dilated backbone takes the weights unchanged. Returns the
    names of the copied layers; ValueError if `target` lacks one of them or its shapes differ.
    """
    by_name = _layers_by_name(target)
    copied = []
    for layer in source.layers:
        if not layer.weights:
            continue
        if layer.name not in by_name:
            raise ValueError(
                f"target model {target.name!r} has no layer {layer.name!r}: is its backbone resnet50?"
            )
        _copy_weights(layer, by_name[layer.name])
        copied.append(layer.name)
    return copied


def _layers_by_name(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """`model`'s layers, the layers of its nested models and those inside its residual blocks, by name."""
    found = {}
    for layer in model.layers:
        found[layer.name] = layer
        if isinstance(layer, DilatedResidualBlock):
            found.update({sublayer.name: sublayer for sublayer in layer.sublayers})
        elif isinstance(layer, keras.Model):
            found.update(_layers_by_name(layer))
    return found


def new_layer_variables(model: keras.Model) -> list:
    """The trainable variables outside the backbone sub-model: pyramid pooling module, head and auxiliary head.

    These are the layers a pretrained backbone does not provide; the paper trains them with a 10x learning
    rate. A model without a backbone sub-model (the article model) has only new layers.
    """
    try:
        backbone = model.get_layer(BACKBONE_NAME)
    except ValueError:
        return list(model.trainable_variables)
    inside = {id(variable) for variable in backbone.trainable_variables}
    return [variable for variable in model.trainable_variables if id(variable) not in inside]


def _copy_weights(source: keras.layers.Layer, target: keras.layers.Layer) -> None:
    """Set `target`'s weights to `source`'s, after checking that their shapes agree."""
    source_shapes = [tuple(w.shape) for w in source.weights]
    target_shapes = [tuple(w.shape) for w in target.weights]
    if source_shapes != target_shapes:
        raise ValueError(
            f"layer {source.name!r}: source weight shapes {source_shapes} != target {target_shapes}"
        )
    target.set_weights(source.get_weights())


def count_parameters(model: keras.Model, trainable_only: bool = False) -> int:
    """Number of scalar weights in `model` (all of them, or only the trainable ones)."""
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(math.prod(w.shape) for w in weights))


def count_flops(model: keras.Model, input_shape: tuple) -> int:
    """Multiply-adds of one forward pass on one (H, W, C) image: convolutions and matrix products only.

    Counted on the traced TensorFlow graph (Conv2D, DepthwiseConv2dNative, MatMul, BatchMatMulV2 ops, from
    their static shapes), so layers nested inside custom layers count too. FLOPs in the 2-per-multiply-add
    sense are twice this; BN, activations, pooling and resizing are not counted.
    """
    if len(input_shape) != 3 or any(size is None or size < 1 for size in input_shape):
        raise ValueError(f"input_shape must be a fully known (height, width, channels), got {input_shape!r}")
    spec = tf.TensorSpec((1, *input_shape), tf.float32)
    graph = tf.function(lambda images: model(images, training=False)).get_concrete_function(spec).graph
    return int(sum(_op_multiply_adds(op) for op in graph.get_operations()))


def _op_multiply_adds(op: tf.Operation) -> int:
    """Multiply-adds of one graph op (0 for ops other than convolutions and matrix products)."""
    if op.type not in ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2"):
        return 0
    outputs = math.prod(op.outputs[0].shape.as_list())
    if op.type == "Conv2D":  # kernel (kh, kw, in/groups, out): each output sums kh*kw*in/groups products
        return outputs * math.prod(op.inputs[1].shape.as_list()[:3])
    if op.type == "DepthwiseConv2dNative":  # kernel (kh, kw, in, multiplier): kh*kw products per output
        return outputs * math.prod(op.inputs[1].shape.as_list()[:2])
    transposed = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
    left = op.inputs[0].shape.as_list()
    return outputs * (left[-2] if transposed else left[-1])


def _backbone_spec(backbone: str, width_multiplier: float) -> BackboneSpec:
    """The spec of a named backbone, widths scaled (only "small" may be scaled)."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier!r}")
    if backbone == "resnet50" and width_multiplier != 1.0:
        raise ValueError("width_multiplier applies to backbone='small' only (resnet50 has fixed widths)")
    return BACKBONES[backbone].scaled(width_multiplier)


def _check_num_classes(num_classes: int) -> None:
    """ValueError unless there are at least two classes."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")


def _check_output_stride(output_stride: int) -> None:
    """ValueError unless the output stride is 8, 16 or 32."""
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")


def _check_dilate(dilate: bool) -> bool:
    """`dilate`, or a ValueError unless it is True or False."""
    if not isinstance(dilate, bool):
        raise ValueError(f"dilate must be True or False, got {dilate!r}")
    return dilate


def _check_dropout(dropout: float) -> None:
    """ValueError unless 0 <= dropout < 1."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def _check_weights(weights: str | None, backbone: str) -> None:
    """ValueError unless weights is None, or "imagenet" with the resnet50 backbone."""
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet', got {weights!r}")
    if weights == "imagenet" and backbone != "resnet50":
        raise ValueError(f"weights='imagenet' exists for backbone='resnet50' only, got backbone={backbone!r}")


def _check_input_shape(input_shape: tuple) -> tuple:
    """(H, W, 3) with H and W None (any size) or at least MIN_INPUT_SIZE; ValueError otherwise."""
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape must be (height, width, 3) for RGB images, got {input_shape!r}")
    for size in input_shape[:2]:
        if size is not None and size < MIN_INPUT_SIZE:
            raise ValueError(
                f"input_shape {input_shape!r} is too small: height and width must be at least {MIN_INPUT_SIZE}"
            )
    return tuple(input_shape)


def _check_article_input_shape(input_shape: tuple) -> tuple:
    """The article model needs a fixed (H, W, 3) with H and W divisible by its largest pool window."""
    window = max(ARTICLE_POOL_WINDOWS)
    if (
        len(input_shape) != 3
        or input_shape[-1] != 3
        or any(not size or size % window for size in input_shape[:2])
    ):
        raise ValueError(
            f"input_shape must be a fixed (height, width, 3) with height and width divisible by {window}, "
            f"got {input_shape!r}"
        )
    return tuple(input_shape)
