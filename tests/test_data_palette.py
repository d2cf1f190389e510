"""Palette and colour decoding, checked against brute-force references (nearest colour, window support)."""

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
    synthetic_pair,
)
from pspnet_lib.data.palette import (
    CLEAN_DISTANCE,
    COLOR_TABLE,
    COLOR_TABLE_IDS,
    SUPPORT_WINDOW,
    border_artefacts,
)
from pspnet_lib.data.synthetic import JPEG_QUALITY, JPEG_SUBSAMPLING

CAR, TRUCK = CLASS_NAMES.index("car"), CLASS_NAMES.index("truck")


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


def reference_border_aware_decode(rgb: np.ndarray, max_distance: float) -> np.ndarray:
    """Per pixel, in float64 loops: nearest of the colours that are some window pixel's clean nearest colour."""
    distance = np.sqrt(((rgb[..., None, :].astype(np.float64) - COLOR_TABLE.astype(np.float64)) ** 2).sum(-1))
    clean = (distance == distance.min(-1, keepdims=True)) & (distance <= CLEAN_DISTANCE)
    height, width, reach = rgb.shape[0], rgb.shape[1], SUPPORT_WINDOW // 2
    ids = np.full((height, width), IGNORE_LABEL, np.uint8)
    for y in range(height):
        for x in range(width):
            window = clean[max(0, y - reach) : y + reach + 1, max(0, x - reach) : x + reach + 1]
            allowed = window.any(axis=(0, 1))
            if allowed.any():
                row = int(np.flatnonzero(allowed)[distance[y, x, allowed].argmin()])
                if distance[y, x, row] <= max_distance:
                    ids[y, x] = COLOR_TABLE_IDS[row]
    return ids


def jpeg_round_trip(
    rgb: np.ndarray, quality: int = JPEG_QUALITY, subsampling: int = JPEG_SUBSAMPLING
) -> np.ndarray:
    """`rgb` after JPEG encoding and decoding with Pillow."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return np.array(Image.open(buffer))


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
        plain = decode_mask(rgb, max_distance, border_aware=False)
        np.testing.assert_array_equal(plain, reference_decode(rgb, max_distance))


def test_border_aware_decode_matches_a_window_by_window_reference() -> None:
    rng = np.random.default_rng(2)
    ids = rng.choice([*range(NUM_CLASSES), IGNORE_LABEL], size=(6, 6)).astype(np.uint8)
    # Blocks of 5x5 pixels, so JPEG blends colours at every border.
    rgb = jpeg_round_trip(ids_to_colors(ids).repeat(5, 0).repeat(5, 1))
    rgb[:6] = rng.integers(0, 256, (6, 30, 3), dtype=np.uint8)  # and rows with no clean colour at all
    for max_distance in (15.0, DEFAULT_MAX_DISTANCE):
        expected = reference_border_aware_decode(rgb, max_distance)
        np.testing.assert_array_equal(decode_mask(rgb, max_distance), expected)
        assert (expected != reference_decode(rgb, max_distance)).any()  # the rule changes something here


def test_threshold_sends_far_colours_to_ignore() -> None:
    road = PALETTE[CLASS_NAMES.index("road")].astype(int)
    patch = np.tile(road.astype(np.uint8), (5, 5, 1))
    patch[2, 2] = road + (0, 30, 0)  # distance 30 from road, nearest is still road, clean road all around
    assert decode_mask(patch, max_distance=40)[2, 2] == CLASS_NAMES.index("road")
    assert decode_mask(patch, max_distance=29)[2, 2] == IGNORE_LABEL
    alone = patch[2:3, 2:3]  # no clean colour in its window: only plain nearest-colour decoding keeps it
    assert decode_mask(alone, border_aware=False)[0, 0] == CLASS_NAMES.index("road")
    assert decode_mask(alone)[0, 0] == IGNORE_LABEL


def test_jpeg_blur_at_borders_decodes_to_a_neighbour_or_ignore() -> None:
    ids = np.zeros((64, 64), np.uint8)
    ids[:, 32:] = CLASS_NAMES.index("sidewalk")
    ids[40:, :] = CLASS_NAMES.index("car")
    decoded = decode_mask(jpeg_round_trip(ids_to_colors(ids)))
    far_from_border = np.zeros_like(ids, bool)
    far_from_border[:36, :28] = far_from_border[:36, 36:] = far_from_border[44:, :] = True
    np.testing.assert_array_equal(decoded[far_from_border], ids[far_from_border])
    assert set(np.unique(decoded[~far_from_border])) <= {0, 1, CLASS_NAMES.index("car"), IGNORE_LABEL}


def test_car_blended_with_black_is_not_decoded_as_truck() -> None:
    ids = np.full((32, 32), IGNORE_LABEL, np.uint8)  # black: unlabelled / ego vehicle
    ids[8:24, 9:23] = CAR
    rgb = jpeg_round_trip(ids_to_colors(ids))
    plain = decode_mask(rgb, border_aware=False)
    assert (plain == TRUCK).any()  # (0, 0, 142) + (0, 0, 0) -> about (0, 0, 71), nearest is truck (0, 0, 70)
    decoded = decode_mask(rgb)
    assert set(np.unique(decoded)) <= {CAR, IGNORE_LABEL}
    assert (decoded[10:22, 11:21] == CAR).all()
    np.testing.assert_array_equal(border_artefacts(rgb), (plain != IGNORE_LABEL) & (plain != decoded))
    assert border_artefacts(rgb)[plain == TRUCK].all()


def decoding_shares(decoded: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Shares of the non-void pixels of `truth` decoded right, as another class, as an absent class, as 255."""
    labelled = truth != IGNORE_LABEL
    wrong = labelled & (decoded != truth) & (decoded != IGNORE_LABEL)
    absent = wrong & ~np.isin(decoded, np.unique(truth))
    count = labelled.sum()
    return {
        "right": (labelled & (decoded == truth)).sum() / count,
        "wrong": wrong.sum() / count,
        "absent": absent.sum() / count,
        "ignored": (labelled & (decoded == IGNORE_LABEL)).sum() / count,
    }


