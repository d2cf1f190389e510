"""Fixed-budget comparisons: variants build the networks they name, and results score what the model predicts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pspnet_lib import experiments, layers, models, training
from pspnet_lib.data import IGNORE_LABEL, NUM_CLASSES
from pspnet_lib.training.inputs import load_datasets

TINY = experiments.budget(image_size=32, epochs=1, limit=4, val_limit=4, batch_size=2)


def variant_model(variant: experiments.Variant, image_size: int, **budget_changes):
    """The untrained network a comparison trains for `variant` under TINY changed so: its run's config, built."""
    budget = TINY.override(image_size=image_size, **budget_changes)
    return training.build_model(experiments.train_config(variant, budget, "data", "out"))


def _pyramid(model) -> layers.PyramidPoolingModule | None:
    """The model's pyramid pooling layer, or None."""
    found = [layer for layer in model.layers if isinstance(layer, layers.PyramidPoolingModule)]
    return found[0] if found else None


def _reference_miou(labels: np.ndarray, predictions: np.ndarray) -> float:
    """mIoU by pixel sets, one class at a time, over classes present in labels or predictions."""
    keep = labels != IGNORE_LABEL
    ious = []
    for cls in range(NUM_CLASSES):
        truth, guess = (labels == cls) & keep, (predictions == cls) & keep
        union = np.sum(truth | guess)
        if union:
            ious.append(np.sum(truth & guess) / union)
    return float(np.mean(ious))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", 0),
        ("epochs", -1),
        ("batch_size", 2.5),
        ("limit", 0),
        ("val_limit", 0),
        ("crop_size", -3),
        ("batch_norm_momentum", 1.0),
        ("batch_norm_momentum", "0.9"),
        ("width", 0),
        ("width", "half"),
        ("dilate", "yes"),
    ],
)
def test_budget_rejects_bad_values_naming_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=field):
        experiments.budget(**{field: value})


def test_budget_rejects_crops_smaller_than_training_accepts() -> None:
    with pytest.raises(ValueError, match=r"crop_size must be between 32 and image_size \(128\), got 24"):
        experiments.budget(crop_size=24)


def test_budget_rejects_scenes_smaller_than_the_crop() -> None:
    with pytest.raises(ValueError, match=r"crop_size must be between 32 and image_size \(96\), got 128"):
        experiments.budget(image_size=96, crop_size=128)
    assert experiments.budget(image_size=128, crop_size=128).crop_size == 128


def test_variant_rejects_unknown_network() -> None:
    with pytest.raises(ValueError, match="network must be one of"):
        experiments.Variant("x", network="unet")


def test_table1_variants_differ_from_the_baseline_in_one_setting() -> None:
    variants = experiments.table1_variants()
    baseline = next(v for v in variants if v.name == "PPM avg, bins 1-2-3-6")
    assert baseline.changes == ()  # the budget's own network
    for variant in variants:
        changed = [name for name, _ in variant.changes]
        assert len(changed) <= 2, (variant.name, changed)  # max pooling with bins 1 changes two
    assert len({v.name for v in variants}) == len(variants)


def test_fcn_variant_has_no_pyramid_and_aux_off_has_one_output() -> None:
    fcn = variant_model(experiments.Variant("fcn", network="fcn"), 64)
    assert _pyramid(fcn) is None and len(fcn.outputs) == 2
    no_aux = variant_model(experiments.Variant("no aux", aux_head=False), 64)
    assert len(no_aux.outputs) == 1


def test_pooling_and_bins_reach_the_pyramid() -> None:
    model = variant_model(experiments.Variant("m", pooling="max", bins=(1, 3)), 64)
    assert _pyramid(model).pooling == "max" and _pyramid(model).bins == (1, 3)


