"""Losses: cross-entropy on logits that skips ignored pixels, and the article model's colour MSE."""

from __future__ import annotations

import keras
import numpy as np

from pspnet_lib.data import IGNORE_LABEL, PALETTE

# Weight of the auxiliary head's loss, as in the PSPNet paper.
AUX_WEIGHT = 0.4


def segmentation_loss() -> keras.losses.Loss:
    """Sparse categorical cross-entropy from logits, averaged over the pixels not labelled `IGNORE_LABEL`."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE_LABEL)


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
