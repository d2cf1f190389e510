"""Prediction and evaluation: single-scale, flip, multi-scale and sliding-window inference, and scoring.

Every path works on class probabilities (B, H, W, C), so test-time tricks simply average them. A model
that paints RGB (the article model) is scored by the nearest of the 19 class colours, with no distance limit
and no border rule: `decode_mask` is the decoder for JPEG label files, and its limit and border rule would
turn a model's blurred, off-palette colours into "no class" and so measure the decoder, not the model.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pspnet_lib import models, reference
from pspnet_lib.data import IGNORE_LABEL, NUM_CLASSES, PALETTE, DataError

# Re-exported for notebooks and the CLI: photos are read in `data.photos`, overlay colours live in `data.palette`.
from pspnet_lib.data.palette import EVALUATION_LABELS, is_border_aware, overlay_colors
from pspnet_lib.data.photos import is_kaggle_pair, load_photo, read_photo  # noqa: F401
from pspnet_lib.metrics import SegmentationScores, confusion_matrix

Predictor = Callable[[np.ndarray], np.ndarray]
overlay_colours = overlay_colors  # deprecated spelling, kept for old notebooks



# `predict` shrinks a larger photo to this many pixels on its longer side (a 12000x9000 photo would take hours on a
# CPU at full size; the course's networks are trained on 256 px scenes).
MAX_PREDICT_SIDE = 2048


def fit_within(photo: np.ndarray, max_side: int = MAX_PREDICT_SIDE) -> np.ndarray:
    """`photo` (H, W, 3) shrunk (area-averaged) so that its longer side is at most `max_side`; unchanged when it is."""
    height, width = photo.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return photo
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return tf.image.resize(photo, size, method="area").numpy()


def check_images(images: np.ndarray) -> np.ndarray:
    """`images` as float32 (B, H, W, 3); ValueError for any other shape."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be float32 RGB of shape (B, H, W, 3) in [0, 1], got shape {images.shape}")
    return images


def main_output(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The model's main output (B, H, W, C) for `images`: first output of two, flat RGB reshaped to the image."""
    outputs = model(images, training=False)
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, list | tuple):
        outputs = outputs[0]
    output = np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32)
    return output.reshape(images.shape[:3] + (3,)) if output.ndim == 2 else output


def nearest_class_colors(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] (..., 3) -> the train id (...) of the nearest of the class colours (`PALETTE`), no limit."""
    squared = ((np.asarray(rgb, np.float32)[..., None, :] * 255.0 - PALETTE.astype(np.float32)) ** 2).sum(-1)
    return squared.argmin(-1).astype(np.uint8)


def colors_to_probabilities(rgb: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """RGB output in [0, 1] -> one-hot class probabilities of the nearest class colour (never void)."""
    ids = nearest_class_colors(rgb)
    return (ids[..., None] == np.arange(num_classes)).astype(np.float32)


def class_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Per-pixel class probabilities (B, H, W, C) of one forward pass (softmax of logits, or decoded RGB)."""
    output = main_output(model, check_images(images))
    if models.is_color_model(model):
        return colors_to_probabilities(output)
    return np.asarray(keras.ops.softmax(output, axis=-1), dtype=np.float32)


def flip_averaged(predict: Predictor, images: np.ndarray) -> np.ndarray:
    """Mean of `predict(images)` and the un-flipped `predict` of the left-right mirrored images."""
    mirrored = predict(images[:, :, ::-1])[:, :, ::-1]
    return (predict(images) + mirrored) / 2.0


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a (B, H, W, C) array (no-op at the same size)."""
    if array.shape[1:3] == (height, width):
        return array
    return tf.image.resize(array, (height, width), method="bilinear").numpy()


def multi_scale(predict: Predictor, images: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """Mean over `scales` of `predict` on the rescaled images, resized back to the input size."""
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be positive numbers, got {scales}")
    height, width = images.shape[1:3]
    total = None
    for scale in scales:
        scaled = resize(images, max(1, round(height * scale)), max(1, round(width * scale)))
        probabilities = resize(predict(scaled), height, width)
        total = probabilities if total is None else total + probabilities
    return total / len(scales)


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of size `window` every `stride` pixels, the last one flush with the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def sliding_window(
    predict: Predictor, images: np.ndarray, window: tuple[int, int], overlap: float = 1 / 3
) -> np.ndarray:
    """`predict` on overlapping windows, probabilities averaged where windows overlap.

    An image smaller than the window is zero-padded at the bottom/right and the padding cropped away.
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    window_h, window_w = window
    height, width = images.shape[1:3]
    padded = np.pad(
        images, ((0, 0), (0, max(0, window_h - height)), (0, max(0, window_w - width)), (0, 0))
    )
    total, counts = None, np.zeros(padded.shape[1:3], np.float32)
    for top in window_starts(padded.shape[1], window_h, max(1, math.ceil(window_h * (1 - overlap)))):
        for left in window_starts(padded.shape[2], window_w, max(1, math.ceil(window_w * (1 - overlap)))):
            tile = predict(padded[:, top : top + window_h, left : left + window_w])
            if total is None:
                total = np.zeros(padded.shape[:3] + tile.shape[-1:], np.float32)
            total[:, top : top + window_h, left : left + window_w] += tile
            counts[top : top + window_h, left : left + window_w] += 1
    return (total / counts[None, :, :, None])[:, :height, :width]


