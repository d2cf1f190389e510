"""Which label pixels a score counts (issue 38): the standard decoding (Cityscapes' own evaluation: nearest label
colour, void and far-off colours ignored, no border rule) by default, the border-aware one only when asked.

The constructed pair holds what JPEG's 4:2:0 chroma blur makes at a road/terrain border: a 2-pixel band of
(140, 158, 140), half road (128, 64, 128) and half terrain (152, 251, 152), which is nearest to pole (153, 153, 153),
19 away (within the distance limit of 40, farther than the 10 of a "clean" colour). The standard decoding counts those
pixels (as pole); the border rule finds no clean pole pixel near them, road and terrain are too far, so it leaves
them out.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from pspnet_lib import inference
from pspnet_lib.cli import main
from pspnet_lib.data import CLASS_NAMES, make_dataset
from pspnet_lib.data.palette import EVALUATION_LABELS, LABEL_DECODINGS, TRAINING_LABELS, color_index_of

SIDE = 64
ROAD, POLE = CLASS_NAMES.index("road"), CLASS_NAMES.index("pole")
ROAD_COLUMNS, BLEND_COLUMNS = 40, 2  # then terrain to the right edge


def border_blend_labels() -> np.ndarray:
    """SIDE x SIDE colour labels: road, a 2-pixel band of road blended with terrain, then terrain."""
    labels = np.empty((SIDE, SIDE, 3), np.uint8)
    labels[:, :ROAD_COLUMNS] = (128, 64, 128)
    labels[:, ROAD_COLUMNS : ROAD_COLUMNS + BLEND_COLUMNS] = (140, 158, 140)
    labels[:, ROAD_COLUMNS + BLEND_COLUMNS :] = (152, 251, 152)
    return labels


@pytest.fixture(scope="module")
def blend_pairs(tmp_path_factory) -> Path:
    """A dataset of one lossless pair (PNG content under the Kaggle name) per split, labels as above."""
    root = tmp_path_factory.mktemp("border_blend")
    photo = np.full((SIDE, SIDE, 3), 90, np.uint8)
    for split in ("train", "val"):
        (root / split).mkdir()
        Image.fromarray(np.concatenate([photo, border_blend_labels()], axis=1)).save(root / split / "1.jpg", format="PNG")
    return root


@pytest.fixture(scope="module")
def road_everywhere(tmp_path_factory) -> Path:
    """A saved .keras model whose logits say "road" at every pixel."""
    bias = np.zeros(len(CLASS_NAMES), np.float32)
    bias[ROAD] = 10.0
    image = keras.Input((None, None, 3))
    logits = keras.layers.Conv2D(
        len(CLASS_NAMES), 1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(bias)
    )(image)
    path = tmp_path_factory.mktemp("road_model") / "road.keras"
    keras.Model(image, logits).save(path)
    return path


def test_the_two_decodings_are_named_once_with_standard_for_scores():
    assert set(LABEL_DECODINGS) == {"standard", "border-aware"}
    assert (EVALUATION_LABELS, TRAINING_LABELS) == ("standard", "border-aware")
    assert color_index_of("pole") == POLE


def test_standard_scorer_counts_border_blends_and_border_aware_leaves_them_out(blend_pairs, road_everywhere):
    model = inference.load_model(road_everywhere)
    standard = inference.evaluate_split(model, blend_pairs, image_size=SIDE)
    border_aware = inference.evaluate_split(model, blend_pairs, image_size=SIDE, labels="border-aware")
    assert (standard.labels, border_aware.labels) == ("standard", "border-aware")
    assert standard.confusion.sum() == SIDE * SIDE  # every labelled pixel
    assert standard.confusion[POLE, ROAD] == SIDE * BLEND_COLUMNS  # the blend counts, as pole, predicted road
    assert border_aware.confusion.sum() == SIDE * (SIDE - BLEND_COLUMNS) and border_aware.confusion[POLE].sum() == 0
    terrain = SIDE - ROAD_COLUMNS - BLEND_COLUMNS
    assert border_aware.miou == pytest.approx((ROAD_COLUMNS / (ROAD_COLUMNS + terrain)) / 2)  # road; terrain 0
    assert standard.miou == pytest.approx((ROAD_COLUMNS / SIDE) / 3)  # road; pole and terrain 0
    assert standard.as_dict()["labels"] == "standard"


def test_make_dataset_gives_training_labels_unless_told(blend_pairs):
    def label_ids(**options) -> set[int]:
        dataset = make_dataset(blend_pairs, "train", image_size=SIDE, batch_size=1, shuffle=False, **options)
        return set(np.unique(next(iter(dataset))[1].numpy()).tolist())

    assert POLE not in label_ids(augment=True, scale_range=(1.0, 1.0))  # training batches: border-aware
    assert POLE not in label_ids(augment=False)  # the same labels unaugmented: one pipeline, one default
    assert POLE in label_ids(augment=False, labels=EVALUATION_LABELS)  # what a score counts
    with pytest.raises(ValueError, match="labels must be one of standard, border-aware"):
        make_dataset(blend_pairs, "val", labels="plain")


def evaluate_json(capsys, model: Path, data: Path, *options: str) -> dict:
    """The one JSON line `evaluate` prints."""
    argv = ["evaluate", "--model", str(model), "--data", str(data), "--image-size", str(SIDE), "--json", *options]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_command_line_scores_standard_labels_unless_told(blend_pairs, road_everywhere, capsys):
    default = evaluate_json(capsys, road_everywhere, blend_pairs)
    assert default["labels"] == "standard" and default["per_class_iou"]["pole"] == 0.0
    switched = evaluate_json(capsys, road_everywhere, blend_pairs, "--labels", "border-aware")
    assert switched["labels"] == "border-aware" and switched["per_class_iou"]["pole"] is None
    assert switched["miou"] > default["miou"]


def test_command_line_table_says_which_labels_it_scored(blend_pairs, road_everywhere, capsys):
    argv = ["evaluate", "--model", str(road_everywhere), "--data", str(blend_pairs), "--image-size", str(SIDE)]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "labels decoded: standard"


def test_a_misspelt_label_decoding_is_one_line_naming_the_option(blend_pairs, road_everywhere, capsys):
    argv = ["evaluate", "--model", str(road_everywhere), "--data", str(blend_pairs), "--labels", "plain"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert "--labels" in lines[0] and "'plain'" in lines[0] and "standard, border-aware" in lines[0]
    assert captured.out == ""
