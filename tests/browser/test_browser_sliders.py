"""Issue 8: in JupyterLab, moving the notebooks' controls redraws the readout (as the formulas predict) and the figure."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from figure_pixels import changed_fraction
from lab_notebook import LabNotebook
from widget_explorer import ControlSpec, ExplorerView

DILATION_NOTEBOOK = "01_dilated_convolutions.ipynb"
PYRAMID_NOTEBOOK = "03_pyramid_pooling_module.ipynb"
DILATION_SLIDER = ControlSpec("pspnet-dilation-slider", "widget-slider")
LAYERS_SLIDER = ControlSpec("pspnet-layers-slider", "widget-slider")
BINS_CONTROL = ControlSpec("pspnet-bins-control", "widget-select-multiple")

# A redraw for another setting must repaint at least this share of the figure; the same setting, none of it.
MIN_CHANGED_FRACTION = 0.005

RECEPTIVE_FIELD_READOUT = re.compile(
    r"Receptive field: (?P<side>\d+) x (?P=side) pixels \((?P<layers>\d+) layer\(s\) of (?P<k>\d+)x(?P=k), "
    r"dilation (?P<rate>\d+)\); (?P<sampled>\d+) of its (?P<area>\d+) pixels are sampled\."
    r"(?: At feature stride (?P<stride>\d+): (?P<image_side>\d+) x (?P=image_side) image pixels\.)?"
)
PYRAMID_READOUT = re.compile(
    r"(?P<levels>\d+) level\(s\), pooled grids (?P<grids>[\dx, ]+); each branch reduces (?P<channels>\d+) "
    r"channels to (?P<per_branch>\d+), concatenated with the input: (?P<total>\d+) channels\."
)


def parse(pattern: re.Pattern[str], text: str) -> dict[str, str | None]:
    """The named groups of `pattern` fully matching the readout `text` (fails naming the text otherwise)."""
    match = pattern.fullmatch(text)
    assert match, f"readout {text!r} does not read like {pattern.pattern!r}"
    return match.groupdict()


def receptive_field_side(kernel_size: int, dilations: list[int]) -> int:
    """Side of the receptive field of stacked stride-1 dilated convolutions: 1 + sum (k - 1) * d."""
    return 1 + sum((kernel_size - 1) * rate for rate in dilations)


def sampled_pixel_count(kernel_size: int, dilations: list[int]) -> int:
    """How many distinct input pixels the stack reads: distinct sums of per-layer tap offsets, squared (2-D)."""
    half = kernel_size // 2
    taps_per_layer = [range(-half * rate, half * rate + 1, rate) for rate in dilations]
    offsets_1d = {sum(choice) for choice in itertools.product(*taps_per_layer)}
    return len(offsets_1d) ** 2


def expected_receptive_field(
    kernel_size: int, layers: int, rate: int, stride: int | None
) -> dict[str, str | None]:
    """The readout's numbers for this setting, from the formulas above."""
    dilations = [rate] * layers
    side = receptive_field_side(kernel_size, dilations)
    return {
        "side": str(side),
        "layers": str(layers),
        "k": str(kernel_size),
        "rate": str(rate),
        "sampled": str(sampled_pixel_count(kernel_size, dilations)),
        "area": str(side * side),
        "stride": None if stride is None else str(stride),
        "image_side": None if stride is None else str(side * stride),
    }


def expected_pyramid(bins: set[int], channels: int) -> dict[str, str]:
    """The PPM readout for `bins`: one pooled b x b grid per bin, C / levels channels per branch, concatenated."""
    levels = len(bins)
    per_branch = channels // levels
    return {
        "levels": str(levels),
        "grids": ", ".join(f"{b}x{b}" for b in sorted(bins)),
        "channels": str(channels),
        "per_branch": str(per_branch),
        "total": str(channels + levels * per_branch),
    }


@pytest.fixture(scope="module")
def dilation_notebook(open_notebook) -> LabNotebook:
    """Notebook 01, run to the end in JupyterLab."""
    return open_notebook(DILATION_NOTEBOOK)


@pytest.fixture(scope="module")
def pyramid_notebook(open_notebook) -> LabNotebook:
    """Notebook 03, run to the end in JupyterLab."""
    return open_notebook(PYRAMID_NOTEBOOK)


def slider_step_away_from_bound(view: ExplorerView) -> tuple[str, str, int]:
    """(key that moves the slider one step inside its range, the key that moves it back, the step's sign)."""
    _, high = view.slider_bounds()
    return ("ArrowRight", "ArrowLeft", 1) if view.slider_value() < high else ("ArrowLeft", "ArrowRight", -1)


