"""The tf.data input pipeline: pair files -> (image float32 [0, 1] (B, H, W, 3), label int32 (B, H, W)).

Stages: read and decode each file once (JPEG, colour -> class ids), resize it to the working size
(labels with NEAREST; training crops may instead be cut from the files' own resolution) and keep it as
uint8; cache those small pairs (in memory when they fit a budget, or in a file), so later epochs skip the
JPEG and colour work; shuffle; batch; then augment whole batches in one op (random scale, pad, crop and
flip of image and label through the same boxes of `tf.image.crop_and_resize`). The random numbers come
from a seeded stream that is re-drawn every epoch (`tf.data.Dataset.random(rerandomize_each_iteration=True)`):
each epoch sees new crops, and two runs with one seed see the same ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import tensorflow as tf

from pspnet_lib.data.locate import resolve_dataset_dirs
from pspnet_lib.data.pairs import evenly_spaced, list_pairs, photo_size, usable_pairs
from pspnet_lib.data.palette import (
    DEFAULT_MAX_DISTANCE,
    IGNORE_LABEL,
    LABEL_DECODINGS,
    TRAINING_LABELS,
    decode_mask,
    is_border_aware,
)

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SCALE_RANGE = (0.5, 2.0)  # random scaling of training scenes, relative to the crop size
MEMORY_CACHE_BUDGET_BYTES = 2 * 2**30  # cache=None keeps the decoded pairs in memory up to this size


def image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """`image_size` as (height, width); an int means a square."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(
            f"image_size must be a positive int or (height, width) of positive ints, got {image_size!r}"
        )
    return size


def check_scale_range(scale_range: tuple[float, float]) -> tuple[float, float]:
    """`scale_range` as (low, high) with 0 < low <= high."""
    low, high = scale_range
    if not 0 < low <= high:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
    return float(low), float(high)


