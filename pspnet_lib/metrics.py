"""Segmentation scores: confusion matrix, per-class IoU, mIoU and pixel accuracy, in NumPy and as Keras metrics.

The NumPy functions score whole evaluations; the Keras metrics track the same numbers during `fit`.
Pixels whose label is `IGNORE_LABEL` (255) never count, whatever the model predicts there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from pspnet_lib.data import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES


def _check_ids(name: str, ids: np.ndarray, num_classes: int) -> None:
    """Raise ValueError when `ids` (already stripped of ignored pixels) leave 0..num_classes-1."""
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(
            f"{name} must hold class ids 0..{num_classes - 1} (or {IGNORE_LABEL} = ignore in labels); "
            f"found values {int(ids.min())}..{int(ids.max())}"
        )


def confusion_matrix(
    labels: np.ndarray,
    predictions: np.ndarray,
    num_classes: int = NUM_CLASSES,
    ignore_label: int = IGNORE_LABEL,
    void_predictions: bool = False,
) -> np.ndarray:
    """Int64 counts, rows true classes, columns predicted ones; pixels labelled `ignore_label` are skipped.

    Shape (num_classes, num_classes). With `void_predictions=True` predictions may also be `ignore_label`
    (an RGB model painting a void colour): they land in an extra last column and count as misses.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must have the same shape")
    valid = labels != ignore_label
    true_ids = labels[valid].astype(np.int64)
    predicted_ids = predictions[valid].astype(np.int64)
    columns = num_classes + int(void_predictions)
    if void_predictions:
        predicted_ids = np.where(predicted_ids == ignore_label, num_classes, predicted_ids)
    _check_ids("labels", true_ids, num_classes)
    _check_ids("predictions", predicted_ids, columns)
    counts = np.bincount(true_ids * columns + predicted_ids, minlength=num_classes * columns)
    return counts.reshape(num_classes, columns)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class, TP / (TP + FP + FN); NaN for a class absent from both labels and predictions."""
    confusion = np.asarray(confusion, dtype=np.float64)
    num_classes = confusion.shape[0]
    true_positives = np.diag(confusion)
    union = confusion[:, :num_classes].sum(axis=0) + confusion.sum(axis=1) - true_positives
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positives / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes that occur (labels or predictions); NaN when no pixel was scored."""
    ious = per_class_iou(confusion)
    present = ious[~np.isnan(ious)]
    return float(present.mean()) if present.size else math.nan


def pixel_accuracy(confusion: np.ndarray) -> float:
    """Fraction of scored (non-ignored) pixels whose predicted class is right; NaN when none was scored."""
    confusion = np.asarray(confusion)
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else math.nan


@dataclass(frozen=True)
class SegmentationScores:
    """Everything an evaluation reports, computed from one confusion matrix."""

    confusion: np.ndarray
    per_class_iou: np.ndarray
    miou: float
    pixel_accuracy: float
    labels: str | None = None  # the label decoding scored against (palette.LABEL_DECODINGS), when known

    @classmethod
    def from_confusion(cls, confusion: np.ndarray, labels: str | None = None) -> SegmentationScores:
        """Scores of an accumulated confusion matrix (against labels decoded the `labels` way, when known)."""
        return cls(confusion, per_class_iou(confusion), mean_iou(confusion), pixel_accuracy(confusion), labels)

    def as_dict(self, class_names: Sequence[str] = CLASS_NAMES) -> dict:
        """JSON-ready summary: `miou`, `pixel_accuracy`, `per_class_iou` by class name (None if absent), and the
        label decoding as `labels` when known."""
        if len(class_names) != len(self.per_class_iou):
            raise ValueError(f"need {len(self.per_class_iou)} class names, got {len(class_names)}")
        summary = {
            "miou": _json_float(self.miou),
            "pixel_accuracy": _json_float(self.pixel_accuracy),
            "per_class_iou": {name: _json_float(iou) for name, iou in zip(class_names, self.per_class_iou, strict=True)},
        }
        return summary if self.labels is None else {**summary, "labels": self.labels}


def _json_float(value: float) -> float | None:
    """`value` as a plain float, or None for NaN (JSON has no NaN)."""
    return None if math.isnan(value) else float(value)


def mean_iou_metric(num_classes: int = NUM_CLASSES, name: str = "miou") -> keras.metrics.MeanIoU:
    """Keras mIoU on logits (argmax inside), skipping pixels labelled `IGNORE_LABEL`."""
    return keras.metrics.MeanIoU(
        num_classes=num_classes, ignore_class=IGNORE_LABEL, sparse_y_pred=False, name=name
    )


@keras.saving.register_keras_serializable(package="pspnet_lib")
class PixelAccuracy(keras.metrics.MeanIoU):
    """Keras pixel accuracy on logits that skips pixels labelled `IGNORE_LABEL` (trace / sum of the confusion)."""

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "pixel_accuracy", **kwargs) -> None:
        kwargs.setdefault("ignore_class", IGNORE_LABEL)
        kwargs.setdefault("sparse_y_pred", False)
        super().__init__(num_classes=num_classes, name=name, **kwargs)

    def result(self):
        """Correct pixels over scored pixels (0 before any update)."""
        confusion = keras.ops.cast(self.total_cm, self.dtype)
        return keras.ops.divide_no_nan(keras.ops.trace(confusion), keras.ops.sum(confusion))


def segmentation_metrics(num_classes: int = NUM_CLASSES) -> list[keras.metrics.Metric]:
    """The metrics `fit` tracks on the main output: mIoU and pixel accuracy."""
    return [mean_iou_metric(num_classes), PixelAccuracy(num_classes)]