def check_input_size(model: keras.Model, images: np.ndarray) -> None:
    """ValueError when a library network (any input size) gets images smaller than `models.MIN_INPUT_SIZE`.

    Building such a network for a fixed smaller size is refused; predicting on smaller images is too, rather
    than returning a prediction made from less than one feature cell.
    """
    spec = models.network_spec(model)
    if spec is None or spec.network == "article":
        return
    height, width = images.shape[1:3]
    if min(height, width) < models.MIN_INPUT_SIZE:
        raise ValueError(
            f"images are {height}x{width} pixels: {model.name} needs at least "
            f"{models.MIN_INPUT_SIZE}x{models.MIN_INPUT_SIZE} (resize or pad them first)"
        )


def fixed_input_size(model: keras.Model) -> tuple[int, int] | None:
    """(H, W) when the model only accepts one input size (the article model), else None."""
    height, width = model.inputs[0].shape[1:3]
    return (height, width) if height and width else None


def predict_probabilities(
    model: keras.Model,
    images: np.ndarray,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    window: tuple[int, int] | None = None,
    overlap: float = 1 / 3,
) -> np.ndarray:
    """Class probabilities with optional flip, multi-scale and sliding-window inference (in that nesting).

    A model with a fixed input size always runs in windows of that size.
    """
    images = check_images(images)
    check_input_size(model, images)
    window = window or fixed_input_size(model)

    def single(batch: np.ndarray) -> np.ndarray:
        return flip_averaged(lambda x: class_probabilities(model, x), batch) if flip else class_probabilities(model, batch)

    def tiled(batch: np.ndarray) -> np.ndarray:
        return sliding_window(single, batch, window, overlap) if window else single(batch)

    return multi_scale(tiled, images, scales)


def probabilities_to_ids(probabilities: np.ndarray) -> np.ndarray:
    """Most probable class per pixel as uint8; `IGNORE_LABEL` where no class has any probability."""
    ids = probabilities.argmax(-1).astype(np.uint8)
    return np.where(probabilities.max(-1) > 0, ids, np.uint8(IGNORE_LABEL))


def predict_ids(model: keras.Model, images: np.ndarray, **options) -> np.ndarray:
    """Train ids (B, H, W) uint8 predicted for `images`; `options` as for `predict_probabilities`."""
    return probabilities_to_ids(predict_probabilities(model, images, **options))


def evaluate(
    model: keras.Model, dataset, num_classes: int = NUM_CLASSES, labels: str | None = None, **options
) -> SegmentationScores:
    """Scores of `model` over a dataset of (image, label) batches; `options` as for `predict_probabilities`.

    Every pixel whose label is not `IGNORE_LABEL` counts. `labels` names the decoding the dataset's labels
    went through (`make_dataset` without augmentation: `EVALUATION_LABELS`), recorded in the scores;
    `evaluate_split` builds the dataset and records it for you.
    """
    color_model = models.is_color_model(model)
    total = None
    for images, targets in dataset:
        predictions = predict_ids(model, np.asarray(images), **options)
        counts = confusion_matrix(np.asarray(targets), predictions, num_classes, void_predictions=color_model)
        total = counts if total is None else total + counts
    if total is None:
        raise ValueError("the evaluation dataset is empty")
    return SegmentationScores.from_confusion(total, labels)


def evaluate_split(
    model: keras.Model,
    root: str | Path,
    split: str = "val",
    image_size: int | tuple[int, int] = 256,
    batch_size: int = 4,
    limit: int | None = None,
    skip_bad: bool = False,
    labels: str = EVALUATION_LABELS,
    **options,
) -> SegmentationScores:
    """Scores of `model` on the pairs of `split` under `root`, whole scenes at `image_size`, in file order.

    `labels` is the label decoding scored against: "standard" (the default, `EVALUATION_LABELS`) counts every
    labelled pixel as Cityscapes' own evaluation does; "border-aware" leaves JPEG blends at class borders out.
    """
    from pspnet_lib.data import make_dataset

    is_border_aware(labels)  # an unknown name fails here, before any file is read
    dataset = make_dataset(
        root, split, image_size=image_size, batch_size=batch_size, augment=False, shuffle=False, limit=limit,
        skip_bad=skip_bad, labels=labels,
    )
    return evaluate(model, dataset, labels=labels, **options)


def load_model(path: str | Path) -> keras.Model:
    """A saved .keras model (without its training setup), or the model the library ships under that name (its
    SHA-256 checked: `reference.resolve_model`); DataError when the file is missing or unreadable."""
    try:
        path = reference.resolve_model(path)
    except ValueError as error:
        raise DataError(str(error)) from None
    if not path.is_file():
        raise DataError(f"model file {path} does not exist (expected a .keras file written by training)")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not a readable .keras model (a .keras file is a zip archive): is it damaged?")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} is not a readable .keras model: {str(error).splitlines()[0][:200]}") from error
