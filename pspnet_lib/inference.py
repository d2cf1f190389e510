"""Prediction and evaluation: single-scale, flip, multi-scale and sliding-window inference, and scoring.

Every path works on class probabilities (B, H, W, C), so test-time tricks simply average them. A model
that paints RGB (the article model) is decoded with `decode_mask` to one-hot probabilities; a pixel it
paints in a void colour gets all zeros and ends up as `IGNORE_LABEL` ("no class"), scored as a miss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from pspnet_lib.data import IGNORE_LABEL, NUM_CLASSES, DataError, decode_mask, ids_to_colors
from pspnet_lib.data.palette import COLOR_TABLE, nearest_colors
from pspnet_lib.metrics import SegmentationScores, confusion_matrix

Predictor = Callable[[np.ndarray], np.ndarray]

# A 2:1 image is a Kaggle pair only when its right half looks like a colour label map: at least
# PAIR_MIN_LABEL_FRACTION of its pixels lie within PAIR_COLOUR_DISTANCE (RGB) of a Cityscapes label colour,
# and at least PAIR_MIN_COLOURS of those colours each cover PAIR_MIN_COLOUR_SHARE of it. The real pairs
# have ~82% of label pixels within 15; photos (real or synthetic) have far fewer, noise and gradients ~2%,
# and a dark photo, nearly all black, has one colour only.
PAIR_COLOUR_DISTANCE = 15.0
PAIR_MIN_LABEL_FRACTION = 0.6
PAIR_MIN_COLOURS = 3
PAIR_MIN_COLOUR_SHARE = 0.01
PAIR_SAMPLE_SIDE = 256  # the half is subsampled to about this many pixels a side before measuring
LAYOUTS = ("auto", "pair", "photo")


def check_images(images: np.ndarray) -> np.ndarray:
    """`images` as float32 (B, H, W, 3); ValueError for any other shape."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be float32 RGB of shape (B, H, W, 3) in [0, 1], got shape {images.shape}")
    return images


def is_colour_model(model: keras.Model) -> bool:
    """True for a model that paints RGB (the article model, maybe flattened) instead of predicting logits."""
    output_shape = model.outputs[0].shape
    return len(output_shape) == 2 or output_shape[-1] == 3


def main_output(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The model's main output (B, H, W, C) for `images`: first output of two, flat RGB reshaped to the image."""
    outputs = model(images, training=False)
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, list | tuple):
        outputs = outputs[0]
    output = np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32)
    return output.reshape(images.shape[:3] + (3,)) if output.ndim == 2 else output


def colours_to_probabilities(rgb: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """RGB output in [0, 1] -> one-hot class probabilities via `decode_mask`; void colours give all zeros."""
    ids = decode_mask(np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8))
    return (ids[..., None] == np.arange(num_classes)).astype(np.float32)


def class_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Per-pixel class probabilities (B, H, W, C) of one forward pass (softmax of logits, or decoded RGB)."""
    output = main_output(model, check_images(images))
    if is_colour_model(model):
        return colours_to_probabilities(output)
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


def evaluate(model: keras.Model, dataset, num_classes: int = NUM_CLASSES, **options) -> SegmentationScores:
    """Scores of `model` over a dataset of (image, label) batches; `options` as for `predict_probabilities`."""
    colour_model = is_colour_model(model)
    total = None
    for images, labels in dataset:
        predictions = predict_ids(model, np.asarray(images), **options)
        counts = confusion_matrix(np.asarray(labels), predictions, num_classes, void_predictions=colour_model)
        total = counts if total is None else total + counts
    if total is None:
        raise ValueError("the evaluation dataset is empty")
    return SegmentationScores.from_confusion(total)


def load_model(path: Path) -> keras.Model:
    """A saved .keras model (without its training setup); DataError when the file is missing or unreadable."""
    from pspnet_lib import models  # noqa: F401  (registers the custom layers the file refers to)

    path = Path(path)
    if not path.is_file():
        raise DataError(f"model file {path} does not exist (expected a .keras file written by training)")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, KeyError, TypeError) as error:
        raise DataError(f"could not load model {path}: {error}") from error


def label_colour_shares(rgb: np.ndarray, max_distance: float = PAIR_COLOUR_DISTANCE) -> np.ndarray:
    """Share of the pixels of `rgb` (H, W, 3) uint8 within `max_distance` of each Cityscapes label colour.

    One entry per row of the data palette's colour table (train colours, then void colours); a pixel counts
    for its nearest colour only. Large images are subsampled on a regular grid.
    """
    step = max(1, max(rgb.shape[:2]) // PAIR_SAMPLE_SIDE)
    pixels = rgb[::step, ::step].reshape(-1, 3)
    nearest, squared_distance = nearest_colors(pixels)
    near = squared_distance <= max_distance**2
    return np.bincount(nearest[near], minlength=len(COLOR_TABLE)) / max(1, len(pixels))


def looks_like_label_map(rgb: np.ndarray) -> bool:
    """True when `rgb` (H, W, 3) uint8 is mostly Cityscapes label colours, several of them."""
    shares = label_colour_shares(rgb)
    return bool(
        shares.sum() >= PAIR_MIN_LABEL_FRACTION and (shares >= PAIR_MIN_COLOUR_SHARE).sum() >= PAIR_MIN_COLOURS
    )


def is_kaggle_pair(pixels: np.ndarray) -> bool:
    """True for a photo|colour-labels pair: width = 2 x height and a right half that looks like a label map."""
    height, width = pixels.shape[:2]
    return width == 2 * height and looks_like_label_map(pixels[:, height:])


def read_rgb(path: Path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); DataError naming the file when it cannot be read."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(f"cannot read image {path}: expected a JPEG or PNG photo or Kaggle pair ({error})") from error


def load_photo(path: Path, layout: str = "auto") -> np.ndarray:
    """An image file as float32 RGB (H, W, 3) in [0, 1]; of a Kaggle pair, its left half (the photo).

    `layout`: "auto" takes the left half only when `is_kaggle_pair` says so, "pair" always (the image
    must be twice as wide as high), "photo" never.
    """
    return read_photo(path, layout)[0]


def read_photo(path: Path, layout: str = "auto") -> tuple[np.ndarray, bool]:
    """`load_photo`'s photo, and whether it is the left half of a pair (True) or the whole image."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    path = Path(path)
    pixels = read_rgb(path)
    height, width = pixels.shape[:2]
    if layout == "pair" and width != 2 * height:
        raise DataError(
            f"{path} is {width}x{height}: a Kaggle pair must be twice as wide as high (photo left, labels right)"
        )
    is_pair = layout == "pair" or (layout == "auto" and is_kaggle_pair(pixels))
    if is_pair:
        pixels = pixels[:, :height]
    return pixels.astype(np.float32) / 255.0, is_pair


def overlay_colours(image: np.ndarray, ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 RGB blend of `image` (float [0, 1]) with the palette colours of `ids`; ignored pixels left as is."""
    if image.shape[:2] != ids.shape:
        raise ValueError(f"image {image.shape[:2]} and ids {ids.shape} must have the same height and width")
    photo = np.clip(image, 0, 1) * 255.0
    blended = (1 - alpha) * photo + alpha * ids_to_colors(ids).astype(np.float32)
    blended = np.where((ids == IGNORE_LABEL)[..., None], photo, blended)
    return np.rint(blended).astype(np.uint8)
