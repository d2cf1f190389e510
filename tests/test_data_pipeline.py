"""The tf.data pipeline: shapes, label values, identical augmentation of image and label, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pspnet_lib.data import (
    DEFAULT_MAX_DISTANCE,
    IGNORE_LABEL,
    NUM_CLASSES,
    DataError,
    decode_mask,
    ids_to_colors,
    make_dataset,
    read_pair,
)
from pspnet_lib.data.pipeline import full_resolution_size, load_pair, scene_photos


def batches(dataset, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `count` batches as NumPy arrays."""
    return [(image.numpy(), label.numpy()) for image, label in dataset.take(count)]


def write_self_describing_dataset(root: Path, count: int = 4) -> Path:
    """Pairs whose photo IS the colour label map of large random blocks, so image and label can be compared."""
    rng = np.random.default_rng(7)
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for index in range(1, count + 1):
            blocks = rng.integers(0, NUM_CLASSES, (4, 4)).astype(np.uint8)
            colors = ids_to_colors(blocks.repeat(64, 0).repeat(64, 1))
            pair = np.concatenate([colors, colors], axis=1)
            # Lossless PNG content under the .jpg name, so the photo keeps the exact label colours.
            Image.fromarray(pair).save(root / split / f"{index}.jpg", format="PNG")
    return root


def far_from_label_borders(label: np.ndarray, margin: int = 2) -> np.ndarray:
    """Pixels whose label equals every label within `margin` pixels (per image of a batch)."""
    padded = np.pad(label, [(0, 0), (margin, margin), (margin, margin)], mode="edge")
    keep = np.ones(label.shape, bool)
    height, width = label.shape[1:]
    for dy in range(2 * margin + 1):
        for dx in range(2 * margin + 1):
            keep &= padded[:, dy : dy + height, dx : dx + width] == label
    return keep


def test_batches_have_the_promised_shapes_types_and_values(synthetic_pairs) -> None:
    dataset = make_dataset(synthetic_pairs, "train", image_size=(48, 64), batch_size=3, seed=1)
    assert dataset.element_spec[0].shape.as_list() == [None, 48, 64, 3]
    for image, label in batches(dataset, 3):
        assert image.dtype == np.float32 and image.shape[1:] == (48, 64, 3)
        assert label.dtype == np.int32 and label.shape == image.shape[:3]
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert set(np.unique(label)) <= set(range(NUM_CLASSES)) | {IGNORE_LABEL}


def test_validation_split_matches_read_pair_without_augmentation(synthetic_pairs) -> None:
    dataset = make_dataset(synthetic_pairs, "val", image_size=256, batch_size=4)
    ((image, label),) = batches(dataset, 1)
    for index in range(4):
        photo, ids = read_pair(synthetic_pairs / "val" / f"{index + 1}.jpg")
        # TensorFlow's and Pillow's JPEG decoders upsample 4:2:0 chroma differently (1-1.5 grey levels).
        assert np.abs(image[index] * 255 - photo).mean() < 3.0
        assert np.mean(label[index] == ids) > 0.995


def test_scene_photos_are_photos_of_unaugmented_scenes_spread_over_the_split(synthetic_pairs) -> None:
    photos = [batch.numpy() for batch in scene_photos(synthetic_pairs, "train", image_size=48, batch_size=3, count=5)]
    assert [batch.shape for batch in photos] == [(3, 48, 48, 3), (2, 48, 48, 3)]
    dataset = make_dataset(synthetic_pairs, "train", image_size=48, batch_size=8, augment=False, shuffle=False)
    ((images, _),) = batches(dataset, 1)
    np.testing.assert_array_equal(np.concatenate(photos), images[[0, 2, 4, 5, 7]])  # 5 of the 8, first and last included
    within = np.concatenate([batch.numpy() for batch in scene_photos(synthetic_pairs, "train", 48, 8, count=3, limit=4)])
    np.testing.assert_array_equal(within, images[[0, 2, 3]])  # spread over the first `limit` only


