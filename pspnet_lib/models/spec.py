"""What to build, as one value: `NetworkSpec` (network, backbone, pyramid, heads, batch norm, classes, input
size), the backbones' widths and depths (`BACKBONES`), the check of every setting, next to it, and the named specs
(`SPECS`, `get_spec`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from pspnet_lib.data.palette import NUM_CLASSES
from pspnet_lib.layers import (
    DEFAULT_BATCH_NORM_MOMENTUM,
    POOLING_TYPES,
    check_batch_norm_momentum,
    check_bins,
)

OUTPUT_STRIDES = (8, 16, 32)
MIN_INPUT_SIZE = 32  # the smallest side every backbone maps to at least one feature cell, at any output stride
STEM_STRIDE = 4
NOMINAL_STAGE_STRIDES = (1, 2, 2, 2)  # conv2..conv5 of a ResNet, after the stride-4 stem
AUX_STAGE = 2  # index of the stage feeding the auxiliary head (conv4 of a ResNet)
ARTICLE_POOL_WINDOWS = (2, 4, 8)
ARTICLE_REDUCED_MAPS = 64
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
        """A copy with `changes` applied (and checked); ValueError naming the fields for an unknown setting."""
        _check_setting_names(changes)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The spec as JSON-friendly values (bins as a list)."""
        return {**dataclasses.asdict(self), "bins": list(self.bins)}

    @classmethod
    def from_dict(cls, values: dict) -> NetworkSpec:
        """The spec `as_dict` wrote; ValueError naming unknown keys."""
        _check_setting_names(values)
        return cls(**{**values, **({"bins": tuple(values["bins"])} if "bins" in values else {})})

    @property
    def input_shape(self) -> tuple:
        """(H, W, 3) of the model's input, H and W None for any size."""
        size = self.input_size
        return (*size, 3) if isinstance(size, tuple) else (size, size, 3)


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


SPECS = MappingProxyType({
    "pspnet50": NetworkSpec("pspnet", "resnet50"),  # the paper's PSPNet-50: bins 1-2-3-6, aux head, output stride 8
    "pspnet_small": NetworkSpec("pspnet", "small"),  # the classroom PSPNet: same design, ~1 M parameters
    "fcn50": NetworkSpec("fcn", "resnet50"),  # the paper's baseline: PSPNet-50 without the pyramid pooling module
    "fcn_small": NetworkSpec("fcn", "small"),  # the classroom PSPNet without the pyramid pooling module
    "article": NetworkSpec("article", input_size=256, flat_output=True),  # the source article's model, as published
})


def get_spec(spec: str | NetworkSpec, **overrides) -> NetworkSpec:
    """The spec named `spec` (a key of `SPECS`), or `spec` itself, with `overrides` (NetworkSpec fields) applied.

    ValueError naming the choices for an unknown name, the fields for an unknown setting, or the bad setting.
    """
    if isinstance(spec, str):
        if spec not in SPECS:
            raise ValueError(f"unknown network {spec!r}: the named specs are {sorted(SPECS)}")
        spec = SPECS[spec]
    elif not isinstance(spec, NetworkSpec):
        raise ValueError(f"spec must be one of {sorted(SPECS)} or a models.NetworkSpec, got {type(spec).__name__}")
    return spec.replace(**overrides) if overrides else spec


def _check_setting_names(settings: dict) -> None:
    """ValueError naming NetworkSpec's fields unless every key of `settings` is one."""
    fields = [field.name for field in dataclasses.fields(NetworkSpec)]
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise ValueError(f"unknown network spec settings {unknown}: the settings are {fields}")
