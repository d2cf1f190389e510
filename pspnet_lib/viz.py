"""Evaluation figures: training curves, per-class IoU bars, confusion matrix, prediction overlays.

Figures are built with the object API (`matplotlib.figure.Figure`, no pyplot state), so they work on a
server without a display; a notebook shows one with `display(figure)`. Training and the command line never
import this module at module level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pspnet_lib.data import CLASS_NAMES, ids_to_colors
from pspnet_lib.data.palette import overlay_colors
from pspnet_lib.run_files import atomic_write, read_history


def _history_columns(history: Sequence[Mapping[str, float]], suffix: str) -> list[str]:
    """History columns ending in `suffix` (e.g. "loss" or "miou"), training before validation."""
    columns = sorted({key for row in history for key in row if key.endswith(suffix)})
    return sorted(columns, key=lambda name: name.startswith("val_"))


def plot_training_curves(history: Sequence[Mapping[str, float]] | Path) -> Figure:
    """Loss and mIoU per epoch, training and validation, from history rows or a history.csv path."""
    rows = read_history(history) if isinstance(history, str | Path) else list(history)
    figure = Figure(figsize=(10, 3.5), layout="constrained")
    draw_training_curves(figure, rows)
    return figure


def draw_training_curves(figure, rows: Sequence[Mapping[str, float]]) -> None:
    """Draw loss and mIoU curves side by side: one colour per quantity, training solid, validation dashed."""
    loss_axes, miou_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in rows]
    for axes, suffix, title in ((loss_axes, "loss", "Loss"), (miou_axes, "miou", "mIoU")):
        columns = _history_columns(rows, suffix)
        quantities = list(dict.fromkeys(column.removeprefix("val_") for column in columns))
        for column in columns:
            style = "--" if column.startswith("val_") else "-"
            colour = f"C{quantities.index(column.removeprefix('val_'))}"
            axes.plot(epochs, [row.get(column, math.nan) for row in rows], style, color=colour, marker="o", label=column)
        axes.set(title=title, xlabel="epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if axes.lines:
            axes.legend(fontsize="small", title="train solid, val_ dashed", title_fontsize="small")


def plot_per_class_iou(per_class_iou: Sequence[float], class_names: Sequence[str] = CLASS_NAMES) -> Figure:
    """Horizontal IoU bar per class with the mean as a dashed line; absent classes (NaN) are marked "n/a"."""
    ious = np.asarray(per_class_iou, dtype=float)
    if len(ious) != len(class_names):
        raise ValueError(f"got {len(ious)} IoU values for {len(class_names)} class names")
    figure = Figure(figsize=(6, 0.3 * len(ious) + 1), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(ious))
    axes.barh(positions, np.nan_to_num(ious), color=ids_to_colors(positions) / 255.0, edgecolor="black")
    for position, iou in zip(positions, ious, strict=True):
        axes.text(0.01 if math.isnan(iou) else iou + 0.01, position, "n/a" if math.isnan(iou) else f"{iou:.2f}",
                  va="center", fontsize="small")
    if not np.isnan(ious).all():
        axes.axvline(np.nanmean(ious), linestyle="--", color="black", label=f"mIoU {np.nanmean(ious):.3f}")
        axes.legend(loc="lower right")
    axes.set(yticks=positions, yticklabels=class_names, xlim=(0, 1.1), xlabel="IoU", title="IoU per class")
    axes.invert_yaxis()
    return figure


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str] = CLASS_NAMES) -> Figure:
    """Row-normalised confusion matrix (share of each true class predicted as each class) as a heat map."""
    confusion = np.asarray(confusion, dtype=float)
    names = list(class_names) + ["(void)"] * (confusion.shape[1] - len(class_names))
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = confusion / confusion.sum(axis=1, keepdims=True)
    figure = Figure(figsize=(8, 7), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(np.nan_to_num(shares), cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(names)), names, rotation=90, fontsize="small")
    axes.set_yticks(range(len(class_names)), class_names, fontsize="small")
    axes.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (rows sum to 1)")
    figure.colorbar(image, ax=axes, shrink=0.8)
    return figure


def plot_predictions(images: np.ndarray, labels: np.ndarray | None, predictions: np.ndarray, alpha: float = 0.6) -> Figure:
    """One row per image: the photo, its ground-truth colours (when given) and the predicted overlay."""
    figure = Figure(figsize=(3 * (3 if labels is not None else 2), 1.6 * len(images) + 0.4), layout="constrained")
    draw_predictions(figure, images, labels, predictions, alpha)
    return figure


def draw_predictions(figure, images: np.ndarray, labels: np.ndarray | None, predictions: np.ndarray, alpha: float = 0.6) -> None:
    """Draw the image / ground truth / prediction grid of `plot_predictions` on a figure or sub-figure."""
    columns = ["image", "ground truth", "prediction"] if labels is not None else ["image", "prediction"]
    axes = np.asarray(figure.subplots(len(images), len(columns), squeeze=False))
    for row, image in enumerate(images):
        panels = [np.clip(image, 0, 1)]
        if labels is not None:
            panels.append(ids_to_colors(labels[row]))
        panels.append(overlay_colors(image, predictions[row], alpha))
        for column, panel in enumerate(panels):
            axes[row, column].imshow(panel)
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(columns[column])


def plot_progress(
    history: Sequence[Mapping[str, float]], images: np.ndarray, labels: np.ndarray | None, predictions: np.ndarray
) -> Figure:
    """Training curves above a grid of predictions: the live view of a running training."""
    figure = Figure(figsize=(10, 3.5 + 1.6 * len(images)), layout="constrained")
    curves, samples = figure.subfigures(2, 1, height_ratios=[3.5, 1.6 * len(images)])
    draw_training_curves(curves, history)
    draw_predictions(samples, images, labels, predictions)
    return figure


def save_figure(figure: Figure, path: Path, dpi: int = 80) -> None:
    """Write `figure` as a PNG atomically (a reader never sees half an image)."""
    atomic_write(Path(path), lambda temporary: figure.savefig(temporary, dpi=dpi, format="png"), suffix=".png")