@pytest.mark.slow
def test_synthetic_label_maps_saved_like_the_real_files_decode_without_invented_classes() -> None:
    pairs = [synthetic_pair(0, "val", index) for index in range(1, 9)]
    truth = np.stack([pair.label_ids for pair in pairs])
    # Each scene is encoded as a whole pair (photo | labels), as the files are, then its label half decoded.
    rgb = np.stack([jpeg_round_trip(pair.side_by_side())[:, 256:] for pair in pairs])
    new = [decoding_shares(decode_mask(r), t) for r, t in zip(rgb, truth, strict=True)]
    old = [decoding_shares(decode_mask(r, border_aware=False), t) for r, t in zip(rgb, truth, strict=True)]
    mean = {key: np.mean([shares[key] for shares in new]) for key in new[0]}
    assert mean["absent"] <= 0.0001 and mean["wrong"] <= 0.001 and mean["ignored"] <= 0.03
    assert mean["right"] >= 0.965
    assert np.mean([shares["absent"] for shares in old]) > 0.001  # plain nearest colour invents classes here


def test_tensorflow_graph_and_numpy_decoding_agree() -> None:
    rng = np.random.default_rng(1)
    ids = rng.choice([*range(NUM_CLASSES), IGNORE_LABEL], size=(2, 16, 16)).astype(np.uint8)
    batch = np.stack([jpeg_round_trip(ids_to_colors(i).repeat(2, 0).repeat(2, 1)) for i in ids])
    batch[0, :4] = rng.integers(0, 256, (4, 32, 3), dtype=np.uint8)
    graph_decode = tf.function(lambda rgb: decode_mask(rgb))
    np.testing.assert_array_equal(graph_decode(tf.constant(batch)).numpy(), decode_mask(batch))
    single = tf.data.Dataset.from_tensors(batch[1]).map(decode_mask).get_single_element()
    np.testing.assert_array_equal(single.numpy(), decode_mask(batch[1]))
    plain_graph = tf.function(lambda rgb: decode_mask(rgb, 30.0, border_aware=False))
    np.testing.assert_array_equal(plain_graph(batch).numpy(), decode_mask(batch, 30.0, border_aware=False))


def test_tensorflow_and_numpy_agree_on_synthetic_pairs_written_like_the_real_files() -> None:
    rgb = np.stack(
        [jpeg_round_trip(synthetic_pair(1, "train", i).side_by_side())[:, 256:] for i in (1, 2, 3)]
    )
    graph_decode = tf.function(lambda rgb: decode_mask(rgb))
    np.testing.assert_array_equal(graph_decode(tf.constant(rgb)).numpy(), decode_mask(rgb))


def test_bad_input_raises_value_error_naming_what_was_expected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        decode_mask(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, 3\)"):
        decode_mask(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="19"):
        ids_to_colors(np.array([[0, 19]]))
    with pytest.raises(ValueError, match="max_distance"):
        decode_mask(np.zeros((1, 1, 3), np.uint8), max_distance=-1)
