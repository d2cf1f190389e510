"""Losses: cross-entropy on logits that skips ignored pixels (optionally plus a soft Jaccard term), and the
article model's colour MSE."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pspnet_lib.data import IGNORE_LABEL, PALETTE

# Weight of the auxiliary head's loss, as in the PSPNet paper.
AUX_WEIGHT = 0.4


def segmentation_loss(jaccard_weight: float = 0.0) -> keras.losses.Loss:
    """Sparse categorical cross-entropy from logits, averaged over the pixels not labelled `IGNORE_LABEL`;
    with `jaccard_weight` > 0, plus that much of the soft Jaccard loss (`CrossEntropyJaccard`)."""
    if jaccard_weight == 0:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_LABEL)
    return CrossEntropyJaccard(jaccard_weight)


def _labelled_pixels(labels, logits) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Flat (labels with ignored pixels set to 0, float32 logits (N, classes), 1.0 where labelled (N,))."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    labelled = tf.not_equal(labels, IGNORE_LABEL)
    logits = tf.reshape(tf.cast(logits, tf.float32), [-1, tf.shape(logits)[-1]])
    return tf.where(labelled, labels, 0), logits, tf.cast(labelled, tf.float32)


def soft_jaccard_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """1 - the mean soft IoU of the classes present in the batch's labels: softmax probabilities stand in for
    the predicted masks, so the score mIoU counts becomes differentiable; ignored pixels take no part."""
    return _soft_jaccard(*_labelled_pixels(labels, logits))


def _soft_jaccard(labels: tf.Tensor, logits: tf.Tensor, labelled: tf.Tensor) -> tf.Tensor:
    """`soft_jaccard_loss` of pixels already flattened by `_labelled_pixels`."""
    probabilities = tf.nn.softmax(logits) * labelled[:, None]
    truth = tf.one_hot(labels, tf.shape(logits)[-1]) * labelled[:, None]
    intersection = tf.reduce_sum(probabilities * truth, axis=0)
    union = tf.reduce_sum(probabilities + truth, axis=0) - intersection
    present = tf.cast(tf.reduce_sum(truth, axis=0) > 0, tf.float32)
    soft_iou = tf.math.divide_no_nan(tf.reduce_sum(present * intersection / tf.maximum(union, 1e-6)), tf.reduce_sum(present))
    return tf.where(tf.reduce_sum(present) > 0, 1.0 - soft_iou, 0.0)


@keras.saving.register_keras_serializable(package="pspnet_lib")
class CrossEntropyJaccard(keras.losses.Loss):
    """Cross-entropy over labelled pixels + `jaccard_weight` x `soft_jaccard_loss`, one value per batch.

    Cross-entropy scores every pixel alike, so road (~40 % of pixels) dominates it; mIoU scores every class
    alike. The soft Jaccard term (Rahman & Wang 2016) pulls each class present in the batch towards a high IoU,
    whatever its size. The CPU recipe adds it to the main output's loss (bench/README.md: the table of issue 18).
    """

    def __init__(self, jaccard_weight: float = 1.0, name: str = "cross_entropy_jaccard", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        if not jaccard_weight >= 0:
            raise ValueError(f"jaccard_weight must be >= 0, got {jaccard_weight!r}")
        self.jaccard_weight = float(jaccard_weight)

    def call(self, y_true, y_pred):
        """The batch's loss (a scalar: the Jaccard term is defined on the whole batch, not per image)."""
        labels, logits, labelled = _labelled_pixels(y_true, y_pred)
        pixel_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        cross_entropy = tf.math.divide_no_nan(tf.reduce_sum(pixel_losses * labelled), tf.reduce_sum(labelled))
        return cross_entropy + self.jaccard_weight * _soft_jaccard(labels, logits, labelled)

    def get_config(self) -> dict:
        """The constructor's arguments, so a saved model reloads with its loss."""
        return {**super().get_config(), "jaccard_weight": self.jaccard_weight}


@keras.saving.register_keras_serializable(package="pspnet_lib")
class PaletteColorMSE(keras.losses.Loss):
    """MSE between an RGB output in [0, 1] and the palette colour of each label; ignored pixels skipped.

    The article model paints the colour mask instead of predicting logits. Its targets stay train ids, so
    it shares the data pipeline with the other models; each image's loss is its mean over labelled pixels.
    """

    def __init__(self, name: str = "palette_color_mse", **kwargs) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        """Per-image mean squared colour error over labelled pixels, shape (B,)."""
        ids = keras.ops.cast(y_true, "int32")
        labelled = keras.ops.not_equal(ids, IGNORE_LABEL)
        palette = keras.ops.convert_to_tensor(PALETTE.astype(np.float32) / 255.0)
        target = keras.ops.take(palette, keras.ops.where(labelled, ids, 0), axis=0)
        y_pred = keras.ops.cast(y_pred, "float32")
        squared = keras.ops.mean(keras.ops.square(y_pred - target), axis=-1)
        weights = keras.ops.cast(labelled, "float32")
        spatial_axes = tuple(range(1, len(squared.shape)))
        return keras.ops.divide_no_nan(
            keras.ops.sum(squared * weights, axis=spatial_axes), keras.ops.sum(weights, axis=spatial_axes)
        )


# The old spelling: notebooks may still say PaletteColourMSE, and .keras files saved before name it so.
PaletteColourMSE = PaletteColorMSE
keras.saving.get_custom_objects()["pspnet_lib>PaletteColourMSE"] = PaletteColorMSE
