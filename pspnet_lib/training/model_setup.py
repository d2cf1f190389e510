"""The model a run trains and how it is compiled: the network of the recipe, ImageNet weights, losses and metrics.

`build_model` builds the recipe's network (batch norm synchronised over replicas), `load_pretrained_source` the
ImageNet ResNet-50 a fresh `weights="imagenet"` run starts from, `compile_for_training` the loss of every output.
"""

from __future__ import annotations

import keras

from pspnet_lib import models
from pspnet_lib.metrics import segmentation_metrics
from pspnet_lib.training.config import TrainConfig
from pspnet_lib.training.losses import AUX_WEIGHT, PaletteColorMSE, segmentation_loss
from pspnet_lib.training.run_folder import is_resuming


class PretrainedWeightsUnavailable(RuntimeError):
    """The ImageNet weights a run asked for could not be loaded (offline, say); nothing was trained."""


def monitor_name(model: keras.Model) -> str:
    """The validation value the best checkpoint follows: mIoU of the main output (loss for RGB models)."""
    if models.is_color_model(model):
        return "val_loss"
    prefix = f"{model.output_names[0]}_" if len(model.outputs) > 1 else ""
    return f"val_{prefix}miou"


def compile_for_training(
    model: keras.Model, optimizer, aux_weight: float = AUX_WEIGHT, jit_compile: bool = False, **loss_options
) -> None:
    """Compile with the right loss on every output (cross-entropy, or the colour MSE for a model that paints
    RGB), the auxiliary output weighted `aux_weight`; mIoU and pixel accuracy for class logits. `loss_options`
    go to `segmentation_loss` (`recipes.loss_options` of a recipe): the main output's cross-entropy gets
    `jaccard_weight` x the soft Jaccard loss on top, the auxiliary head's does not."""
    names = model.output_names
    if models.is_color_model(model):
        losses, metrics = {name: PaletteColorMSE() for name in names}, None
    else:
        aux_options = {**loss_options, "jaccard_weight": 0.0}
        losses = {name: segmentation_loss(**(loss_options if name == names[0] else aux_options)) for name in names}
        metrics = {names[0]: segmentation_metrics(model.outputs[0].shape[-1])}
    model.compile(
        optimizer=optimizer,
        loss=losses,
        loss_weights={names[0]: 1.0, **{name: aux_weight for name in names[1:]}},
        metrics=metrics,
        jit_compile=jit_compile,
    )
    build_training_state(model)


def build_training_state(model: keras.Model) -> None:
    """Create the compiled model's loss trackers, metrics and optimizer slots now, from one blank image.

    Keras' TensorFlow trainer leaves them to the first trace of the training step when no distribution
    strategy is set; TensorFlow then traces the step a second time without them, which doubles fit's
    start-up (about 7 s for the small PSPNet on a CPU). A strategy's own symbolic build covers that case.
    fit resets every metric at the start of each epoch, so the blank image leaves no trace in the results.
    """
    import tensorflow as tf

    if tf.distribute.has_strategy():
        return
    height, width = (size or 2 * models.MIN_INPUT_SIZE for size in model.input_shape[1:3])
    image = keras.ops.zeros((1, height, width, model.input_shape[-1]))
    predictions = model(image, training=False)
    first = predictions[0] if isinstance(predictions, (list, tuple)) else predictions
    labels = keras.ops.zeros(keras.ops.shape(first)[:3], dtype="int32")
    targets = label_per_output(model, labels)
    model.compute_loss(image, targets, predictions, training=False)
    model.compute_metrics(image, targets, predictions, sample_weight=None)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.reset_metrics()


def label_per_output(model: keras.Model, label):
    """The target of every output of `model`: `label` itself for one output, else a dict of it by output name."""
    if len(model.outputs) == 1:
        return label
    return {name: label for name in model.output_names}


def training_targets(dataset, model: keras.Model):
    """`dataset` of (image, label) with the label repeated for every output of `model` (main and auxiliary)."""
    if len(model.outputs) == 1:
        return dataset
    return dataset.map(lambda image, label: (image, label_per_output(model, label)))


def build_model(config: TrainConfig, imagenet_source: keras.Model | None = None, replicas: int = 1) -> keras.Model:
    """`models.build(config.recipe.spec)`; with several `replicas` every batch norm shares its statistics across them.

    With `imagenet_source` (a keras.applications ResNet50, see `load_pretrained_source`) its weights are
    copied into the backbone.
    """
    spec = config.recipe.spec
    spec = spec.replace(synchronized_batch_norm=True) if replicas > 1 else spec
    return models.build(spec, weights=imagenet_source, image_size=config.recipe.image_size)


def load_pretrained_source(config: TrainConfig) -> keras.Model | None:
    """The ImageNet ResNet-50 a fresh `weights="imagenet"` run starts from (None otherwise, or when resuming).

    Keras downloads the weights once (~95 MB). When they are not cached and their server cannot be reached
    (`models.imagenet_weights_available`), or the download fails, this raises `PretrainedWeightsUnavailable`
    at once, before any data is loaded.
    """
    if config.recipe.weights != "imagenet" or is_resuming(config):
        return None
    without = "To train without them, leave weights unset (--weights none)."
    if not models.imagenet_weights_available():
        raise PretrainedWeightsUnavailable(
            "weights='imagenet' (--weights imagenet): the ImageNet ResNet-50 weights are not in the Keras cache "
            "and their download server cannot be reached. Connect to the internet once, or copy "
            f"{models.IMAGENET_WEIGHTS_FILE} into ~/.keras/models/ (or $KERAS_HOME/models/). "
            + without
        )
    try:
        return models.load_imagenet_resnet50()
    except RuntimeError as error:
        raise PretrainedWeightsUnavailable(f"weights='imagenet' (--weights imagenet): {error}. {without}") from error

