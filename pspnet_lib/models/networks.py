"""Building a network: `build(name | spec, **overrides)`, the one place that decides which network a spec gets,
PSPNet's and the dilated FCN's heads on the backbone, and `build_pspnet` (the assignments' keyword form)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from pspnet_lib.layers import PyramidPoolingModule, ResizeToMatch
from pspnet_lib.models.article import _build_article_model
from pspnet_lib.models.backbone import _NormSettings, build_backbone
from pspnet_lib.models.imagenet import load_imagenet_resnet50, transfer_resnet50_weights
from pspnet_lib.models.segmentation_model import SegmentationModel, _check_image_size
from pspnet_lib.models.spec import (
    BACKBONE_NAME,
    SPECS,
    NetworkSpec,
    _backbone_spec,
    _check_input_shape,
    _check_weights,
    get_spec,
)


def build(
    spec: str | NetworkSpec,
    *,
    weights: str | keras.Model | None = None,
    name: str | None = None,
    image_size: int | Sequence[int] | None = None,
    **overrides,
) -> keras.Model:
    """The untrained network `spec` describes: a name from `SPECS` ("pspnet50", "pspnet_small", "fcn50",
    "fcn_small", "article") or a `NetworkSpec`, with `overrides` (NetworkSpec fields) applied, e.g.
    ``build("pspnet_small", bins=(1, 2, 4), aux_head=False)``. The model (a `SegmentationModel`) records the spec.

    `weights="imagenet"` starts the resnet50 backbone from Keras' ImageNet ResNet-50 (downloaded once);
    a keras.applications ResNet50 model passed as `weights` is copied from instead (no download).
    `image_size`: the scene size the model is meant for, recorded with it (training passes its own).
    """
    spec = get_spec(spec, **overrides)
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


_PAPER = SPECS["pspnet50"]


def build_pspnet(
    num_classes: int,
    *,
    backbone: str = _PAPER.backbone,
    input_shape: tuple = (None, None, 3),
    bins: Sequence[int] = _PAPER.bins,
    output_stride: int = _PAPER.output_stride,
    aux_head: bool = _PAPER.aux_head,
    weights: str | None = None,
    dropout: float = _PAPER.dropout,
    pooling: str = _PAPER.pooling,
    width_multiplier: float = _PAPER.width,
    name: str = "pspnet",
    reduction_filters: int | None = _PAPER.reduction_filters,
    batch_norm_momentum: float = _PAPER.batch_norm_momentum,
    synchronized_batch_norm: bool = _PAPER.synchronized_batch_norm,
    dilate: bool = _PAPER.dilate,
) -> keras.Model:
    """``build("pspnet50", ...)`` with one keyword argument per setting: the builder of Assignments 3 and 4,
    whose arguments are A4's ablation factors (`width_multiplier` is the spec's `width`, `input_shape` fixes its
    `input_size`); its defaults are the paper's spec."""
    return build(
        "pspnet50", weights=weights, name=name, num_classes=num_classes, backbone=backbone,
        input_size=_input_size(input_shape), bins=bins, output_stride=output_stride, aux_head=aux_head,
        dropout=dropout, pooling=pooling, width=width_multiplier, reduction_filters=reduction_filters,
        batch_norm_momentum=batch_norm_momentum, synchronized_batch_norm=synchronized_batch_norm, dilate=dilate,
    )


def _input_size(input_shape: tuple) -> int | tuple[int, int] | None:
    """A spec's `input_size` for a checked (H, W, 3) `input_shape`: None (any size), a side, or (H, W)."""
    height, width, _ = _check_input_shape(input_shape)
    if height is None and width is None:
        return None
    if height is None or width is None:
        raise ValueError(f"input_shape must fix both height and width or neither, got {input_shape!r}")
    return height if height == width else (height, width)


def _build_segmentation_model(spec: NetworkSpec, name: str, weights: str | keras.Model | None = None) -> keras.Model:
    """Backbone sub-model -> pyramid pooling (PSPNet) -> head (+ aux head), outputs upsampled to the input size."""
    input_shape = spec.input_shape
    norm = _NormSettings(spec.batch_norm_momentum, spec.synchronized_batch_norm)
    widths = _backbone_spec(spec.backbone, spec.width)
    source = load_imagenet_resnet50() if weights == "imagenet" else weights
    image = keras.Input(input_shape, name="image")
    backbone = build_backbone(
        spec.backbone, input_shape=input_shape, output_stride=spec.output_stride, width_multiplier=spec.width,
        batch_norm_momentum=norm.momentum, synchronized_batch_norm=norm.synchronized, dilate=spec.dilate,
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
