"""Interactive explorers for the notebooks: a dilation-rate slider and a pyramid-bins control.

Each explorer owns ipywidgets controls, a readout (`ipywidgets.HTML`) and a matplotlib `Figure`
that is redrawn whenever a control changes; the figure reaches the browser as PNG bytes in an
`ipywidgets.Image`, so no interactive matplotlib backend is needed. `show()` first displays a
static PNG of the default view (kept in the saved notebook for readers without a kernel), then
the live controls. Controls, readouts and figures carry stable CSS classes (`pspnet-...`, below) so
browser tests and course styling can find them without depending on labels or layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets
import numpy as np
from IPython.display import Image as StaticImage
from IPython.display import display
from matplotlib.figure import Figure

from pspnet_lib import diagrams

BIN_CHOICES = (1, 2, 3, 4, 6, 8)
READOUT_CLASS = "pspnet-readout"
FIGURE_CLASS = "pspnet-figure"
DILATION_SLIDER_CLASS = "pspnet-dilation-slider"
LAYERS_SLIDER_CLASS = "pspnet-layers-slider"
BINS_CONTROL_CLASS = "pspnet-bins-control"


class Explorer:
    """Shared plumbing: a figure, a live PNG view, a readout, and `show()`; subclasses draw."""

    def __init__(self, controls: Sequence[ipywidgets.Widget], figsize: tuple[float, float]) -> None:
        self.controls = list(controls)
        self.figure = Figure(figsize=figsize, layout="constrained")
        self.readout = ipywidgets.HTML().add_class(READOUT_CLASS)
        self.view = ipywidgets.Image(format="png").add_class(FIGURE_CLASS)
        for control in self.controls:
            control.observe(self.redraw, names="value")

    def draw(self) -> str:
        """Draw the current state into the cleared `self.figure`; return the readout text."""
        raise NotImplementedError

    def redraw(self, change: dict | None = None) -> None:
        """Redraw the figure and the readout for the controls' current values."""
        self.figure.clear()
        self.readout.value = self.draw()
        self.view.value = diagrams.figure_png(self.figure)

    @property
    def widget(self) -> ipywidgets.VBox:
        """The live controls, readout and figure, ready to display."""
        return ipywidgets.VBox([ipywidgets.HBox(self.controls), self.readout, self.view])

    def show(self) -> None:
        """Display a static snapshot of the current view, then the live widget below it."""
        display(StaticImage(diagrams.figure_png(self.figure)))
        display(self.widget)


class DilationExplorer(Explorer):
    """Slide the dilation rate and the number of stacked layers; see the sampled taps and receptive field."""

    def __init__(
        self,
        image: np.ndarray,
        kernel_size: int = 3,
        rate: int = 2,
        num_layers: int = 1,
        max_rate: int = 8,
        max_layers: int = 4,
        feature_stride: int = 1,
    ) -> None:
        self.image = image
        self.kernel_size = kernel_size
        self.feature_stride = feature_stride
        self.rate = ipywidgets.IntSlider(value=rate, min=1, max=max_rate, description="dilation")
        self.rate.add_class(DILATION_SLIDER_CLASS)
        self.layers = ipywidgets.IntSlider(value=num_layers, min=1, max=max_layers, description="layers")
        self.layers.add_class(LAYERS_SLIDER_CLASS)
        super().__init__([self.rate, self.layers], figsize=(9, 4))
        self.redraw()

    @property
    def dilations(self) -> list[int]:
        """The stack's dilation rates, one per layer."""
        return [self.rate.value] * self.layers.value

    def draw(self) -> str:
        """Kernel taps on a grid (left) and the stack's sampled pixels over the scene (right)."""
        kernel_ax, scene_ax = self.figure.subplots(1, 2, width_ratios=(1, 2.5))
        diagrams.draw_kernel_grid(kernel_ax, self.kernel_size, self.rate.value)
        diagrams.draw_receptive_field(
            scene_ax, self.image, self.kernel_size, self.dilations, feature_stride=self.feature_stride
        )
        scene_ax.set_title(f"{self.layers.value} stacked layer(s): sampled pixels and receptive field")
        return self.readout_text()

    def readout_text(self) -> str:
        """One sentence: the receptive field, and how many of its pixels are actually sampled."""
        side = diagrams.receptive_field_size(self.kernel_size, self.dilations)
        sampled = len(diagrams.sampled_offsets(self.kernel_size, self.dilations))
        k = self.kernel_size
        text = (
            f"Receptive field: {side} x {side} pixels ({self.layers.value} layer(s) of {k}x{k}, "
            f"dilation {self.rate.value}); {sampled} of its {side * side} pixels are sampled."
        )
        if self.feature_stride > 1:
            image_side = side * self.feature_stride
            text += f" At feature stride {self.feature_stride}: {image_side} x {image_side} image pixels."
        return text


class PyramidExplorer(Explorer):
    """Choose the pyramid's bins; see each pooling grid over the scene and the pooled, upsampled maps."""

    def __init__(
        self,
        image: np.ndarray,
        feature_map: np.ndarray | None = None,
        bins: Sequence[int] = (1, 2, 3, 6),
        channels: int = 2048,
    ) -> None:
        unknown = sorted(set(bins) - set(BIN_CHOICES))
        if unknown:
            raise ValueError(f"bins must be chosen from {BIN_CHOICES}, got {unknown}")
        self.image = image
        self.feature_map = diagrams.luminance(image) if feature_map is None else feature_map
        self.channels = channels
        self.bins = ipywidgets.SelectMultiple(
            options=BIN_CHOICES, value=tuple(bins), description="bins", rows=len(BIN_CHOICES)
        ).add_class(BINS_CONTROL_CLASS)
        super().__init__([self.bins], figsize=(10, 5))
        self.redraw()

    @property
    def chosen_bins(self) -> list[int]:
        """The selected bin counts, smallest first (the global 1x1 pool comes first)."""
        return sorted(self.bins.value)

    def draw(self) -> str:
        """Three rows per chosen bin count: grid over the scene, pooled map, upsampled map."""
        if not self.chosen_bins:
            return "Choose at least one bin count."
        diagrams.draw_pyramid(self.figure, self.image, self.feature_map, self.chosen_bins)
        return self.readout_text()

    def readout_text(self) -> str:
        """One sentence: the pooled grid sizes and the channels each branch keeps (C / number of levels)."""
        grids = ", ".join(f"{b}x{b}" for b in self.chosen_bins)
        levels = len(self.chosen_bins)
        per_branch = self.channels // levels
        return (
            f"{levels} level(s), pooled grids {grids}; each branch reduces {self.channels} channels to "
            f"{per_branch}, concatenated with the input: {self.channels + levels * per_branch} channels."
        )
