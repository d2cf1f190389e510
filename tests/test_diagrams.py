"""Teaching-figure geometry checked against brute-force enumeration, NumPy and Keras references."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from pspnet_lib import diagrams


def brute_force_offsets(kernel_size: int, dilations: list[int]) -> set[tuple[int, int]]:
    """Every sum of one tap per layer, enumerated directly (2-D taps are products of 1-D taps)."""
    half = kernel_size // 2
    one_d = {
        sum(combo)
        for combo in itertools.product(*[[(i - half) * d for i in range(kernel_size)] for d in dilations])
    }
    return {(r, c) for r in one_d for c in one_d}


def brute_force_path_count(kernel_size: int, dilations: list[int], offset: int) -> int:
    """Number of one-tap-per-layer choices along one axis whose offsets sum to `offset`."""
    half = kernel_size // 2
    taps = [[(i - half) * d for i in range(kernel_size)] for d in dilations]
    return sum(1 for combo in itertools.product(*taps) if sum(combo) == offset)


@pytest.mark.parametrize(
    ("kernel_size", "dilations"),
    [(3, [1]), (3, [2]), (3, [2, 2]), (3, [1, 2, 3]), (5, [3, 1]), (3, [4, 4, 4])],
)
def test_sampled_offsets_match_enumeration_and_formula(kernel_size: int, dilations: list[int]) -> None:
    offsets = diagrams.sampled_offsets(kernel_size, dilations)
    assert {tuple(o) for o in offsets.tolist()} == brute_force_offsets(kernel_size, dilations)
    assert len(offsets) == len(brute_force_offsets(kernel_size, dilations))
    assert diagrams.receptive_field_size(kernel_size, dilations) == 1 + sum(
        (kernel_size - 1) * d for d in dilations
    )


def test_path_counts_match_enumeration() -> None:
    counts = diagrams.path_counts(3, [2, 2])
    half = counts.shape[0] // 2
    one_d = [brute_force_path_count(3, [2, 2], offset) for offset in range(-half, half + 1)]
    np.testing.assert_array_equal(counts, np.outer(one_d, one_d))
    assert counts.sum() == 9**2  # 9 taps per layer, two layers: 81 paths in all


def test_gridding_artefact_and_its_cure() -> None:
    gridded = diagrams.path_counts(3, [2, 2, 2])
    assert gridded[1::2, :].sum() == 0  # odd rows are never sampled with a constant even rate
    mixed = diagrams.path_counts(3, [1, 2, 3])  # hybrid dilation rates cover every pixel
    assert mixed.shape == (13, 13) and np.all(mixed > 0)


@pytest.mark.parametrize(("size", "bins"), [(6, 3), (7, 3), (10, 6), (1, 1), (5, 8)])
def test_adaptive_bin_edges_cover_the_axis(size: int, bins: int) -> None:
    edges = diagrams.adaptive_bin_edges(size, bins)
    assert len(edges) == bins and edges[0][0] == 0 and edges[-1][1] == size
    covered = set().union(*[range(start, end) for start, end in edges])
    assert covered == set(range(size))
    assert all(end > start for start, end in edges)


def test_adaptive_average_pool_divisible_is_a_block_mean() -> None:
    feature = np.random.default_rng(0).random((12, 18, 2)).astype(np.float32)
    pooled = diagrams.adaptive_average_pool(feature, 3)
    reference = feature.reshape(3, 4, 3, 6, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(pooled, reference, rtol=1e-6)
    np.testing.assert_allclose(
        diagrams.adaptive_average_pool(feature, 1)[0, 0], feature.mean(axis=(0, 1)), rtol=1e-6
    )


@pytest.mark.slow
def test_adaptive_average_pool_matches_keras_on_odd_sizes() -> None:
    keras = pytest.importorskip("keras")
    feature = np.random.default_rng(1).random((7, 11, 3)).astype(np.float32)
    for bins in (2, 3, 6):
        expected = np.asarray(keras.layers.AdaptiveAveragePooling2D(bins)(feature[None]))[0]
        np.testing.assert_allclose(
            diagrams.adaptive_average_pool(feature, bins), expected, rtol=1e-5, atol=1e-6
        )


def test_bilinear_upsample_uses_half_pixel_centres() -> None:
    grid = np.array([[0.0, 4.0], [8.0, 12.0]], dtype=np.float32)
    up = diagrams.bilinear_upsample(grid, 4, 4)
    # Output centres at -0.25, 0.25, 0.75, 1.25 in input coordinates, clamped at the borders.
    np.testing.assert_allclose(up[0], [0.0, 1.0, 3.0, 4.0], atol=1e-5)
    np.testing.assert_allclose(up[:, 0], [0.0, 2.0, 6.0, 8.0], atol=1e-5)


def test_draw_kernel_grid_marks_the_taps() -> None:
    ax = Figure().subplots()
    offsets = diagrams.draw_kernel_grid(ax, kernel_size=3, dilation=3)
    cells = np.asarray(ax.images[0].get_array())
    assert cells.shape == (9, 9)  # span 7 plus a one-cell margin
    rows, cols = np.nonzero(cells)
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == {
        (4 + r, 4 + c) for r in (-3, 0, 3) for c in (-3, 0, 3)
    }
    assert len(offsets) == 9


def test_draw_receptive_field_geometry() -> None:
    image = np.zeros((40, 60, 3), dtype=np.float32)
    ax = Figure().subplots()
    taps, field = diagrams.draw_receptive_field(ax, image, 3, [2, 2], centre=(20, 30), feature_stride=2)
    points = {(int(x), int(y)) for x, y in taps.get_offsets()}
    assert points == {(30 + 2 * c, 20 + 2 * r) for r, c in brute_force_offsets(3, [2, 2])}
    assert field.get_width() == field.get_height() == 2 * 9
    assert field.get_xy() == (30 - 9, 20 - 9)


def test_draw_pooling_grid_lines() -> None:
    ax = Figure().subplots()
    lines = diagrams.draw_pooling_grid(ax, np.zeros((30, 60, 3)), bins=3)
    assert len(lines) == 4
    xs = sorted(line.get_xdata()[0] for line in lines[:2])
    assert xs == [19.5, 39.5]


def test_draw_pyramid_panels_show_pooled_maps() -> None:
    fig = Figure()
    image = np.zeros((12, 24, 3), dtype=np.float32)
    feature = np.arange(12 * 24, dtype=np.float32).reshape(12, 24)
    axes = diagrams.draw_pyramid(fig, image, feature, [1, 2, 3])
    assert axes.shape == (3, 3) and len(fig.axes) == 9
    pooled_3 = np.asarray(axes[1, 2].images[0].get_array())
    np.testing.assert_allclose(pooled_3, feature.reshape(3, 4, 3, 8).mean(axis=(1, 3)))
    assert np.asarray(axes[2, 0].images[0].get_array()).shape == (12, 24)
    np.testing.assert_allclose(np.asarray(axes[2, 0].images[0].get_array()), feature.mean(), rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: diagrams.dilated_kernel_1d(4, 1), "kernel_size must be odd"),
        (lambda: diagrams.dilated_kernel_1d(3, 0), "dilation must be a positive integer"),
        (lambda: diagrams.path_counts(3, []), "at least one"),
        (lambda: diagrams.adaptive_bin_edges(5, 0), "bins must be a positive integer"),
        (lambda: diagrams.adaptive_average_pool(np.zeros(5), 2), r"shape \(H, W\)"),
        (lambda: diagrams.luminance(np.zeros((4, 4))), r"\(H, W, 3\)"),
        (
            lambda: diagrams.draw_kernel_grid(Figure().subplots(), 3, 4, grid_size=5),
            "smaller than the kernel",
        ),
    ],
)
def test_bad_arguments_are_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_palette_legend_draws_one_named_swatch_per_class() -> None:
    ax = Figure().subplots()
    colors = np.array([[255, 0, 0], [0, 128, 0], [0, 0, 255], [10, 20, 30], [200, 200, 200]], dtype=np.uint8)
    swatches = diagrams.draw_palette_legend(ax, ["a", "b", "c", "d", "e"], colors, columns=2)
    assert [tuple(s.get_facecolor()[:3]) for s in swatches] == [tuple(c / 255.0) for c in colors]
    assert [t.get_text() for t in ax.texts] == ["0 a", "1 b", "2 c", "3 d", "4 e"]
    assert {s.get_x() for s in swatches[:3]} == {0} and {s.get_x() for s in swatches[3:]} == {1}
    with pytest.raises(ValueError, match="one entry per class"):
        diagrams.draw_palette_legend(ax, ["a"], colors)


def test_figure_png_is_a_png() -> None:
    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1])
    assert diagrams.figure_png(fig).startswith(b"\x89PNG\r\n\x1a\n")


def test_backbone_stages_are_read_from_the_built_model_and_follow_the_spec():
    from pspnet_lib import models

    for output_stride in (8, 16):
        backbone = models.build_backbone("small", (64, 128, 3), output_stride=output_stride)
        stages = diagrams.backbone_stages(backbone)
        assert [stage.name for stage in stages] == ["stem", "conv2", "conv3", "conv4", "conv5"]
        schedule = models.stage_strides_and_dilations(output_stride)
        assert [(stage.stride, stage.dilation) for stage in stages[1:]] == schedule
        assert stages[-1].output_stride == output_stride
        assert stages[-1].shape == (64 // output_stride, 128 // output_stride, backbone.output_shape[1][-1])
    with pytest.raises(ValueError, match="fixed input size"):
        diagrams.backbone_stages(models.build_backbone("small"))


def test_network_parts_and_figures_show_the_built_models_shapes():
    import matplotlib.pyplot as plt

    from pspnet_lib import models

    pspnet = models.build("pspnet_small", input_size=(64, 96), bins=(1, 2, 4))
    parts = diagrams.network_parts(pspnet)
    channels = pspnet.get_layer("backbone").output_shape[1][-1]
    assert [parts[f"pyramid {b}"] for b in (1, 2, 4)] == [(b, b, channels // 3) for b in (1, 2, 4)]
    assert parts["concatenation"] == (8, 12, channels + 3 * (channels // 3))
    assert parts["logits"] == parts["aux logits"] == (64, 96, 19)
    fcn = diagrams.network_parts(models.build("fcn_small", input_size=(64, 96), aux_head=False))
    assert not any(name.startswith("pyramid") or name.startswith("aux") for name in fcn)
    fig, ax = plt.subplots()
    boxes = diagrams.draw_network(ax, pspnet)
    assert set(boxes) == {"image", *parts}
    texts = [text.get_text() for text in ax.texts]
    assert any("2x2x" in text for text in texts) and any("64x96x19" in text for text in texts)
    fig2, ax2 = plt.subplots()
    stages = diagrams.backbone_stages(pspnet.get_layer("backbone"))
    assert len(diagrams.draw_backbone_stages(ax2, stages, (64, 96, 3))) == len(stages) + 1
    assert any("rate 4" in text.get_text() for text in ax2.texts)
    plt.close(fig), plt.close(fig2)
