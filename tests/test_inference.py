"""Inference paths against constructions with known answers and a NumPy window-averaging reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pspnet_lib import inference
from pspnet_lib.data import IGNORE_LABEL, NUM_CLASSES, PALETTE, DataError, photos
from pspnet_lib.data.palette import overlay_colors


def pointwise_model(seed: int = 0) -> keras.Model:
    """1x1 convolutions only: mirroring the input mirrors the output exactly (flip-equivariant)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(8, 1, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 1, name="logits")(hidden))


def context_model(seed: int = 0) -> keras.Model:
    """A 5x5 'same' convolution, not left-right symmetric: outputs near window borders see zero padding."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    main = keras.layers.Conv2D(NUM_CLASSES, 5, padding="same", name="logits")(inputs)
    aux = keras.layers.Conv2D(NUM_CLASSES, 1, name="aux_logits")(inputs)
    return keras.Model(inputs, [main, aux])


def images(shape=(2, 13, 17), seed: int = 0) -> np.ndarray:
    """Random float32 RGB images in [0, 1]."""
    return np.random.default_rng(seed).random(shape + (3,)).astype(np.float32)


def numpy_softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def test_single_scale_probabilities_are_the_softmax_of_the_main_output():
    model, batch = context_model(), images()
    expected = numpy_softmax(np.asarray(model(batch)[0]))
    np.testing.assert_allclose(inference.predict_probabilities(model, batch), expected, atol=1e-6)


def test_flip_of_a_flip_equivariant_model_equals_plain_prediction():
    model, batch = pointwise_model(), images()
    np.testing.assert_allclose(
        inference.predict_probabilities(model, batch, flip=True), inference.predict_probabilities(model, batch),
        atol=1e-6,
    )


def test_flip_changes_a_model_that_is_not_symmetric():
    model, batch = context_model(), images()
    plain = inference.predict_probabilities(model, batch)
    assert not np.allclose(inference.predict_probabilities(model, batch, flip=True), plain, atol=1e-4)


def test_sliding_window_equal_to_the_input_equals_single_scale():
    model, batch = context_model(), images()
    np.testing.assert_allclose(
        inference.predict_probabilities(model, batch, window=(13, 17)),
        inference.predict_probabilities(model, batch),
        atol=1e-6,
    )


def reference_windows(length: int, window: int, stride: int) -> list[int]:
    """Window starts written out by hand: every `stride`, plus one flush with the end."""
    starts = [0]
    while starts[-1] + window < length:
        starts.append(min(starts[-1] + stride, length - window))
    return starts


def test_overlapping_windows_are_averaged_like_the_numpy_reference():
    model, batch = context_model(), images((1, 20, 23))
    window, overlap = (8, 10), 0.5
    total = np.zeros((1, 20, 23, NUM_CLASSES))
    counts = np.zeros((20, 23))
    for top in reference_windows(20, 8, 4):
        for left in reference_windows(23, 10, 5):
            tile = batch[:, top : top + 8, left : left + 10]
            total[:, top : top + 8, left : left + 10] += numpy_softmax(np.asarray(model(tile)[0]))
            counts[top : top + 8, left : left + 10] += 1
    expected = total / counts[None, :, :, None]
    result = inference.predict_probabilities(model, batch, window=window, overlap=overlap)
    np.testing.assert_allclose(result, expected, atol=1e-6)
    # and the windows really matter here: border effects make it differ from one pass over the whole image
    assert not np.allclose(result, inference.predict_probabilities(model, batch), atol=1e-4)


@pytest.mark.parametrize(
    "options", [{}, {"flip": True}, {"scales": (0.5, 1.0, 1.5)}, {"window": (8, 8)}, {"window": (32, 32)}]
)
def test_output_shapes_follow_odd_input_sizes(options):
    ids = inference.predict_ids(context_model(), images((2, 13, 17)), **options)
    assert ids.shape == (2, 13, 17) and ids.dtype == np.uint8
    assert ids.max() < NUM_CLASSES


def test_multi_scale_of_a_pointwise_model_on_a_flat_image_equals_single_scale():
    flat = np.broadcast_to(np.array([0.2, 0.5, 0.9], np.float32), (1, 9, 11, 3)).copy()
    model = pointwise_model()
    np.testing.assert_allclose(
        inference.predict_probabilities(model, flat, scales=(0.5, 1.0, 2.0)),
        inference.predict_probabilities(model, flat),
        atol=1e-5,
    )


class ConstantColour(keras.layers.Layer):
    """Paints every pixel with one fixed RGB colour (a stand-in for the article model's output)."""

    def __init__(self, colour, **kwargs):
        super().__init__(**kwargs)
        self.colour = np.asarray(colour, np.float32)

    def call(self, images):
        return keras.ops.zeros_like(images) + self.colour


def colour_model(colour) -> keras.Model:
    """A stand-in for the article model: paints one colour, and says so in its spec (as `models.build` does)."""
    from pspnet_lib.models import NetworkSpec

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Flatten()(ConstantColour(colour)(inputs)))
    model.spec = NetworkSpec("article", input_size=8, flat_output=True)
    return model


