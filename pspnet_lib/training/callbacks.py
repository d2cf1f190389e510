"""Callbacks: backup/resume, best-mIoU checkpoint, CSV history, time budget, NaN guard, precise batch norm
statistics; kill-safe model saves.

The run folder's plain files (atomic writes, history.csv) live in `pspnet_lib.run_files`, which needs no
TensorFlow; the names are re-exported here.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras

from pspnet_lib.models import batch_norm_layers
from pspnet_lib.run_files import atomic_write, atomic_write_text, history_csv, read_history
from pspnet_lib.training.optimizers import POLY_POWER

# Whole training scenes a precise batch norm pass averages: 150 and 300 gave the same mIoU (within 0.1 point)
# on finished 10-minute CPU runs.
PRECISE_BN_SCENES = 150
# What the pass costs per scene, in validated images: it reads and decodes each JPEG and runs eagerly in
# training mode (2-core CPU: 5.1 s for 152 scenes, 1.8 s to validate 152 pairs).
PRECISE_BN_COST_PER_SCENE = 3.0


def atomic_save_model(model: keras.Model, path: Path) -> None:
    """`model.save(path)` (a .keras file) through a temporary file and `os.replace`."""
    if Path(path).suffix != ".keras":
        raise ValueError(f"model files must end in .keras, got {path}")
    atomic_write(path, lambda temporary: model.save(temporary), suffix=".keras")


class CsvHistory(keras.callbacks.Callback):
    """history.csv with one row per finished epoch (epoch numbers from 1), rewritten atomically each epoch.

    On a resumed run, rows from the epoch training restarts at onwards are dropped first, so an epoch
    interrupted between its backup and its history row is never counted twice.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._rows: list[dict[str, float]] | None = None

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        """On the first epoch of this `fit`, keep only the rows of epochs already done."""
        if self._rows is None:
            self._rows = [row for row in read_history(self.path) if row["epoch"] <= epoch]

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        """Append this epoch's logs and rewrite the file."""
        self._rows.append({"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()}})
        atomic_write_text(self.path, history_csv(self._rows))


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model (.keras, atomically) whenever `monitor` beats its best value, remembered across resumes."""

    def __init__(self, path: Path, monitor: str = "val_miou", mode: str = "max") -> None:
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.record_path = self.path.with_suffix(".json")
        self.best = self._recorded_best()

    def _recorded_best(self) -> float | None:
        """The best value saved by an earlier (interrupted) run, if any."""
        if not (self.record_path.is_file() and self.path.is_file()):
            return None
        return json.loads(self.record_path.read_text()).get(self.monitor)

    def _improves(self, value: float) -> bool:
        """True when `value` is better than the best so far."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        """Save when the monitored value improved."""
        value = (logs or {}).get(self.monitor)
        if value is None or not self._improves(float(value)):
            return
        self.best = float(value)
        atomic_save_model(self.model, self.path)
        atomic_write_text(self.record_path, json.dumps({"epoch": epoch + 1, self.monitor: self.best}))


class TimeBudget(keras.callbacks.Callback):
    """Stop training when `max_minutes` are spent, the last validation included; optionally anneal the lr to then.

    `max_minutes` None sets no limit: the callback only keeps the clock (`train_minutes`).

    The clock counts this `fit` plus, on a resumed run, the minutes earlier sessions spent: every epoch's logs get
    `train_minutes` (so history.csv records it), and the first epoch of a resumed `fit` reads it back from the
    row of the last finished epoch in `history_path`. The latest validation's duration is held in reserve, so
    the validation that follows the last step also ends by the deadline; `final_pass_share` reserves that much
    more of it for work done before the last validation only (`PreciseBatchNorm`'s pass).

    With `base_learning_rate`, the learning rate is set before every step to the poly schedule of the time left:
    base * (1 - progress) ** power, progress = max(seconds spent / seconds for training, step / `total_steps`),
    so it reaches 0 at whichever end comes first, the deadline or the last epoch: the final model is annealed.
    """

    def __init__(
        self,
        max_minutes: float | None,
        history_path: Path | None = None,
        base_learning_rate: float | None = None,
        total_steps: int | None = None,
        power: float = POLY_POWER,
        final_pass_share: float = 0.0,
    ) -> None:
        super().__init__()
        if max_minutes is not None and not max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0 or None, got {max_minutes}")
        if base_learning_rate is not None and not base_learning_rate > 0:
            raise ValueError(f"base_learning_rate must be > 0, got {base_learning_rate}")
        self.max_seconds = math.inf if max_minutes is None else max_minutes * 60.0
        self.history_path = None if history_path is None else Path(history_path)
        self.base_learning_rate, self.total_steps, self.power = base_learning_rate, total_steps, power
        self.final_pass_share = final_pass_share
        self.stopped = False
        self.earlier_seconds = 0.0  # spent by the sessions before a resume
        self.validation_seconds = 0.0  # the latest validation's duration, held in reserve
        self._start = self._validation_start = time.monotonic()
        self._resume_checked = False

    def elapsed_seconds(self) -> float:
        """Seconds of the budget spent so far, earlier sessions included."""
        return self.earlier_seconds + time.monotonic() - self._start

    @property
    def reserved_seconds(self) -> float:
        """Seconds kept for what follows the last step: the last validation and the final pass before it."""
        return self.validation_seconds * (1.0 + self.final_pass_share)

    def progress(self) -> float:
        """How far training is towards its end, 0 to 1: the larger of the time share and the step share."""
        training_seconds = max(self.max_seconds - self.reserved_seconds, 1e-9)
        share = self.elapsed_seconds() / training_seconds
        if self.total_steps:
            share = max(share, int(self.model.optimizer.iterations) / self.total_steps)
        return min(share, 1.0)

    def on_train_begin(self, logs=None) -> None:
        """Start the clock."""
        self._start = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        """On the first epoch of this `fit`, count the minutes of the epochs an earlier session finished."""
        if self._resume_checked:
            return
        self._resume_checked = True
        rows = [row for row in read_history(self.history_path) if row["epoch"] <= epoch] if self.history_path else []
        self.earlier_seconds = 60.0 * rows[-1].get("train_minutes", 0.0) if rows else 0.0

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        """Set the annealed learning rate for this step."""
        if self.base_learning_rate is not None:
            self.model.optimizer.learning_rate = self.base_learning_rate * (1.0 - self.progress()) ** self.power

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        """Ask Keras to stop when the time left would not cover another validation."""
        if self.elapsed_seconds() + self.reserved_seconds >= self.max_seconds:
            self.stopped = self.model.stop_training = True

    def on_test_begin(self, logs=None) -> None:
        """Time the validation."""
        self._validation_start = time.monotonic()

    def on_test_end(self, logs=None) -> None:
        """Remember how long the validation took."""
        self.validation_seconds = time.monotonic() - self._validation_start

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        """Record the minutes spent so far in the epoch's logs (history.csv's `train_minutes`)."""
        if logs is not None:
            logs["train_minutes"] = self.elapsed_seconds() / 60.0


def recompute_batch_norm_statistics(model: keras.Model, image_batches) -> int:
    """Set every batch norm's moving mean and variance to the plain average of its batch statistics over
    `image_batches` ("precise BN", Wu & Johnson 2021); return the number of batches.

    Training keeps exponential averages of the last few steps' batch statistics, measured on augmented crops;
    the network is scored on whole scenes. Batch k (from 0) is run in training mode with momentum k / (k + 1),
    which makes each moving statistic the mean over the batches so far. Weights do not change.
    """
    layers = batch_norm_layers(model)
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for images in image_batches:
            for layer in layers:
                layer.momentum = count / (count + 1)
            model(images, training=True)
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return count


class PreciseBatchNorm(keras.callbacks.Callback):
    """Before the last validation of a run (time budget reached, or last epoch), recompute the batch norm
    statistics over `image_batches` of whole training scenes (`recompute_batch_norm_statistics`), so the
    last validation, best.keras and model.keras all use them. List it after `TimeBudget` (its pass then
    counts as validation time; reserve it with TimeBudget's `final_pass_share`, see `precise_pass_share`)."""

    def __init__(self, image_batches) -> None:
        super().__init__()
        self.image_batches = image_batches
        self.last_epoch = False

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        """Note whether this is the run's last epoch."""
        self.last_epoch = epoch + 1 >= self.params.get("epochs", math.inf)

    def on_test_begin(self, logs=None) -> None:
        """Recompute the statistics when this validation is the run's last."""
        if self.last_epoch or self.model.stop_training:
            recompute_batch_norm_statistics(self.model, self.image_batches)


def precise_pass_share(scenes: int, validated_images: int) -> float:
    """TimeBudget's `final_pass_share` for a precise batch norm pass over `scenes` (validations of `validated_images`)."""
    return PRECISE_BN_COST_PER_SCENE * scenes / max(validated_images, 1)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training was stopped."""


class NanGuard(keras.callbacks.Callback):
    """Like keras TerminateOnNaN(raise_error=True), but its error names the epoch and batch and says what to do.

    It watches the training loss after every batch and every value of the epoch's logs (validation included)
    at its end. Raising (rather than stopping gracefully) keeps the last good backup: no NaN weights are
    saved, no model.keras is written, and the command line exits with status 1. List it first.
    """

    def __init__(self) -> None:
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        """Remember the epoch for the message."""
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        """Raise TrainingDiverged as soon as the running loss is NaN or infinite."""
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise TrainingDiverged(
                f"Training stopped: the loss became NaN or infinite at epoch {self._epoch + 1}, "
                f"batch {batch + 1}. Try a lower learning rate (--lr) or check the labels."
            )

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        """Raise TrainingDiverged when any value of the epoch (e.g. val_loss) is NaN or infinite."""
        bad = sorted(key for key, value in (logs or {}).items() if not math.isfinite(float(value)))
        if bad:
            self.model.stop_training = True
            raise TrainingDiverged(
                f"Training stopped: {', '.join(bad)} became NaN or infinite at the end of epoch {epoch + 1}. "
                "Try a lower learning rate (--lr) or check the labels."
            )


class SaveFinalModel(keras.callbacks.Callback):
    """Save the model (atomically) when training ends; listed before BackupAndRestore deletes its backup."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)

    def on_train_end(self, logs=None) -> None:
        """Write the final model."""
        atomic_save_model(self.model, self.path)


def run_callbacks(run_dir: Path, monitor: str, tensorboard: bool = True) -> list[keras.callbacks.Callback]:
    """NaN guard, history.csv, best.keras, model.keras, backup/ (resume) and optionally TensorBoard logs/."""
    run_dir = Path(run_dir)
    callbacks = [
        NanGuard(),
        CsvHistory(run_dir / "history.csv"),
        BestCheckpoint(run_dir / "best.keras", monitor=monitor),
        SaveFinalModel(run_dir / "model.keras"),
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    return callbacks
