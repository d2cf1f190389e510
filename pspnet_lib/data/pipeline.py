"""The tf.data input pipeline: pair files -> (image float32 [0, 1] (B, H, W, 3), label int32 (B, H, W)).

Augmentation (random scale, pad, crop, horizontal flip; identical for image and label) uses stateless
random ops seeded by `(seed, position in the epoch)`, so batches are reproducible for a seed however
many threads map in parallel. With shuffling on, each epoch visits the files in a new (seeded) order,
so a file gets a different augmentation every epoch.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from pspnet_lib.data.locate import resolve_dataset_dirs
from pspnet_lib.data.pairs import list_pairs, usable_pairs
from pspnet_lib.data.palette import DEFAULT_MAX_DISTANCE, IGNORE_LABEL, decode_mask

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SCALE_RANGE = (0.5, 2.0)  # random scaling of training scenes, relative to the crop size


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


def load_pair(path: tf.Tensor, max_distance: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Read one pair file: (photo uint8 (h, w, 3), train ids uint8 (h, w))."""
    pixels = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    half = tf.shape(pixels)[1] // 2
    return pixels[:, :half], decode_mask(pixels[:, half : 2 * half], max_distance)


def resize_pair(image: tf.Tensor, label: tf.Tensor, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Resize the image bilinearly and the label with nearest neighbour (no new label values)."""
    resized_image = tf.image.resize(image, size, method="bilinear")
    resized_label = tf.image.resize(label[..., None], size, method="nearest")[..., 0]
    return resized_image, resized_label


def pad_to_at_least(image: tf.Tensor, label: tf.Tensor, size: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Pad bottom and right up to `size`: the image with 0, the label with IGNORE_LABEL."""
    shape = tf.shape(label)
    padding = [[0, tf.maximum(size[0] - shape[0], 0)], [0, tf.maximum(size[1] - shape[1], 0)]]
    return tf.pad(image, padding + [[0, 0]]), tf.pad(label, padding, constant_values=IGNORE_LABEL)


def random_crop_pair(
    image: tf.Tensor, label: tf.Tensor, size: tuple[int, int], seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """The same random `size` window of image and label."""
    room = tf.shape(label) - tf.constant(size)
    top_left = tf.cast(tf.random.stateless_uniform([2], seed) * tf.cast(room + 1, tf.float32), tf.int32)
    top, left = top_left[0], top_left[1]
    return image[top : top + size[0], left : left + size[1]], label[
        top : top + size[0], left : left + size[1]
    ]


def random_flip_pair(image: tf.Tensor, label: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirror image and label left-right together, with probability 1/2."""
    flip = tf.random.stateless_uniform([], seed) < 0.5
    return tf.where(flip, tf.reverse(image, [1]), image), tf.where(flip, tf.reverse(label, [1]), label)


def augment_pair(
    image: tf.Tensor,
    label: tf.Tensor,
    size: tuple[int, int],
    scale_range: tuple[float, float],
    seed: tf.Tensor,
    scale_base: tuple[int, int] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Resize to `scale_base` (default `size`) times a random scale, pad, crop to `size` and flip, identically."""
    scale_seed, crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    scale = tf.random.stateless_uniform([], scale_seed, minval=scale_range[0], maxval=scale_range[1])
    base = tf.constant(scale_base or size, tf.float32)
    scaled = tf.maximum(tf.cast(tf.round(base * scale), tf.int32), 1)
    image, label = resize_pair(image, label, scaled)
    image, label = pad_to_at_least(image, label, size)
    image, label = random_crop_pair(image, label, size, crop_seed)
    return random_flip_pair(image, label, flip_seed)


def raw_pairs(
    paths: list[Path], shuffle: bool, cache: bool | str, seed: int, shuffle_buffer: int, max_distance: float
) -> tf.data.Dataset:
    """Decoded (photo uint8, ids uint8) pairs; shuffled as file names, or after the cache when caching."""
    files = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    if not cache:
        if shuffle:
            files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        return files.map(lambda path: load_pair(path, max_distance), num_parallel_calls=AUTOTUNE)
    pairs = files.map(lambda path: load_pair(path, max_distance), num_parallel_calls=AUTOTUNE)
    pairs = pairs.cache("" if cache is True else str(cache))
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
    cache: bool | str = False,
    seed: int = 0,
    limit: int | None = None,
    skip_bad: bool = False,
    max_distance: float = DEFAULT_MAX_DISTANCE,
    drop_remainder: bool = False,
    shuffle_buffer: int = 512,
    crop_size: int | tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Batches of (image float32 [0, 1] (B, H, W, 3), label int32 (B, H, W)) from the pairs of `split` under `root`.

    `augment` and `shuffle` default to on for "train" only; `cache` keeps decoded pairs in memory (True)
    or in a file (a path); `limit` takes the first files only; `skip_bad` leaves unusable files out
    with a warning instead of raising. Every file is fully decoded once up front (~0.5 ms each), so a
    corrupt file is reported by name here rather than failing deep inside TensorFlow mid-epoch.
    `crop_size` (augmented batches only) cuts training crops of that size from scenes resized to
    `image_size`, each scene scaled by `scale_range` relative to its own size, as the paper's 713 px crops
    of 2048x1024 Cityscapes scenes.
    """
    size = image_hw(image_size)
    out_size = size if crop_size is None else image_hw(crop_size)
    scale_range = check_scale_range(scale_range)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    augment = split == "train" if augment is None else augment
    shuffle = split == "train" if shuffle is None else shuffle
    if crop_size is not None and (not augment or out_size[0] > size[0] or out_size[1] > size[1]):
        raise ValueError(
            f"crop_size {crop_size!r} needs augment=True and must fit in image_size {image_size!r} (crops are cut from scenes)"
        )
    paths = usable_pairs(list_pairs(resolve_dataset_dirs(root).split(split))[:limit], skip_bad=skip_bad)

    def prepare(index: tf.Tensor, pair: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """Scale to [0, 1], resize, maybe augment; label to int32."""
        image, label = resize_pair(tf.cast(pair[0], tf.float32) / 255.0, pair[1], size)
        if augment:
            image, label = augment_pair(
                image, label, out_size, scale_range, tf.stack([tf.constant(seed, tf.int64), index]), size
            )
        return tf.ensure_shape(image, (*out_size, 3)), tf.ensure_shape(tf.cast(label, tf.int32), out_size)

    dataset = raw_pairs(paths, shuffle, cache, seed, shuffle_buffer, max_distance).enumerate()
    dataset = dataset.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)