def assert_slider_moves_readout_and_figure(view: ExplorerView, setting: str) -> None:
    """Step the slider, check readout (vs the formulas) and figure; step back, check both are restored."""
    start_text = view.readout_text()
    start = parse(RECEPTIVE_FIELD_READOUT, start_text)
    stride = None if start["stride"] is None else int(start["stride"])
    before = view.figure_pixels(f"{setting}-start")
    key, back_key, sign = slider_step_away_from_bound(view)
    moved_to = view.slider_value() + sign

    view.step_slider(key)
    assert (view.slider_value(), view.slider_readout()) == (moved_to, str(moved_to))
    layers = moved_to if setting == "layers" else int(start["layers"])
    rate = moved_to if setting == "dilation" else int(start["rate"])
    expected = expected_receptive_field(int(start["k"]), layers, rate, stride)
    assert parse(RECEPTIVE_FIELD_READOUT, view.readout_text()) == expected
    moved = view.figure_pixels(f"{setting}-moved")
    assert changed_fraction(before, moved) > MIN_CHANGED_FRACTION, f"figure barely changed after {key}"

    view.step_slider(back_key)
    assert view.readout_text() == start_text
    assert changed_fraction(before, view.figure_pixels(f"{setting}-back")) == 0.0


@pytest.mark.browser
@pytest.mark.slow
def test_notebook_01_readout_matches_the_receptive_field_formula(
    dilation_notebook: LabNotebook, artifacts_dir: Path
) -> None:
    view = ExplorerView(dilation_notebook.panel, DILATION_SLIDER, artifacts_dir, name="01-dilation")
    start = parse(RECEPTIVE_FIELD_READOUT, view.readout_text())
    stride = None if start["stride"] is None else int(start["stride"])
    assert int(start["rate"]) == view.slider_value()
    assert start == expected_receptive_field(
        int(start["k"]), int(start["layers"]), view.slider_value(), stride
    )


@pytest.mark.browser
@pytest.mark.slow
def test_dilation_slider_redraws_readout_and_figure(
    dilation_notebook: LabNotebook, artifacts_dir: Path
) -> None:
    view = ExplorerView(dilation_notebook.panel, DILATION_SLIDER, artifacts_dir, name="01-dilation")
    assert_slider_moves_readout_and_figure(view, "dilation")


@pytest.mark.browser
@pytest.mark.slow
def test_layers_slider_redraws_readout_and_figure(
    dilation_notebook: LabNotebook, artifacts_dir: Path
) -> None:
    view = ExplorerView(dilation_notebook.panel, LAYERS_SLIDER, artifacts_dir, name="01-layers")
    assert_slider_moves_readout_and_figure(view, "layers")


@pytest.mark.browser
@pytest.mark.slow
def test_bins_control_redraws_readout_and_figure(pyramid_notebook: LabNotebook, artifacts_dir: Path) -> None:
    view = ExplorerView(pyramid_notebook.panel, BINS_CONTROL, artifacts_dir, name="03-bins")
    start_text = view.readout_text()
    channels = int(parse(PYRAMID_READOUT, start_text)["channels"])
    chosen = {int(label) for label in view.selected_options()}
    assert parse(PYRAMID_READOUT, start_text) == expected_pyramid(chosen, channels)
    added = next(int(label) for label in view.option_labels() if int(label) not in chosen)
    before = view.figure_pixels("start")

    view.toggle_option(str(added))
    assert {int(label) for label in view.selected_options()} == chosen | {added}
    assert parse(PYRAMID_READOUT, view.readout_text()) == expected_pyramid(chosen | {added}, channels)
    assert changed_fraction(before, view.figure_pixels("added")) > MIN_CHANGED_FRACTION

    view.toggle_option(str(added))
    assert view.readout_text() == start_text
    assert changed_fraction(before, view.figure_pixels("back")) == 0.0


def test_figure_reference_counts_are_independent_of_the_library() -> None:
    # Hand-checked cases: one 3x3 layer at rate 2 spans 5 pixels and reads 9; two such layers span 9 and
    # read offsets {-4,-2,0,2,4} per axis, 25 pixels; ordinary 3x3 twice spans 5 and reads all 25.
    assert (receptive_field_side(3, [2]), sampled_pixel_count(3, [2])) == (5, 9)
    assert (receptive_field_side(3, [2, 2]), sampled_pixel_count(3, [2, 2])) == (9, 25)
    assert (receptive_field_side(3, [1, 1]), sampled_pixel_count(3, [1, 1])) == (5, 25)
    assert receptive_field_side(5, [3]) == 13