def test_rgb_model_output_is_decoded_to_the_nearest_palette_class():
    car = 13  # a palette colour, slightly off as a regression output would be
    model = colour_model((PALETTE[car] + 3) / 255.0)
    assert (inference.predict_ids(model, images((1, 8, 8))) == car).all()


def test_rgb_model_painting_a_void_colour_scores_as_its_nearest_class():
    model = colour_model((0.0, 0.0, 0.0))  # black: the 'unlabeled' void colour, nearest class colour truck's
    labels = np.zeros((1, 8, 8), np.int32)
    labels[0, 0, :4] = IGNORE_LABEL
    scores = inference.evaluate(model, [(images((1, 8, 8)), labels)])
    truck = 14
    assert scores.pixel_accuracy == 0.0 and scores.confusion[0, truck] == 60 and scores.confusion.sum() == 60


def test_evaluate_scores_a_perfect_and_a_known_wrong_model():
    model = pointwise_model()
    batch = images((2, 6, 6))
    labels = inference.predict_ids(model, batch).astype(np.int32)
    assert inference.evaluate(model, [(batch, labels)]).miou == pytest.approx(1.0)
    wrong = (labels + 1) % NUM_CLASSES
    assert inference.evaluate(model, [(batch, wrong)]).pixel_accuracy == 0.0


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        inference.predict_ids(pointwise_model(), np.zeros((4, 4, 3)))
    with pytest.raises(DataError, match="does not exist"):
        inference.load_model(tmp_path / "missing.keras")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        inference.load_photo(tmp_path / "broken.jpg")


def save_image(array: np.ndarray, path) -> None:
    """Write `array` as a JPEG at the synthetic pairs' quality (or PNG, by the suffix)."""
    from PIL import Image

    options = {"quality": 75, "subsampling": 0} if path.suffix == ".jpg" else {}
    Image.fromarray(array).save(path, **options)


