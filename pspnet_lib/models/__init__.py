"""Segmentation models: PSPNet and its dilated-FCN baseline on a dilated ResNet-50 or a small teaching backbone,
the source article's model, ImageNet weight transfer, and parameter / multiply-add counters.

Which network to build is one value, a `NetworkSpec`; the course's networks are named specs (`SPECS`: "pspnet50",
"pspnet_small", "fcn50", "fcn_small", "article"), and `build(name | spec, **overrides)` builds any of them, e.g.
``build("pspnet_small", bins=(1, 2, 4))``.

One module per concern, every public name importable from here: `spec` (what to build: `NetworkSpec`, checked,
and the named specs), `networks` (`build` and the heads), `backbone` (the dilated residual backbone), `article`
(the source article's model), `segmentation_model` (what a built model records and saves), `imagenet` (pretrained weights,
new layers), `counting` (parameters, multiply-adds).

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

from pspnet_lib.models.backbone import (
    backbone_channels,
    batch_norm_layers,
    build_backbone,
    receptive_field_of,
    stage_strides_and_dilations,
)
from pspnet_lib.models.counting import (
    count_flops,
    count_parameters,
)
from pspnet_lib.models.imagenet import (
    IMAGENET_WEIGHTS_FILE,
    IMAGENET_WEIGHTS_HOST,
    imagenet_weights_available,
    load_imagenet_resnet50,
    new_layer_variables,
    transfer_resnet50_weights,
)
from pspnet_lib.models.networks import (
    build,
    build_pspnet,
)
from pspnet_lib.models.segmentation_model import (
    SegmentationModel,
    image_size_of,
    is_color_model,
    network_spec,
)
from pspnet_lib.models.spec import (
    ARTICLE_POOL_WINDOWS,
    ARTICLE_REDUCED_MAPS,
    AUX_STAGE,
    BACKBONE_NAME,
    BACKBONES,
    MIN_INPUT_SIZE,
    NETWORKS,
    NOMINAL_STAGE_STRIDES,
    OUTPUT_STRIDES,
    OUTPUTS,
    SPECS,
    STEM_STRIDE,
    BackboneSpec,
    NetworkSpec,
    get_spec,
)

__all__ = [
    "ARTICLE_POOL_WINDOWS",
    "ARTICLE_REDUCED_MAPS",
    "AUX_STAGE",
    "BACKBONES",
    "BACKBONE_NAME",
    "BackboneSpec",
    "IMAGENET_WEIGHTS_FILE",
    "IMAGENET_WEIGHTS_HOST",
    "MIN_INPUT_SIZE",
    "NETWORKS",
    "NOMINAL_STAGE_STRIDES",
    "NetworkSpec",
    "OUTPUTS",
    "OUTPUT_STRIDES",
    "SPECS",
    "STEM_STRIDE",
    "SegmentationModel",
    "backbone_channels",
    "batch_norm_layers",
    "build",
    "build_backbone",
    "build_pspnet",
    "count_flops",
    "count_parameters",
    "get_spec",
    "image_size_of",
    "imagenet_weights_available",
    "is_color_model",
    "load_imagenet_resnet50",
    "network_spec",
    "new_layer_variables",
    "receptive_field_of",
    "stage_strides_and_dilations",
    "transfer_resnet50_weights",
]