def test_nearest_resizing_creates_no_new_label_values(synthetic_pairs) -> None:
    original = set()
    for index in range(1, 5):
        # The pipeline's own decoding: TensorFlow's JPEG decoder differs from Pillow's at a few border pixels.
        path = str(synthetic_pairs / "val" / f"{index}.jpg")
        original |= set(np.unique(load_pair(tf.constant(path), DEFAULT_MAX_DISTANCE)[1].numpy()))
    plain = make_dataset(synthetic_pairs, "val", image_size=100, batch_size=4)
    assert set(np.unique(batches(plain, 1)[0][1])) <= original
    augmented = make_dataset(synthetic_pairs, "val", image_size=100, batch_size=4, augment=True, seed=3)
    assert set(np.unique(batches(augmented, 1)[0][1])) <= original | {IGNORE_LABEL}


def test_image_and_label_are_scaled_cropped_and_flipped_together(tmp_path) -> None:
    root = write_self_describing_dataset(tmp_path, count=8)
    for seed in (1, 2):  # 16 augmented pairs: about 8 flipped, each with its own scale and crop
        dataset = make_dataset(root, "train", image_size=128, batch_size=8, scale_range=(0.5, 2.0), seed=seed)
        ((image, label),) = batches(dataset, 1)
        from_image = decode_mask(np.round(image * 255).astype(np.uint8))
        for one_image, one_label, decoded in zip(image, label, from_image, strict=True):
            inside = far_from_label_borders(one_label[None])[0] & (one_label != IGNORE_LABEL)
            assert inside.mean() > 0.1  # at scale 0.5 three quarters of the crop is padding
            assert np.mean(decoded[inside] == one_label[inside]) > 0.99
            assert np.all(one_image[one_label == IGNORE_LABEL] == 0.0)


def test_augmentation_really_varies_the_crops(tmp_path) -> None:
    root = write_self_describing_dataset(tmp_path)
    plain = batches(
        make_dataset(root, "train", image_size=128, batch_size=4, augment=False, shuffle=False), 1
    )
    augmented = batches(make_dataset(root, "train", image_size=128, batch_size=4, shuffle=False, seed=1), 1)
    assert np.mean(plain[0][1] != augmented[0][1]) > 0.2


def test_same_seed_same_batches_different_seed_different_batches(synthetic_pairs) -> None:
    def run(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return batches(make_dataset(synthetic_pairs, "train", image_size=64, batch_size=4, seed=seed), 2)

    first, again, other = run(11), run(11), run(12)
    for (image_a, label_a), (image_b, label_b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(label_a, label_b)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))