def resized(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """`array` resized with Pillow's bilinear filter."""
    from PIL import Image

    return np.asarray(Image.fromarray(array).resize((width, height), Image.BILINEAR))


def test_a_synthetic_pair_is_detected_and_its_left_half_used(tmp_path):
    from pspnet_lib.data import synthetic_pair

    pair = synthetic_pair(0, "val", 1)
    save_image(pair.side_by_side(), tmp_path / "pair.jpg")
    photo = inference.load_photo(tmp_path / "pair.jpg")
    assert photo.shape == (256, 256, 3)
    # JPEG changes pixels a little, but the photo is the left half, not the labels
    assert np.abs(photo * 255 - pair.image).mean() < 8
    assert np.abs(photo * 255 - pair.label_colors).mean() > 30


def test_a_full_size_pair_is_detected_too(tmp_path):
    from pspnet_lib.data import synthetic_pair

    pair = synthetic_pair(0, "val", 2)
    save_image(resized(pair.side_by_side(), 2048, 1024), tmp_path / "big_pair.jpg")
    assert inference.load_photo(tmp_path / "big_pair.jpg").shape == (1024, 1024, 3)


def two_to_one_photos() -> dict[str, np.ndarray]:
    """Images twice as wide as high that are not pairs: synthetic photos stretched, noise, a gradient, a dark scene."""
    from pspnet_lib.data import synthetic_pair

    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:256, 0:512]
    gradient = np.stack([columns // 2, rows, (rows + columns // 2) // 2], -1).astype(np.uint8)
    dark = np.clip(rng.normal(6, 3, (256, 512, 3)), 0, 255).astype(np.uint8)
    photos = {f"synthetic_photo_{index}": resized(synthetic_pair(0, "val", index).image, 512, 256) for index in (1, 2, 3)}
    photos["cityscapes_size_photo"] = resized(synthetic_pair(0, "train", 1).image, 2048, 1024)
    return {**photos, "noise": rng.integers(0, 256, (256, 512, 3), dtype=np.uint8), "gradient": gradient, "dark": dark}


@pytest.mark.parametrize("name", list(two_to_one_photos()))
def test_a_two_to_one_photo_is_not_cut_in_half(tmp_path, name):
    array = two_to_one_photos()[name]
    save_image(array, tmp_path / f"{name}.jpg")
    photo = inference.load_photo(tmp_path / f"{name}.jpg")
    assert photo.shape == array.shape


def test_label_map_test_uses_the_data_palette():
    from pspnet_lib.data import synthetic_pair

    labels = synthetic_pair(0, "train", 3).label_colors
    assert photos.looks_like_label_map(labels)
    shares = photos.label_color_shares(labels, max_distance=0)
    assert shares.sum() == pytest.approx(1.0)  # exact palette colours only
    assert not photos.looks_like_label_map(synthetic_pair(0, "train", 3).image)


def test_layout_can_be_forced_either_way(tmp_path):
    from pspnet_lib.data import synthetic_pair

    pair = synthetic_pair(0, "val", 1).side_by_side()
    save_image(pair, tmp_path / "pair.png")
    assert inference.load_photo(tmp_path / "pair.png", layout="photo").shape == (256, 512, 3)
    noise = np.random.default_rng(1).integers(0, 256, (8, 16, 3), dtype=np.uint8)
    save_image(noise, tmp_path / "noise.png")
    forced = inference.load_photo(tmp_path / "noise.png", layout="pair")
    np.testing.assert_allclose(forced, noise[:, :8] / 255.0)
    save_image(noise[:, :12], tmp_path / "narrow.png")
    with pytest.raises(DataError, match=r"narrow\.png.*twice as wide"):
        inference.load_photo(tmp_path / "narrow.png", layout="pair")
    with pytest.raises(ValueError, match="layout"):
        inference.load_photo(tmp_path / "noise.png", layout="halves")


def test_overlay_blends_palette_colours_and_leaves_ignored_pixels():
    image = np.full((1, 2, 3), 0.5, np.float32)
    ids = np.array([[0, IGNORE_LABEL]], np.uint8)
    overlay = overlay_colors(image, ids, alpha=0.5)
    assert inference.overlay_colours is overlay_colors  # the deprecated spelling still works
    np.testing.assert_array_equal(overlay[0, 0], np.rint(0.5 * 127.5 + 0.5 * PALETTE[0].astype(float)))
    np.testing.assert_array_equal(overlay[0, 1], [128, 128, 128])


# --- evaluation figures ---------------------------------------------------------------------------------


def test_confusion_matrix_figure_shows_row_shares():
    from pspnet_lib import viz

    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES))
    confusion[0, 0], confusion[0, 1], confusion[1, 1] = 3, 1, 5
    shown = viz.plot_confusion_matrix(confusion).axes[0].images[0].get_array()
    assert shown[0, 0] == pytest.approx(0.75) and shown[0, 1] == pytest.approx(0.25) and shown[1, 1] == 1.0
    assert shown[2:].sum() == 0  # classes never seen: empty rows, not NaN


