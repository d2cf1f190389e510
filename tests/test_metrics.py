"""Segmentation scores against a pixel-set reference written here, independently of pspnet_lib.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pspnet_lib import metrics
from pspnet_lib.data import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES


def reference_scores(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> tuple[list, float, float]:
    """Per-class IoU from pixel sets (|pred=c & label=c| / |pred=c or label=c|), their mean, and accuracy."""
    valid = labels != IGNORE_LABEL
    ious = []
    for c in range(num_classes):
        intersection = np.count_nonzero((labels == c) & (predictions == c) & valid)
        union = np.count_nonzero(((labels == c) | (predictions == c)) & valid)
        ious.append(intersection / union if union else math.nan)
    present = [iou for iou in ious if not math.isnan(iou)]
    accuracy = np.count_nonzero((labels == predictions) & valid) / np.count_nonzero(valid)
    return ious, sum(present) / len(present), accuracy


def random_segmentation(seed: int, shape=(2, 9, 11), num_classes=NUM_CLASSES, ignore_fraction=0.2):
    """Labels with some ignored pixels and predictions that agree on about half of the pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, shape).astype(np.uint8)
    predictions = np.where(rng.random(shape) < 0.5, labels, rng.integers(0, num_classes, shape)).astype(np.uint8)
    labels[rng.random(shape) < ignore_fraction] = IGNORE_LABEL
    return labels, predictions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_scores_match_pixel_set_reference(seed):
    labels, predictions = random_segmentation(seed)
    scores = metrics.SegmentationScores.from_confusion(metrics.confusion_matrix(labels, predictions))
    ious, miou, accuracy = reference_scores(labels, predictions, NUM_CLASSES)
    np.testing.assert_allclose(scores.per_class_iou, ious, equal_nan=True)
    assert scores.miou == pytest.approx(miou)
    assert scores.pixel_accuracy == pytest.approx(accuracy)


def test_confusion_matrix_counts_each_pixel_once_and_skips_ignored():
    labels = np.array([[0, 0, 1], [2, IGNORE_LABEL, 1]])
    predictions = np.array([[0, 1, 1], [1, 2, 1]])
    expected = np.zeros((3, 3), int)
    for true, predicted in [(0, 0), (0, 1), (1, 1), (2, 1), (1, 1)]:
        expected[true, predicted] += 1
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, predictions, num_classes=3), expected)


def test_absent_class_has_nan_iou_and_is_left_out_of_the_mean():
    labels = np.array([0, 0, 1, 1])
    predictions = np.array([0, 0, 1, 0])
    scores = metrics.SegmentationScores.from_confusion(metrics.confusion_matrix(labels, predictions, 3))
    assert math.isnan(scores.per_class_iou[2])
    assert scores.miou == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_void_predictions_count_as_misses():
    labels = np.array([0, 0, 1, 1])
    predictions = np.array([0, IGNORE_LABEL, 1, IGNORE_LABEL])
    confusion = metrics.confusion_matrix(labels, predictions, 2, void_predictions=True)
    assert confusion.shape == (2, 3)
    np.testing.assert_allclose(metrics.per_class_iou(confusion), [0.5, 0.5])
    assert metrics.pixel_accuracy(confusion) == pytest.approx(0.5)


def test_nothing_scored_gives_nan_not_an_error():
    labels = np.full((2, 2), IGNORE_LABEL)
    scores = metrics.SegmentationScores.from_confusion(metrics.confusion_matrix(labels, np.zeros((2, 2), int)))
    assert math.isnan(scores.miou) and math.isnan(scores.pixel_accuracy)
    assert scores.as_dict()["miou"] is None


@pytest.mark.parametrize(
    ("labels", "predictions", "message"),
    [
        (np.zeros((2, 2)), np.zeros((2, 3)), "same shape"),
        (np.full((2, 2), 19), np.zeros((2, 2)), "labels"),
        (np.zeros((2, 2)), np.full((2, 2), IGNORE_LABEL), "predictions"),
    ],
)
def test_bad_ids_or_shapes_raise_clear_errors(labels, predictions, message):
    with pytest.raises(ValueError, match=message):
        metrics.confusion_matrix(labels, predictions)


def test_as_dict_names_every_class():
    labels, predictions = random_segmentation(3)
    summary = metrics.SegmentationScores.from_confusion(metrics.confusion_matrix(labels, predictions)).as_dict()
    assert list(summary["per_class_iou"]) == list(CLASS_NAMES)
    assert set(summary) == {"miou", "pixel_accuracy", "per_class_iou"}


@pytest.mark.parametrize("seed", [0, 1])
def test_keras_metrics_on_logits_match_reference(seed):
    labels, _ = random_segmentation(seed)
    logits = np.random.default_rng(seed + 10).normal(size=labels.shape + (NUM_CLASSES,)).astype(np.float32)
    predictions = logits.argmax(-1)
    _, miou, accuracy = reference_scores(labels, predictions, NUM_CLASSES)
    miou_metric, accuracy_metric = metrics.segmentation_metrics()
    for metric in (miou_metric, accuracy_metric):
        metric.update_state(labels[:1].astype(np.int32), logits[:1])
        metric.update_state(labels[1:].astype(np.int32), logits[1:])
    assert float(miou_metric.result()) == pytest.approx(miou, rel=1e-5)
    assert float(accuracy_metric.result()) == pytest.approx(accuracy, rel=1e-5)
