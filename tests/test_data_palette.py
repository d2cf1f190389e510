"""Palette and colour decoding, checked against a brute-force nearest-colour reference."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pspnet_lib.data import (
    CLASS_NAMES,
    DEFAULT_MAX_DISTANCE,
    IGNORE_LABEL,
    NUM_CLASSES,
    PALETTE,
    VOID_COLORS,
    decode_mask,
    ids_to_colors,
)


def reference_decode(rgb: np.ndarray, max_distance: float) -> np.ndarray:
    """Nearest colour by explicit float64 distances to every train and void colour, one colour at a time."""
    colors = [(tuple(c), i) for i, c in enumerate(PALETTE.tolist())] + [
        (c, IGNORE_LABEL) for c in VOID_COLORS.values()
    ]
    best = np.full(rgb.shape[:-1], np.inf)
    ids = np.full(rgb.shape[:-1], IGNORE_LABEL, np.uint8)
    for color, train_id in colors:
        distance = np.sqrt(((rgb.astype(np.float64) - np.array(color)) ** 2).sum(-1))
        closer = distance < best
        best[closer], ids[closer] = distance[closer], train_id
    ids[best > max_distance] = IGNORE_LABEL
    return ids


def jpeg_round_trip(rgb: np.ndarray, quality: int = 75, subsampling: int = 2) -> np.ndarray:
    """`rgb` after JPEG encoding and decoding with Pillow."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return np.asarray(Image.open(buffer))


def test_palette_has_the_official_cityscapes_train_classes() -> None:
    assert NUM_CLASSES == len(CLASS_NAMES) == len(PALETTE) == 19
    assert PALETTE.dtype == np.uint8 and PALETTE.shape == (19, 3)
    official = {"road": (128, 64, 128), "building": (70, 70, 70), "vegetation": (107, 142, 35),
                "sky": (70, 130, 180), "car": (0, 0, 142), "bicycle": (119, 11, 32)}  # fmt: skip
    for name, color in official.items():
        assert tuple(PALETTE[CLASS_NAMES.index(name)]) == color
    assert len({tuple(c) for c in PALETTE.tolist()}) == 19
    assert VOID_COLORS["ego vehicle"] == VOID_COLORS["unlabeled"] == (0, 0, 0)


def test_ids_colors_ids_round_trip_covers_every_id_and_ignore() -> None:
    ids = np.array([list(range(NUM_CLASSES)) + [IGNORE_LABEL]] * 3, np.uint8)
    colors = ids_to_colors(ids)
    assert colors.dtype == np.uint8 and colors.shape == (3, 20, 3)
    assert (colors[:, -1] == 0).all()
    np.testing.assert_array_equal(decode_mask(colors), ids)


def test_every_void_colour_decodes_to_ignore() -> None:
    void = np.array([list(VOID_COLORS.values())], np.uint8)
    assert (decode_mask(void) == IGNORE_LABEL).all()


def test_decode_matches_brute_force_reference_on_random_colours() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for max_distance in (15.0, DEFAULT_MAX_DISTANCE, 1000.0):
        np.testing.assert_array_equal(decode_mask(rgb, max_distance), reference_decode(rgb, max_distance))


def test_threshold_sends_far_colours_to_ignore() -> None:
    road = PALETTE[CLASS_NAMES.index("road")].astype(int)
    shifted = np.array([[road + (0, 30, 0)]], np.uint8)  # distance 30 from road, nearest is still road
    assert decode_mask(shifted, max_distance=40)[0, 0] == CLASS_NAMES.index("road")
    assert decode_mask(shifted, max_distance=29)[0, 0] == IGNORE_LABEL


def test_jpeg_blur_at_borders_decodes_to_a_neighbour_or_ignore() -> None:
    ids = np.zeros((64, 64), np.uint8)
    ids[:, 32:] = CLASS_NAMES.index("sidewalk")
    ids[40:, :] = CLASS_NAMES.index("car")
    decoded = decode_mask(jpeg_round_trip(ids_to_colors(ids)))
    far_from_border = np.zeros_like(ids, bool)
    far_from_border[:36, :28] = far_from_border[:36, 36:] = far_from_border[44:, :] = True
    np.testing.assert_array_equal(decoded[far_from_border], ids[far_from_border])
    assert set(np.unique(decoded[~far_from_border])) <= {0, 1, CLASS_NAMES.index("car"), IGNORE_LABEL}


def test_tensorflow_graph_and_numpy_decoding_agree() -> None:
    rng = np.random.default_rng(1)
    ids = rng.choice([*range(NUM_CLASSES), IGNORE_LABEL], size=(2, 16, 16)).astype(np.uint8)
    batch = np.stack([jpeg_round_trip(ids_to_colors(i).repeat(2, 0).repeat(2, 1)) for i in ids])
    batch[0, :4] = rng.integers(0, 256, (4, 32, 3), dtype=np.uint8)
    graph_decode = tf.function(lambda rgb: decode_mask(rgb))
    np.testing.assert_array_equal(graph_decode(tf.constant(batch)).numpy(), decode_mask(batch))
    single = tf.data.Dataset.from_tensors(batch[1]).map(decode_mask).get_single_element()
    np.testing.assert_array_equal(single.numpy(), decode_mask(batch[1]))


def test_bad_input_raises_value_error_naming_what_was_expected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        decode_mask(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, 3\)"):
        decode_mask(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="19"):
        ids_to_colors(np.array([[0, 19]]))
    with pytest.raises(ValueError, match="max_distance"):
        decode_mask(np.zeros((1, 1, 3), np.uint8), max_distance=-1)