def test_per_class_iou_figure_draws_one_bar_per_class_at_its_iou():
    from pspnet_lib import viz

    ious = np.linspace(0, 0.9, NUM_CLASSES)
    ious[3] = np.nan
    bars = viz.plot_per_class_iou(ious).axes[0].patches
    widths = [bar.get_width() for bar in bars]
    np.testing.assert_allclose(widths, np.nan_to_num(ious))


def test_training_curves_tick_whole_epochs_only():
    from pspnet_lib import viz

    rows = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.2 / e, "logits_miou": 0.1 * e} for e in (1, 2, 3)]
    figure = viz.plot_training_curves(rows)
    figure.canvas.draw()  # the locator picks its ticks at drawing time
    for axes in figure.axes:
        ticks = [tick for tick in axes.get_xticks() if axes.get_xlim()[0] <= tick <= axes.get_xlim()[1]]
        assert ticks and all(float(tick).is_integer() for tick in ticks), ticks


def test_prediction_figure_and_png_are_written_without_a_display(tmp_path):
    from pspnet_lib import viz

    batch = images((2, 8, 8))
    ids = inference.predict_ids(pointwise_model(), batch)
    figure = viz.plot_predictions(batch, ids, ids)
    assert len(figure.axes) == 6
    viz.save_figure(figure, tmp_path / "predictions.png")
    from PIL import Image

    assert Image.open(tmp_path / "predictions.png").format == "PNG"


def test_a_library_network_refuses_images_smaller_than_it_can_be_built_for():
    from pspnet_lib import models

    model = models.build(models.NetworkSpec(backbone="small", width=0.25))  # any input size
    for height, width in ((1, 1), (3, 5), (31, 64)):
        with pytest.raises(ValueError, match=rf"{height}x{width} pixels.*at least 32x32"):
            inference.predict_ids(model, images((1, height, width)))
    with pytest.raises(ValueError, match="too small"):  # as building it for that size is refused
        models.build(models.NetworkSpec(backbone="small", width=0.25, input_size=(3, 5)))
    assert inference.predict_ids(model, images((1, 32, 40))).shape == (1, 32, 40)


def test_a_corrupt_model_file_is_named_as_not_a_model(tmp_path):
    broken = tmp_path / "model.keras"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match=r"model\.keras is not a readable \.keras model"):
        inference.load_model(broken)


def test_a_painted_colour_scores_as_the_nearest_class_colour_with_no_limit_or_border_rule():
    from pspnet_lib.data import CLASS_NAMES, PALETTE

    grey = np.full((1, 6, 6, 3), 128 / 255, np.float32)  # far (> 40) from every class colour
    ids = inference.probabilities_to_ids(inference.colors_to_probabilities(grey))
    squared = ((PALETTE.astype(float) - 128) ** 2).sum(-1)
    assert (ids == squared.argmin()).all()  # a class, never IGNORE_LABEL as decode_mask would give
    # A lone pixel of another class colour inside road: decode_mask's border rule would reject it.
    road = np.broadcast_to(PALETTE[0] / 255, (1, 7, 7, 3)).astype(np.float32).copy()
    road[0, 3, 3] = PALETTE[CLASS_NAMES.index("person")] / 255
    ids = inference.probabilities_to_ids(inference.colors_to_probabilities(road))
    assert ids[0, 3, 3] == CLASS_NAMES.index("person") and (np.delete(ids.ravel(), 24) == 0).all()
