"""A live view of training for notebooks: curves and a few predictions each epoch.

It always writes `live_view.png` into the run folder, so it also works on a server without a display; in a
Jupyter kernel it shows that image inline and replaces it each epoch (IPython is imported only then).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from pspnet_lib.inference import predict_ids


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
        self.images = np.asarray(images, dtype=np.float32)
        self.labels = None if labels is None else np.asarray(labels)
        self.every = every
        self.history: list[dict[str, float]] = []
        self._handle = None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        """Record the epoch's logs and, every `every` epochs, redraw."""
        self.history.append({"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()}})
        if (epoch + 1) % self.every == 0:
            self.draw()

    def draw(self) -> Path:
        """Write the current view to `live_view.png` (and update it in a notebook); return its path."""
        from pspnet_lib import viz

        predictions = predict_ids(self.model, self.images)
        viz.save_figure(viz.plot_progress(self.history, self.images, self.labels, predictions), self.path)
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
