"""Widgets: set control values as a student would, then check what the figure and the readout show."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from IPython.display import Image as StaticImage

from pspnet_lib import widgets

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def scene() -> np.ndarray:
    """A small random RGB image in [0, 1]."""
    return np.random.default_rng(0).random((48, 96, 3)).astype(np.float32)


def scene_axes(explorer: widgets.DilationExplorer):
    """The (kernel grid, scene) axes of a dilation explorer's figure."""
    kernel_ax, scene_ax = explorer.figure.axes
    return kernel_ax, scene_ax


def test_dilation_slider_redraws_taps_field_and_readout(scene: np.ndarray) -> None:
    explorer = widgets.DilationExplorer(scene, rate=1, num_layers=1)
    first_png = explorer.view.value
    explorer.rate.value = 3
    explorer.layers.value = 2
    kernel_ax, scene_ax = scene_axes(explorer)
    side = 1 + 2 * (3 - 1) * 3  # 1 + L (k - 1) d
    # One layer: taps at -3, 0, 3; two layers: every sum of two such taps, -6..6 in steps of 3.
    one_d = [-6, -3, 0, 3, 6]
    expected = {(48 + c, 24 + r) for r in one_d for c in one_d}  # scatter points are (x, y) = (col, row)
    assert {(int(x), int(y)) for x, y in scene_ax.collections[0].get_offsets()} == expected
    field = scene_ax.patches[0]
    assert field.get_width() == field.get_height() == side
    assert np.count_nonzero(kernel_ax.images[0].get_array()) == 9
    assert f"Receptive field: {side} x {side} pixels" in explorer.readout.value
    assert f"{len(expected)} of its {side * side} pixels are sampled" in explorer.readout.value
    assert bytes(explorer.view.value).startswith(PNG_SIGNATURE) and bytes(explorer.view.value) != bytes(
        first_png
    )


def test_dilation_one_samples_every_pixel(scene: np.ndarray) -> None:
    explorer = widgets.DilationExplorer(scene, rate=1, num_layers=3)
    _, scene_ax = scene_axes(explorer)
    assert len(scene_ax.collections[0].get_offsets()) == 7 * 7
    assert "49 of its 49 pixels are sampled" in explorer.readout.value


def test_feature_stride_scales_the_field_to_image_pixels(scene: np.ndarray) -> None:
    explorer = widgets.DilationExplorer(scene, rate=2, num_layers=1, feature_stride=4)
    _, scene_ax = scene_axes(explorer)
    assert scene_ax.patches[0].get_width() == 5 * 4
    assert "At feature stride 4: 20 x 20 image pixels" in explorer.readout.value


def test_slider_clamps_to_its_range(scene: np.ndarray) -> None:
    explorer = widgets.DilationExplorer(scene, max_rate=4)
    explorer.rate.value = 40
    assert explorer.rate.value == 4
    assert "Receptive field: 9 x 9 pixels" in explorer.readout.value


def test_pyramid_bins_control_redraws_grids_and_panels(scene: np.ndarray) -> None:
    explorer = widgets.PyramidExplorer(scene, channels=512)
    assert len(explorer.figure.axes) == 3 * 4
    explorer.bins.value = (6, 2)
    axes = np.asarray(explorer.figure.axes).reshape(3, 2)
    assert [len(ax.lines) for ax in axes[0]] == [2 * (2 - 1), 2 * (6 - 1)]  # sorted: 2x2 grid, then 6x6
    pooled = np.asarray(axes[1, 1].images[0].get_array())
    grey = scene @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(pooled, grey.reshape(6, 8, 6, 16).mean(axis=(1, 3)), rtol=1e-5)
    assert np.asarray(axes[2, 0].images[0].get_array()).shape == scene.shape[:2]
    assert explorer.readout.value == (
        "2 level(s), pooled grids 2x2, 6x6; each branch reduces 512 channels to 256, "
        "concatenated with the input: 1024 channels."
    )


def test_pyramid_with_a_feature_map_and_no_bins(scene: np.ndarray) -> None:
    road = np.zeros(scene.shape[:2], dtype=np.float32)
    road[24:] = 1.0
    explorer = widgets.PyramidExplorer(scene, feature_map=road, bins=(1,))
    np.testing.assert_allclose(explorer.figure.axes[1].images[0].get_array(), [[0.5]])
    explorer.bins.value = ()
    assert explorer.figure.axes == [] and "at least one" in explorer.readout.value