def test_limit_cache_and_skip_bad(synthetic_pairs, tmp_path) -> None:
    assert (
        sum(len(label) for _, label in batches(make_dataset(synthetic_pairs, "train", 32, 3, limit=5), 9))
        == 5
    )
    options = dict(image_size=32, batch_size=4, augment=False, shuffle=False)
    cached = make_dataset(synthetic_pairs, "val", cache=True, **options)
    ((image_from_files, label_from_files),) = batches(make_dataset(synthetic_pairs, "val", **options), 1)
    for _epoch in range(2):
        ((image_from_cache, label_from_cache),) = batches(cached, 1)
        np.testing.assert_array_equal(image_from_cache, image_from_files)
        np.testing.assert_array_equal(label_from_cache, label_from_files)
    root = tmp_path / "copy"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for path in (synthetic_pairs / split).glob("*.jpg"):
            (root / split / path.name).write_bytes(path.read_bytes())
    (root / "train" / "2.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(DataError, match="2.jpg"):
        make_dataset(root, "train", 32, 4)
    with pytest.warns(UserWarning, match="2.jpg"):
        dataset = make_dataset(root, "train", 32, 4, skip_bad=True)
    assert sum(len(label) for _, label in batches(dataset, 9)) == 7


def test_bad_arguments_raise_value_errors_naming_them(synthetic_pairs) -> None:
    with pytest.raises(ValueError, match="image_size"):
        make_dataset(synthetic_pairs, image_size=(0, 4))
    with pytest.raises(ValueError, match="scale_range"):
        make_dataset(synthetic_pairs, scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="split"):
        make_dataset(synthetic_pairs, split="test")
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(synthetic_pairs, batch_size=0)
    with pytest.raises(DataError, match="does not exist"):
        make_dataset(synthetic_pairs / "missing")


def test_crops_of_larger_scenes_are_windows_of_those_scenes(synthetic_pairs) -> None:
    """With the scale pinned to 1, every crop is a (maybe mirrored) window of its scene at image_size."""
    options = {"image_size": 64, "batch_size": 3, "shuffle": False, "limit": 3}
    scenes = next(iter(make_dataset(synthetic_pairs, "train", augment=False, **options)))[1].numpy()
    crops = next(iter(make_dataset(synthetic_pairs, "train", crop_size=24, scale_range=(1.0, 1.0), **options)))
    assert tuple(crops[0].shape) == (3, 24, 24, 3)
    for scene, crop in zip(scenes, crops[1].numpy(), strict=True):
        windows = np.lib.stride_tricks.sliding_window_view(scene, (24, 24)).reshape(-1, 24, 24)
        assert (np.all(windows == crop, axis=(1, 2)) | np.all(windows == crop[:, ::-1], axis=(1, 2))).any()


def test_crop_size_must_fit_the_scene_and_needs_augmentation(synthetic_pairs) -> None:
    with pytest.raises(ValueError, match="crop_size"):
        make_dataset(synthetic_pairs, "train", image_size=32, crop_size=48)
    with pytest.raises(ValueError, match="crop_size"):
        make_dataset(synthetic_pairs, "val", image_size=64, crop_size=32)


def test_full_resolution_crops_keep_the_detail_a_shrunk_scene_loses(fine_detail_pairs) -> None:
    """Scaled 2x, a crop from the scene shrunk to 32 px is flat grey; from the 64 px pair, the columns are back."""
    options = {"image_size": 32, "crop_size": 32, "scale_range": (2.0, 2.0), "batch_size": 2, "shuffle": False}
    shrunk, shrunk_labels = next(iter(make_dataset(fine_detail_pairs, "train", **options)))
    full, full_labels = next(iter(make_dataset(fine_detail_pairs, "train", full_resolution=True, **options)))
    assert full.shape == shrunk.shape == (2, 32, 32, 3)
    assert float(tf.math.reduce_std(shrunk)) < 0.05
    np.testing.assert_allclose(np.abs(np.diff(full.numpy(), axis=2)), 1.0, atol=0.02)  # black, white, black...
    assert (full_labels.numpy() == 0).all() and (shrunk_labels.numpy() == 0).all()  # all road, either way


def test_full_resolution_size_grows_the_scene_to_the_files_own_size_at_most() -> None:
    assert full_resolution_size((128, 128), (256, 256)) == (256, 256)
    assert full_resolution_size((128, 256), (256, 256)) == (128, 256)  # the width already uses every pixel
    assert full_resolution_size((96, 128), (256, 256)) == (192, 256)
    assert full_resolution_size((256, 256), (128, 128)) == (256, 256)  # never smaller than asked


def test_full_resolution_needs_augmentation(synthetic_pairs) -> None:
    with pytest.raises(ValueError, match="full_resolution needs augment=True"):
        make_dataset(synthetic_pairs, "val", image_size=32, full_resolution=True)


def epochs(dataset, count: int = 2) -> list[np.ndarray]:
    """The labels of `count` whole epochs of `dataset`, each concatenated over its batches."""
    return [np.concatenate([label.numpy() for _, label in dataset]) for _ in range(count)]


@pytest.mark.parametrize("cache", [False, True])
def test_each_epoch_augments_anew_and_one_seed_repeats_every_epoch(synthetic_pairs, cache) -> None:
    def run(limit: int, shuffle: bool) -> list[np.ndarray]:
        options = dict(image_size=48, batch_size=2, limit=limit, shuffle=shuffle, cache=cache, seed=5)
        return epochs(make_dataset(synthetic_pairs, "train", **options), 3)

    for limit, shuffle in ((1, False), (4, True)):  # one image unshuffled: the case that never changed before
        first_run, second_run = run(limit, shuffle), run(limit, shuffle)
        for epoch_a, epoch_b in zip(first_run, second_run, strict=True):
            np.testing.assert_array_equal(epoch_a, epoch_b)
        assert not np.array_equal(first_run[0], first_run[1])
        assert not np.array_equal(first_run[1], first_run[2])


def test_a_half_scale_crop_is_the_scene_resized_with_nearest_and_padded(synthetic_pairs) -> None:
    """Scale pinned to 1/2: the 64 px crop holds the scene at 32 px (NEAREST, corners aligned) and padding."""
    options = {"image_size": 64, "batch_size": 4, "shuffle": False, "limit": 4}
    scenes = next(iter(make_dataset(synthetic_pairs, "train", augment=False, **options)))[1].numpy()
    crops = next(iter(make_dataset(synthetic_pairs, "train", scale_range=(0.5, 0.5), **options)))
    rows = np.round(np.arange(32) * 63 / 31).astype(int)
    flipped = 0
    for scene, image, crop in zip(scenes, crops[0].numpy(), crops[1].numpy(), strict=True):
        expected = np.full((64, 64), IGNORE_LABEL, np.int32)
        expected[:32, :32] = scene[np.ix_(rows, rows)]
        is_flipped = not np.array_equal(crop, expected)
        flipped += is_flipped
        np.testing.assert_array_equal(crop, expected[:, ::-1] if is_flipped else expected)
        padding = np.ones((64, 64), bool)
        padding[:32, :32] = False
        padding = padding[:, ::-1] if is_flipped else padding
        assert np.all(image[padding] == 0.0) and image[~padding].mean() > 0.1
    assert flipped in (1, 2, 3)  # four pairs: both outcomes of the coin show up for this seed


def test_decoded_pairs_are_cached_in_a_file_named_after_the_set(synthetic_pairs, tmp_path) -> None:
    options = dict(image_size=32, batch_size=4, augment=False, shuffle=False)
    reference = epochs(make_dataset(synthetic_pairs, "val", cache=False, **options), 1)[0]
    cached = make_dataset(synthetic_pairs, "val", cache=str(tmp_path / "val"), **options)
    for labels in epochs(cached, 2):
        np.testing.assert_array_equal(labels, reference)
    assert len({path.name.split(".")[0] for path in tmp_path.glob("val-*")}) == 1
    fewer = epochs(make_dataset(synthetic_pairs, "val", cache=str(tmp_path / "val"), limit=2, **options), 1)[0]
    np.testing.assert_array_equal(fewer, reference[:2])  # a smaller set never reads the cache of the larger
    assert len({path.name.split(".")[0] for path in tmp_path.glob("val-*")}) == 2


def test_the_default_cache_is_memory_within_the_budget_only() -> None:
    from pspnet_lib.data.pipeline import MEMORY_CACHE_BUDGET_BYTES, fits_memory_budget

    assert fits_memory_budget(2975, (256, 256))  # the full Kaggle train split at 256 px: 0.78 GB
    assert not fits_memory_budget(2975, (512, 1024))
    assert fits_memory_budget(1, (4, 4), budget=64) and not fits_memory_budget(1, (4, 4), budget=63)
    assert MEMORY_CACHE_BUDGET_BYTES >= 2975 * 256 * 256 * 4