def read_halves(path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Decode one pair file into its two halves: (photo uint8 (h, w, 3), colour label map uint8 (h, w, 3))."""
    pixels = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    half = tf.shape(pixels)[1] // 2
    return pixels[:, :half], pixels[:, half : 2 * half]


def load_pair(
    path: tf.Tensor, max_distance: float, border_aware: bool = LABEL_DECODINGS[TRAINING_LABELS]
) -> tuple[tf.Tensor, tf.Tensor]:
    """Read one pair file: (photo uint8 (h, w, 3), train ids uint8 (h, w)), labels decoded by `decode_mask`."""
    photo, colors = read_halves(path)
    return photo, decode_mask(colors, max_distance, border_aware)


def resize_photo(image: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Resize a photo (float) bilinearly: smooth, as a camera at that resolution would see it."""
    return tf.image.resize(image, size, method="bilinear")


def resize_pair(image: tf.Tensor, label: tf.Tensor, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Resize the image bilinearly and the label with nearest neighbour (no new label values)."""
    resized_image = resize_photo(image, size)
    resized_label = tf.image.resize(label[..., None], size, method="nearest")[..., 0]
    return resized_image, resized_label


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """Float pixel values in [0, 255] rounded to uint8."""
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def load_scene(
    path: tf.Tensor, size: tuple[int, int], max_distance: float, border_aware: bool = LABEL_DECODINGS[TRAINING_LABELS]
) -> tuple[tf.Tensor, tf.Tensor]:
    """One pair file at the working `size`: (photo uint8 (H, W, 3), train ids uint8 (H, W)), ready to cache."""
    photo, ids = load_pair(path, max_distance, border_aware)
    photo, ids = resize_pair(tf.cast(photo, tf.float32), ids, size)
    return to_uint8(photo), ids


def load_scene_photo(path: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """The photo of one pair file as `load_scene` makes it (uint8 at `size`), without decoding the labels."""
    return to_uint8(resize_photo(tf.cast(read_halves(path)[0], tf.float32), size))


def random_boxes(
    count: tf.Tensor,
    size: tuple[int, int],
    scale_range: tuple[float, float],
    seed: tf.Tensor,
    scale_base: tuple[int, int],
) -> tf.Tensor:
    """`count` boxes for `tf.image.crop_and_resize`: random scale of `scale_base`, `size` crop, flip (x1 > x2).

    Box coordinates are normalised so that 0 and 1 are a scene's first and last pixel; a scene scaled to
    `scaled` pixels has its pixel j at j / (scaled - 1), so parts of a crop beyond 1 are padding.
    """
    scale_seed, crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    scale = tf.random.stateless_uniform([count, 1], scale_seed, minval=scale_range[0], maxval=scale_range[1])
    scaled = tf.maximum(tf.round(tf.constant(scale_base, tf.float32) * scale), 2.0)  # (count, 2): h, w
    out = tf.constant(size, tf.float32)
    room = tf.maximum(scaled - out, 0.0)
    start = tf.floor(tf.random.stateless_uniform([count, 2], crop_seed) * (room + 1.0))
    first, last = start / (scaled - 1.0), (start + out - 1.0) / (scaled - 1.0)
    flip = tf.random.stateless_uniform([count], flip_seed) < 0.5
    left = tf.where(flip, last[:, 1], first[:, 1])
    right = tf.where(flip, first[:, 1], last[:, 1])
    return tf.stack([first[:, 0], left, last[:, 0], right], axis=1)


def augment_batch(
    images: tf.Tensor,
    labels: tf.Tensor,
    size: tuple[int, int],
    scale_range: tuple[float, float],
    seed: tf.Tensor,
    scale_base: tuple[int, int] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Scale each scene of a batch to `scale_base` (default `size`) times a random scale, pad, crop `size`, flip.

    Image and label go through the same box: the image bilinearly (padding 0), the label with NEAREST
    (padding IGNORE_LABEL). Boxes are relative to the scene, so scenes stored larger than `scale_base` give the
    same crops, sampled from more pixels. Returns (float32 images in the input's range, uint8 labels).
    """
    count = tf.shape(labels)[0]
    boxes = random_boxes(count, size, scale_range, seed, scale_base or size)
    which = tf.range(count)
    images = tf.image.crop_and_resize(images, boxes, which, size, method="bilinear", extrapolation_value=0.0)
    labels = tf.image.crop_and_resize(
        labels[..., None], boxes, which, size, method="nearest", extrapolation_value=IGNORE_LABEL
    )
    return images, tf.cast(labels[..., 0], tf.uint8)


def augment_pair(
    image: tf.Tensor,
    label: tf.Tensor,
    size: tuple[int, int],
    scale_range: tuple[float, float],
    seed: tf.Tensor,
    scale_base: tuple[int, int] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """`augment_batch` for one pair: random scale, pad, crop to `size` and flip, identical for image and label."""
    images, labels = augment_batch(image[None], label[None], size, scale_range, seed, scale_base)
    return images[0], labels[0]


def cache_file_name(
    cache: str | Path, paths: list[Path], size: tuple[int, int], max_distance: float, border_aware: bool
) -> str:
    """`cache` with a fingerprint of the files, size and label decoding, so a changed set never reuses a stale cache."""
    fingerprint = hashlib.sha256(repr((size, max_distance, border_aware)).encode())
    for path in paths:
        stat = path.stat()
        fingerprint.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return f"{cache}-{fingerprint.hexdigest()[:12]}"


def full_resolution_size(size: tuple[int, int], photo: tuple[int, int]) -> tuple[int, int]:
    """`size` enlarged (aspect kept) as far as the files' own `photo` size allows; `size` when they are smaller."""
    factor = max(1.0, min(photo[0] / size[0], photo[1] / size[1]))
    return round(size[0] * factor), round(size[1] * factor)


def fits_memory_budget(count: int, size: tuple[int, int], budget: int = MEMORY_CACHE_BUDGET_BYTES) -> bool:
    """True when `count` decoded uint8 pairs (photo and ids) at `size` take at most `budget` bytes."""
    return count * size[0] * size[1] * 4 <= budget


def scenes(
    paths: list[Path],
    size: tuple[int, int],
    shuffle: bool,
    cache: bool | str,
    seed: int,
    shuffle_buffer: int,
    max_distance: float,
    border_aware: bool,
) -> tf.data.Dataset:
    """Decoded (photo uint8, ids uint8) pairs at `size`; shuffled as file names, or after the cache when caching."""
    files = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    if not cache and shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    pairs = files.map(lambda path: load_scene(path, size, max_distance, border_aware), num_parallel_calls=AUTOTUNE)
    if not cache:
        return pairs
    pairs = pairs.cache("" if cache is True else cache_file_name(cache, paths, size, max_distance, border_aware))
    if shuffle:
        pairs = pairs.shuffle(min(len(paths), shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    return pairs


def make_dataset(
    root: str | Path,
    split: str = "train",
    image_size: int | tuple[int, int] = 256,
    batch_size: int = 8,
    augment: bool | None = None,
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
    shuffle: bool | None = None,
    cache: bool | str | None = None,
    seed: int = 0,
    limit: int | None = None,
    skip_bad: bool = False,
    max_distance: float = DEFAULT_MAX_DISTANCE,
    drop_remainder: bool = False,
    shuffle_buffer: int = 512,
    crop_size: int | tuple[int, int] | None = None,
    full_resolution: bool = False,
    labels: str = TRAINING_LABELS,
) -> tf.data.Dataset:
    """Batches of (image float32 [0, 1] (B, H, W, 3), label int32 (B, H, W)) from the pairs of `split` under `root`.

    `augment` and `shuffle` default to on for "train" only. `cache` keeps the decoded pairs (uint8, at
    `image_size`, or their own size with `full_resolution`) after the first epoch: None (default) in memory
    when they fit `MEMORY_CACHE_BUDGET_BYTES` (2975 pairs at 256 px: 0.8 GB), else not at all; True in memory; a path
    in files named after it (plus a fingerprint of the set); False never. `limit` takes the first files
    only; `skip_bad` leaves unusable files out with a warning instead of raising. Every file is fully
    decoded once up front (~0.5 ms each), so a corrupt file is reported by name here rather than failing
    deep inside TensorFlow mid-epoch. Augmentation is new every epoch and the same for two runs with one
    `seed`. `crop_size` (augmented batches only) cuts training crops of that size from scenes resized to
    `image_size`, each scene scaled by `scale_range` relative to its own size, as the paper's 713 px crops
    of 2048x1024 Cityscapes scenes. `full_resolution` (augmented batches only) keeps the scenes at the files' own
    resolution (when larger than `image_size`) and cuts the same crops from there, so a crop shows the photo's
    own detail instead of a scene first shrunk to `image_size` (and, scaled up, blurred); the labels too keep their thin objects.
    `labels` names the label decoding (palette.LABEL_DECODINGS): `TRAINING_LABELS` (border-aware) by default, what a
    network learns from; batches that are scored pass `EVALUATION_LABELS` (standard: every labelled pixel counts).
    """
    size = image_hw(image_size)
    out_size = size if crop_size is None else image_hw(crop_size)
    scale_range = check_scale_range(scale_range)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    augment = split == "train" if augment is None else augment
    border_aware = is_border_aware(labels)
    shuffle = split == "train" if shuffle is None else shuffle
    if crop_size is not None and (not augment or out_size[0] > size[0] or out_size[1] > size[1]):
        raise ValueError(
            f"crop_size {crop_size!r} needs augment=True and must fit in image_size {image_size!r} (crops are cut from scenes)"
        )
    if full_resolution and not augment:
        raise ValueError("full_resolution needs augment=True (it changes where the augmented crops are cut from)")
    paths = usable_pairs(list_pairs(resolve_dataset_dirs(root).split(split))[:limit], skip_bad=skip_bad)
    scene_size = full_resolution_size(size, photo_size(paths[0])) if full_resolution else size
    cache = fits_memory_budget(len(paths), scene_size) if cache is None else cache
    batches = scenes(paths, scene_size, shuffle, cache, seed, shuffle_buffer, max_distance, border_aware).batch(
        batch_size, drop_remainder=drop_remainder
    )
    epoch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def prepare(pair: tuple[tf.Tensor, tf.Tensor], batch_seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Maybe augment a batch (one seed per batch and epoch); image to float32 [0, 1], label to int32."""
        images, labels = pair
        if augment:  # straight from uint8: crop_and_resize returns float32 and reads 4x fewer bytes
            seed_pair = tf.stack([batch_seed, tf.constant(seed, tf.int64)])
            images, labels = augment_batch(images, labels, out_size, scale_range, seed_pair, size)
        images = tf.ensure_shape(tf.cast(images, tf.float32) / 255.0, (None, *out_size, 3))
        return images, tf.ensure_shape(tf.cast(labels, tf.int32), (None, *out_size))

    dataset = tf.data.Dataset.zip(batches, epoch_seeds).map(prepare, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def scene_photos(
    root: str | Path, split: str, image_size: int | tuple[int, int], batch_size: int, count: int, limit: int | None = None
) -> tf.data.Dataset:
    """Batches of the photos alone (float32 [0, 1], whole scenes as `make_dataset` feeds them, no augmentation)
    of `count` pairs spread evenly over the first `limit` (all: None) of `split`: what a batch norm statistics
    pass needs, without the label decoding. Spread, not the first ones: the pairs are numbered city by city."""
    paths = evenly_spaced(list_pairs(resolve_dataset_dirs(root).split(split))[:limit], count)
    size = image_hw(image_size)
    files = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    photos = files.map(lambda path: tf.cast(load_scene_photo(path, size), tf.float32) / 255.0, num_parallel_calls=AUTOTUNE)
    return photos.batch(batch_size).prefetch(AUTOTUNE)