def test_pyramid_rejects_unknown_bins(scene: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"bins must be chosen from .* got \[5\]"):
        widgets.PyramidExplorer(scene, bins=(1, 5))


def test_show_displays_a_static_snapshot_then_the_live_widget(scene: np.ndarray, monkeypatch) -> None:
    shown = []
    monkeypatch.setattr(widgets, "display", shown.append)
    explorer = widgets.DilationExplorer(scene)
    explorer.show()
    assert isinstance(shown[0], StaticImage) and shown[0].data.startswith(PNG_SIGNATURE)
    assert shown[1] is not None and explorer.readout in shown[1].children
    assert explorer.rate in shown[1].children[0].children


def widgets_by_pspnet_class(root) -> dict[str, list]:
    """Every widget in the displayed tree under `root`, grouped by its `pspnet-*` CSS classes."""
    found: dict[str, list] = {}
    stack = [root]
    while stack:
        widget = stack.pop()
        for name in widget._dom_classes:
            if name.startswith("pspnet-"):
                found.setdefault(name, []).append(widget)
        stack.extend(getattr(widget, "children", ()))
    return found


def test_dilation_explorer_controls_carry_stable_css_classes(scene: np.ndarray) -> None:
    explorer = widgets.DilationExplorer(scene)
    assert widgets_by_pspnet_class(explorer.widget) == {
        "pspnet-dilation-slider": [explorer.rate],
        "pspnet-layers-slider": [explorer.layers],
        "pspnet-readout": [explorer.readout],
        "pspnet-figure": [explorer.view],
    }
    assert explorer.rate.description == "dilation" and explorer.layers.description == "layers"


def test_pyramid_explorer_controls_carry_stable_css_classes(scene: np.ndarray) -> None:
    explorer = widgets.PyramidExplorer(scene)
    assert widgets_by_pspnet_class(explorer.widget) == {
        "pspnet-bins-control": [explorer.bins],
        "pspnet-readout": [explorer.readout],
        "pspnet-figure": [explorer.view],
    }
    assert isinstance(explorer.bins, widgets.ipywidgets.SelectMultiple)
    assert isinstance(explorer.view, widgets.ipywidgets.Image)


def test_dilation_explorer_follows_both_sliders_through_several_values(scene: np.ndarray) -> None:
    """Run on ipywidgets 8 here and on Colab's 7.7.1 by tests/test_colab_like.py: the same API in both."""
    explorer = widgets.DilationExplorer(scene, rate=1, num_layers=1, max_rate=8, max_layers=4)
    pictures, readouts = {bytes(explorer.view.value)}, {explorer.readout.value}
    for rate, layers in [(2, 1), (3, 1), (5, 1), (8, 1), (8, 2), (8, 3), (2, 4)]:
        explorer.rate.value, explorer.layers.value = rate, layers
        side = 1 + layers * 2 * rate  # 1 + L (k - 1) d with k = 3
        _, scene_ax = scene_axes(explorer)
        assert scene_ax.patches[0].get_width() == side
        assert f"Receptive field: {side} x {side} pixels ({layers} layer(s) of 3x3, dilation {rate})" in (
            explorer.readout.value
        )
        assert bytes(explorer.view.value) not in pictures and explorer.readout.value not in readouts
        pictures.add(bytes(explorer.view.value))
        readouts.add(explorer.readout.value)


def test_pyramid_explorer_follows_its_bins_control_through_several_values(scene: np.ndarray) -> None:
    explorer = widgets.PyramidExplorer(scene, channels=2048)
    pictures, readouts = {bytes(explorer.view.value)}, {explorer.readout.value}
    for bins in [(1,), (1, 2), (2, 8), (3, 4, 6), (1, 2, 3, 4, 6, 8)]:
        explorer.bins.value = bins
        assert len(explorer.figure.axes) == 3 * len(bins)
        assert [len(ax.lines) for ax in explorer.figure.axes[: len(bins)]] == [2 * (b - 1) for b in bins]
        grids = ", ".join(f"{b}x{b}" for b in bins)
        assert explorer.readout.value.startswith(f"{len(bins)} level(s), pooled grids {grids};")
        assert f"to {2048 // len(bins)}, concatenated" in explorer.readout.value
        assert bytes(explorer.view.value) not in pictures and explorer.readout.value not in readouts
        pictures.add(bytes(explorer.view.value))
        readouts.add(explorer.readout.value)
