"""A pretrained start: Keras' ImageNet ResNet-50 (is it there? load it, copy it into the dilated backbone), and the
new layers outside the backbone that the paper trains with a 10x learning rate."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from pspnet_lib.config import host_reachable
from pspnet_lib.layers import DilatedResidualBlock
from pspnet_lib.models.spec import BACKBONE_NAME

IMAGENET_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_WEIGHTS_HOST = ("storage.googleapis.com", 443)  # where keras.applications downloads them from


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
