"""A live view of training for notebooks: curves and a few predictions each epoch.

It always writes `live_view.png` into the run folder, so it also works on a server without a display; in a
Jupyter kernel it shows that image inline and replaces it each epoch (IPython is imported only then).
When training starts it reads the run's `history.csv`, so the curves of a resumed run show every epoch.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from pspnet_lib.inference import predict_ids
from pspnet_lib.run_files import read_history


def _notebook_display():
    """IPython's `display` and `Image` when running inside a Jupyter kernel, else None."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return None
    shell = get_ipython()
    return (display, Image) if shell is not None and getattr(shell, "kernel", None) is not None else None


class LiveView(keras.callbacks.Callback):
    """Each `every` epochs: draw loss/mIoU curves and predictions on `images`, save a PNG, show it in a notebook."""

    def __init__(
        self, run_dir: Path, images: np.ndarray, labels: np.ndarray | None = None, every: int = 1
    ) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path = Path(run_dir) / "live_view.png"
        self.history_path = Path(run_dir) / "history.csv"
        self.images = np.asarray(images, dtype=np.float32)
        self.labels = None if labels is None else np.asarray(labels)
        self.every = every
        self.history: list[dict[str, float]] = []
        self.figure = None  # the last figure drawn
        self._handle = None

    def on_train_begin(self, logs=None) -> None:
        """Start from the epochs already in the run's history.csv (a resumed run), else from none."""
        self.history = read_history(self.history_path)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        """Record the epoch's logs (replacing a row of the same epoch from an interrupted run) and maybe redraw."""
        row = {"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()}}
        self.history = [*(old for old in self.history if old["epoch"] < epoch + 1), row]
        if (epoch + 1) % self.every == 0:
            self.draw()

    def draw(self) -> Path:
        """Write the current view to `live_view.png` (and update it in a notebook); return its path."""
        from pspnet_lib import viz

        predictions = predict_ids(self.model, self.images)
        self.figure = viz.plot_progress(self.history, self.images, self.labels, predictions)
        viz.save_figure(self.figure, self.path)
        self._show()
        return self.path

    def _show(self) -> None:
        """Show (first time) or replace (later) the PNG inline when running in a notebook."""
        notebook = _notebook_display()
        if notebook is None:
            return
        display, image_type = notebook
        image = image_type(filename=str(self.path))
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)