def test_without_channel_reduction_keeps_all_channels_in_each_branch() -> None:
    reduced = variant_model(experiments.Variant("r"), 64)
    full = variant_model(experiments.Variant("f", channel_reduction=False), 64)
    channels = _pyramid(reduced).input.shape[-1]
    assert _pyramid(reduced).output.shape[-1] == channels + 4 * (channels // 4)
    assert _pyramid(full).output.shape[-1] == channels + 4 * channels
    images = np.zeros((1, 48, 80, 3), "float32")
    assert [tuple(o.shape) for o in full(images)] == [(1, 48, 80, NUM_CLASSES)] * 2


def test_budget_batch_norm_momentum_reaches_every_norm_of_every_network() -> None:
    from pspnet_lib.models import batch_norm_layers

    for network in models.NETWORKS:
        model = variant_model(experiments.Variant("v", network=network), 32, batch_norm_momentum=0.6)
        norms = batch_norm_layers(model)
        assert len(norms) == sum(1 for w in model.weights if w.path.endswith("moving_mean")) > 0
        assert all(norm.momentum == pytest.approx(0.6) for norm in norms), network


def test_article_variant_paints_rgb_at_the_budget_size() -> None:
    article = variant_model(experiments.Variant("a", network="article"), 32)
    assert tuple(article.output.shape) == (None, 32, 32, 3)


def test_run_comparison_rejects_duplicate_names(synthetic_pairs) -> None:
    with pytest.raises(ValueError, match="distinct names"):
        experiments.run_comparison(
            [experiments.Variant("a"), experiments.Variant("a")], TINY, synthetic_pairs
        )


@pytest.mark.slow
def test_run_comparison_scores_what_the_trained_model_predicts(synthetic_pairs) -> None:
    variants = [experiments.Variant("psp", aux_head=False), experiments.Variant("article", network="article")]
    seen = []
    results = experiments.run_comparison(variants, TINY, synthetic_pairs, on_result=seen.append)
    assert [r.variant.name for r in results] == ["psp", "article"] and seen == results
    images, labels = map(
        np.concatenate,
        zip(*experiments.validation_data(synthetic_pairs, TINY).as_numpy_iterator(), strict=True),
    )
    predictions = np.argmax(np.asarray(results[0].model(images, training=False)), axis=-1)
    assert results[0].miou == pytest.approx(_reference_miou(labels, predictions), abs=1e-9)
    assert len(results[0].history) == TINY.epochs and math.isfinite(results[0].history[0]["loss"])
    assert 0.0 <= results[1].miou <= 1.0


@pytest.mark.slow
def test_a_variant_trains_with_training_train_in_a_run_folder_kept_under_out(synthetic_pairs, tmp_path) -> None:
    """One training path: the variant's run is a `training.train` run (config, history with validation, models)."""
    budget = experiments.budget(image_size=48, crop_size=32, epochs=2, limit=4, val_limit=2, batch_size=2, seed=4)
    control = experiments.Variant("colour control", output="color", aux_head=False)
    (result,) = experiments.run_comparison([control], budget, synthetic_pairs, out=tmp_path / "runs")
    run_dir = tmp_path / "runs" / "01"
    assert (run_dir / "model.keras").is_file() and (run_dir / "history.csv").is_file()
    saved = json.loads((run_dir / "config.json").read_text())["recipe"]
    assert (saved["image_size"], saved["crop_size"], saved["epochs"], saved["val_limit"]) == (48, 32, 2, 2)
    assert saved["spec"]["output"] == "color" and saved["lr"] == pytest.approx(1e-3)  # Adam's own default
    assert (saved["name"], saved["optimizer"]) == ("comparison", "adam")  # what it really trained with
    assert [row["epoch"] for row in result.history] == [1, 2] and "val_loss" in result.history[-1]
    assert result.train_seconds == pytest.approx(60 * result.history[-1]["train_minutes"])
    assert result.model.output.shape[-1] == 3 and 0.0 <= result.miou <= 1.0


def test_a_colour_variant_builds_an_rgb_pspnet_and_says_so() -> None:
    control = experiments.Variant("c", output="color")
    assert control.spec(TINY).output == "color" and control.describe() == "pspnet, RGB regression (MSE)"
    with pytest.raises(ValueError, match="Variant 'x': output must be one of"):
        experiments.Variant("x", output="rgb")


def test_the_article_variant_refuses_crops_of_larger_scenes(synthetic_pairs, tmp_path) -> None:
    budget = experiments.budget(image_size=48, crop_size=32)
    with pytest.raises(ValueError, match=r"Variant 'a'.*crop_size must equal its image_size \(48\), got 32"):
        experiments.train_config(experiments.Variant("a", network="article"), budget, synthetic_pairs, tmp_path / "r")


def test_format_results_lists_every_variant_with_its_miou() -> None:
    from pspnet_lib.metrics import SegmentationScores

    confusion = np.array([[3, 1], [0, 4]])
    result = experiments.VariantResult(
        experiments.Variant("only one"), None, SegmentationScores.from_confusion(confusion), 1234, 5.0
    )
    table = experiments.format_results([result])
    miou = np.mean([3 / 4, 4 / 5])
    assert "only one" in table and f"{100 * miou:.1f}" in table and "1,234" in table
    assert len(table.splitlines()) == 2


def _training_batches(budget: training.Recipe, root, tmp_path):
    """The batches a variant's `training.train` run trains on under `budget` (its own `load_datasets`)."""
    config = experiments.train_config(experiments.Variant("v"), budget, root, tmp_path / "run")
    return load_datasets(config, root)[0]


def test_validation_scenes_use_image_size_and_training_crops_crop_size(synthetic_pairs, tmp_path) -> None:
    budget = experiments.budget(image_size=48, crop_size=32, limit=2, val_limit=2, batch_size=2)
    images, labels = next(iter(experiments.validation_data(synthetic_pairs, budget)))
    assert tuple(images.shape) == (2, 48, 48, 3) and tuple(labels.shape) == (2, 48, 48)
    crops, _ = next(iter(_training_batches(budget, synthetic_pairs, tmp_path)))
    assert tuple(crops.shape) == (2, 32, 32, 3)


def test_training_crops_are_the_pipelines_crops_of_scenes_at_scene_size(synthetic_pairs, tmp_path) -> None:
    """budget(crop_size=...) trains on the pipeline's own crops (`make_dataset(crop_size=...)`), one per scene."""
    budget = experiments.budget(image_size=64, crop_size=32, limit=3, val_limit=2, batch_size=2, seed=5)
    scenes = [labels for _, labels in experiments.validation_data(synthetic_pairs, budget).unbatch().as_numpy_iterator()]
    assert scenes[0].shape == (64, 64)  # validation scores whole scenes at image_size
    dataset = _training_batches(budget, synthetic_pairs, tmp_path)
    assert int(dataset.cardinality()) == 2  # 3 crops (one per scene) in batches of 2
    expected = experiments.data.make_dataset(
        synthetic_pairs, "train", image_size=64, crop_size=32, batch_size=2, limit=3, seed=5
    )
    for (images, labels), (want_images, want_labels) in zip(dataset, expected, strict=True):
        assert labels.shape == (2, 32, 32) or labels.shape == (1, 32, 32)
        np.testing.assert_array_equal(labels, want_labels)
        np.testing.assert_allclose(images, want_images)


def test_budget_backbone_width_and_dilation_reach_every_network_but_the_article() -> None:
    for variant in (experiments.Variant("fcn", network="fcn"), experiments.Variant("ppm")):
        narrow = variant_model(variant, 64, width=0.5, dilate=False)
        full = variant_model(variant, 64)
        narrow_backbone, full_backbone = narrow.get_layer("backbone"), full.get_layer("backbone")
        assert narrow_backbone.get_layer("stem_conv").filters * 2 == full_backbone.get_layer("stem_conv").filters
        rates = {
            sub.get_config()["dilation_rate"]
            for layer in narrow_backbone.layers if isinstance(layer, layers.DilatedResidualBlock)
            for sub in layer.sublayers if hasattr(sub, "dilation_rate")
        }
        assert rates == {(1, 1)}
    no_reduction = variant_model(experiments.Variant("f", channel_reduction=False), 64, width=0.5)
    assert all(branch.filters == 64 for branch in _pyramid(no_reduction).branch_convs)
