"""Teaching figures for the notebooks: dilated kernel taps, receptive fields, the pyramid's pooling grid, and
the architecture (backbone stages, assembled network) read from a built model.

The geometry is computed here with NumPy alone (no TensorFlow), so it can be checked independently
of the layers it explains. Drawing functions take a matplotlib `Axes` or `Figure` and return what they
drew, so tests (and curious students) can inspect it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

TAP_COLOR = "#e6194b"
FIELD_COLOR = "#ffe119"
GRID_COLOR = "white"


def _check_positive(name: str, value: int) -> None:
    """Raise ValueError unless `value` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_kernel_size(kernel_size: int) -> None:
    """Raise ValueError unless `kernel_size` is a positive odd integer (so the kernel has a centre)."""
    _check_positive("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd so the kernel has a centre tap, got {kernel_size}")


def dilated_kernel_1d(kernel_size: int, dilation: int) -> np.ndarray:
    """Indicator of the taps of one dilated kernel along one axis: ones every `dilation` pixels."""
    _check_kernel_size(kernel_size)
    _check_positive("dilation", dilation)
    taps = np.zeros((kernel_size - 1) * dilation + 1, dtype=np.int64)
    taps[::dilation] = 1
    return taps


def path_counts(kernel_size: int, dilations: Sequence[int]) -> np.ndarray:
    """How many paths through a stack of stride-1 dilated convolutions link the centre output to each input pixel.

    The result is square with side equal to the stack's receptive field; zeros inside it are pixels
    the stack never samples (the gridding artefact).
    """
    if len(dilations) == 0:
        raise ValueError("dilations must list at least one layer's dilation rate")
    counts = np.ones(1, dtype=np.int64)
    for dilation in dilations:
        counts = np.convolve(counts, dilated_kernel_1d(kernel_size, dilation))
    return np.outer(counts, counts)


def sampled_offsets(kernel_size: int, dilations: Sequence[int]) -> np.ndarray:
    """(row, col) offsets from the centre of every input pixel the stack samples, shape (N, 2)."""
    counts = path_counts(kernel_size, dilations)
    rows, cols = np.nonzero(counts)
    half = counts.shape[0] // 2
    return np.stack([rows - half, cols - half], axis=1)


def receptive_field_size(kernel_size: int, dilations: Sequence[int]) -> int:
    """Side of the receptive field of a stride-1 stack, read off the sampled pixels (1 + sum (k-1)*d)."""
    return int(path_counts(kernel_size, dilations).shape[0])


def adaptive_bin_edges(size: int, bins: int) -> list[tuple[int, int]]:
    """[start, end) of each adaptive-pooling bin along an axis: floor(i*size/bins) to ceil((i+1)*size/bins)."""
    _check_positive("size", size)
    _check_positive("bins", bins)
    return [(i * size // bins, -(-(i + 1) * size // bins)) for i in range(bins)]


def adaptive_average_pool(feature_map: np.ndarray, bins: int) -> np.ndarray:
    """Average a (H, W) or (H, W, C) map over a bins x bins grid of adaptive bins (NumPy reference)."""
    if feature_map.ndim not in (2, 3):
        raise ValueError(f"feature_map must have shape (H, W) or (H, W, C), got {feature_map.shape}")
    row_edges = adaptive_bin_edges(feature_map.shape[0], bins)
    col_edges = adaptive_bin_edges(feature_map.shape[1], bins)
    pooled = [[feature_map[r0:r1, c0:c1].mean(axis=(0, 1)) for c0, c1 in col_edges] for r0, r1 in row_edges]
    return np.asarray(pooled, dtype=np.float32)


def bilinear_upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a (h, w) float map to (height, width) bilinearly (half-pixel centres, like tf.image.resize)."""
    if grid.ndim != 2:
        raise ValueError(f"grid must be a 2-D map, got shape {grid.shape}")
    resized = Image.fromarray(grid.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """Grey-level (H, W) map of an RGB image in [0, 1] (ITU-R BT.601 weights): a stand-in feature map."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    return (image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def draw_kernel_grid(
    ax: Axes, kernel_size: int = 3, dilation: int = 1, grid_size: int | None = None
) -> np.ndarray:
    """Draw one dilated kernel's taps as filled cells on a pixel grid; return the taps' (row, col) offsets."""
    offsets = sampled_offsets(kernel_size, [dilation])
    span = (kernel_size - 1) * dilation + 1
    grid_size = grid_size or span + 2
    if grid_size < span:
        raise ValueError(f"grid_size {grid_size} is smaller than the kernel's span {span}")
    centre = grid_size // 2
    cells = np.zeros((grid_size, grid_size))
    cells[offsets[:, 0] + centre, offsets[:, 1] + centre] = 1.0
    ax.imshow(cells, cmap="Reds", vmin=0, vmax=1.4)
    ax.set_xticks(np.arange(-0.5, grid_size), minor=True)
    ax.set_yticks(np.arange(-0.5, grid_size), minor=True)
    ax.grid(which="minor", color="grey", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_title(f"{kernel_size}x{kernel_size} kernel, dilation {dilation}")
    return offsets


def draw_receptive_field(
    ax: Axes,
    image: np.ndarray,
    kernel_size: int,
    dilations: Sequence[int],
    centre: tuple[int, int] | None = None,
    feature_stride: int = 1,
) -> tuple[PathCollection, Rectangle]:
    """Draw the pixels a dilated stack samples and its receptive-field square over `image`.

    `feature_stride` is how many image pixels one feature-map pixel spans (8 deep in PSPNet).
    Returns the scatter of sampled pixels and the receptive-field rectangle (both in image pixels).
    """
    _check_positive("feature_stride", feature_stride)
    height, width = image.shape[:2]
    row0, col0 = centre if centre is not None else (height // 2, width // 2)
    offsets = sampled_offsets(kernel_size, dilations) * feature_stride
    side = receptive_field_size(kernel_size, dilations) * feature_stride
    ax.imshow(image)
    taps = ax.scatter(col0 + offsets[:, 1], row0 + offsets[:, 0], s=10, c=TAP_COLOR, marker="s", linewidths=0)
    field = Rectangle(
        (col0 - side / 2, row0 - side / 2), side, side, fill=False, edgecolor=FIELD_COLOR, linewidth=2
    )
    ax.add_patch(field)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    return taps, field


def draw_pooling_grid(ax: Axes, image: np.ndarray, bins: int) -> list:
    """Draw `image` with the bins x bins adaptive-pooling grid over it; return the grid lines drawn."""
    _check_positive("bins", bins)
    height, width = image.shape[:2]
    ax.imshow(image)
    lines = [ax.axvline(i * width / bins - 0.5, color=GRID_COLOR, linewidth=1.5) for i in range(1, bins)]
    lines += [ax.axhline(i * height / bins - 0.5, color=GRID_COLOR, linewidth=1.5) for i in range(1, bins)]
    ax.set_title(f"{bins}x{bins} bins")
    ax.set_axis_off()
    return lines


def draw_pyramid(fig: Figure, image: np.ndarray, feature_map: np.ndarray, bins: Sequence[int]) -> np.ndarray:
    """One column per bin count: the grid over `image`, the pooled map, and the map upsampled back.

    Returns the (3, len(bins)) array of axes; row 1 shows `adaptive_average_pool(feature_map, b)`.
    """
    if len(bins) == 0:
        raise ValueError("bins must list at least one bin count, e.g. (1, 2, 3, 6)")
    height, width = feature_map.shape[:2]
    vmin, vmax = float(feature_map.min()), float(feature_map.max())
    axes = fig.subplots(3, len(bins), squeeze=False)
    for column, bin_count in enumerate(bins):
        pooled = adaptive_average_pool(feature_map, bin_count)
        draw_pooling_grid(axes[0, column], image, bin_count)
        axes[1, column].imshow(pooled, cmap="viridis", vmin=vmin, vmax=vmax)
        axes[1, column].set_title(f"pooled {bin_count}x{bin_count}")
        axes[2, column].imshow(bilinear_upsample(pooled, height, width), cmap="viridis", vmin=vmin, vmax=vmax)
        axes[2, column].set_title(f"upsampled to {height}x{width}")
    for ax in axes[1:].ravel():
        ax.set_axis_off()
    return axes


def draw_palette_legend(
    ax: Axes, names: Sequence[str], colors: np.ndarray, columns: int = 4
) -> list[Rectangle]:
    """Draw one coloured swatch per class with its name and train id, in `columns` columns; return the swatches."""
    if len(names) != len(colors):
        raise ValueError(
            f"names and colors must have one entry per class, got {len(names)} and {len(colors)}"
        )
    rows = -(-len(names) // columns)
    swatches = []
    for index, (name, color) in enumerate(zip(names, np.asarray(colors) / 255.0, strict=True)):
        x, y = index // rows, rows - 1 - index % rows
        swatches.append(ax.add_patch(Rectangle((x, y + 0.15), 0.18, 0.7, facecolor=color, edgecolor="black")))
        ax.text(x + 0.24, y + 0.5, f"{index} {name}", va="center", fontsize=9)
    ax.set_xlim(0, columns)
    ax.set_ylim(0, rows)
    ax.set_axis_off()
    return swatches


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """The figure rendered as PNG bytes (for an ipywidgets.Image or IPython.display.Image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


@dataclass(frozen=True)
class Stage:
    """One stage of a built backbone, read from its layers: blocks, stride and dilation, output shape."""

    name: str
    blocks: int  # residual blocks (0 for the stem)
    stride: int  # how much the stage shrinks the map (input side / output side)
    dilation: int  # rate of its 3x3 convolutions (1 for the stem)
    shape: tuple[int, int, int]  # output (height, width, channels)
    output_stride: int  # image side / output side


def backbone_stages(backbone: Any) -> list[Stage]:
    """The stem and the `convN_blockM` stages of a built backbone with a fixed input size, from its layers.

    Duck-typed (no TensorFlow import): `backbone.layers` with `.name` and `.output.shape`, and residual blocks
    with a `.dilation`. Strides come from the output shapes, so the figure shows what the model really does.
    """
    image_height = backbone.inputs[0].shape[1]
    if image_height is None:
        raise ValueError("backbone_stages needs a backbone built with a fixed input size, e.g. (256, 512, 3)")
    groups: dict[str, list[Any]] = {}
    for layer in backbone.layers[1:]:
        key = layer.name.split("_block")[0] if "_block" in layer.name else "stem"
        groups.setdefault(key, []).append(layer)
    stages, side = [], image_height
    for name, members in groups.items():
        height, width, channels = (int(n) for n in members[-1].output.shape[1:])
        blocks = [layer for layer in members if hasattr(layer, "dilation")]
        dilation = int(blocks[0].dilation) if blocks else 1
        stages.append(Stage(name, len(blocks), side // height, dilation, (height, width, channels), image_height // height))
        side = height
    return stages


def _box(ax: Axes, x: float, y: float, text: str, color: str, width: float = 1.6, height: float = 0.9) -> Rectangle:
    """A rounded-looking labelled box centred at (x, y)."""
    box = ax.add_patch(Rectangle((x - width / 2, y - height / 2), width, height, facecolor=color, edgecolor="black"))
    ax.text(x, y, text, ha="center", va="center", fontsize=8)
    return box


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    """An arrow from `start` to `end`."""
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "black"})


def _shape(shape: Sequence[int]) -> str:
    """(H, W, C) as 'HxWxC'."""
    return "x".join(str(int(n)) for n in shape)


def draw_backbone_stages(ax: Axes, stages: Sequence[Stage], image_shape: Sequence[int]) -> list[Rectangle]:
    """One box per stage, left to right, its height proportional to its map's height; returns the boxes."""
    if not stages:
        raise ValueError("stages is empty: pass backbone_stages(model) of a built backbone")
    boxes = [_box(ax, 0, 0, f"image\n{_shape(image_shape)}", "white", height=2.4)]
    for index, stage in enumerate(stages, start=1):
        what = "" if stage.blocks == 0 else f"\n{stage.blocks} block{'s' * (stage.blocks > 1)}"
        text = (f"{stage.name}{what}\nstride {stage.stride}, rate {stage.dilation}\n{_shape(stage.shape)}\n"
                f"1/{stage.output_stride} of the image")
        height = max(2.4 * stage.shape[0] / image_shape[0], 0.0) + 1.2
        color = "#fde9c9" if stage.dilation > 1 else "#dce9f5"
        boxes.append(_box(ax, 2.2 * index, 0, text, color, width=1.9, height=height))
        _arrow(ax, (2.2 * index - 1.3, 0), (2.2 * index - 0.95, 0))
    ax.set_xlim(-1, 2.2 * len(stages) + 1.1)
    ax.set_ylim(-1.9, 1.9)
    ax.set_axis_off()
    return boxes


def network_parts(model: Any) -> dict[str, tuple[int, ...]]:
    """Output shape (without the batch) of each part of a built PSPNet or FCN, read from its layers.

    Keys: the backbone's stages (`backbone_stages`), `pyramid b` for each bin count (the pooled b x b map),
    `concatenation`, `head`, `logits`, and with an auxiliary head `aux head`, `aux logits`.
    """
    layers = {layer.name: layer for layer in model.layers}
    parts = {stage.name: stage.shape for stage in backbone_stages(layers["backbone"])}
    if "pyramid_pooling" in layers:
        pyramid = layers["pyramid_pooling"]
        channels = int(pyramid.input.shape[-1])
        for bins in pyramid.bins:
            parts[f"pyramid {bins}"] = (bins, bins, int(pyramid.branch_filters(channels)))
        parts["concatenation"] = tuple(int(n) for n in pyramid.output.shape[1:])
    for key, name in (("head", "head_relu"), ("logits", "logits"), ("aux head", "aux_head_relu"),
                      ("aux logits", "aux_logits")):
        if name in layers:
            parts[key] = tuple(int(n) for n in layers[name].output.shape[1:])
    return parts


def draw_network(ax: Axes, model: Any) -> dict[str, Rectangle]:
    """The assembled network (backbone, pyramid branches, concatenation, heads) with each tensor's shape.

    Drawn from the built `model` (fixed input size) through `network_parts`; returns the boxes by part name.
    """
    parts = network_parts(model)
    image_shape = tuple(int(n) for n in model.inputs[0].shape[1:])
    stages = [name for name in parts if name.startswith(("stem", "conv"))]
    pyramid = [name for name in parts if name.startswith("pyramid ")]
    boxes = {"image": _box(ax, 0, 0, f"image\n{_shape(image_shape)}", "white")}
    x = 0.0
    for name in stages:
        x += 2.0
        boxes[name] = _box(ax, x, 0, f"{name}\n{_shape(parts[name])}", "#dce9f5")
        _arrow(ax, (x - 1.2, 0), (x - 0.8, 0))
    last = x
    if pyramid:
        x += 2.4
        for row, name in enumerate(pyramid):
            y = 1.5 * (len(pyramid) - 1) / 2 - 1.5 * row
            bins = name.split()[1]
            boxes[name] = _box(ax, x, y, f"pool to {bins}x{bins}, 1x1 conv\n{_shape(parts[name])}, upsample", "#fde9c9", 2.2)
            _arrow(ax, (last + 0.8, 0), (x - 1.1, y))
            _arrow(ax, (x + 1.1, y), (x + 1.6, 0))
        x += 2.4
        boxes["concatenation"] = _box(ax, x, 0, f"concatenate\n{_shape(parts['concatenation'])}", "#e3f1dc")
        _arrow(ax, (last + 0.8, 0.45), (x - 0.8, 0.3))  # the features themselves join the concatenation
    for name, label in (("head", "3x3 conv head"), ("logits", "1x1 conv, upsample\nlogits")):
        x += 2.0
        x += 0.3 * (name == "logits")
        boxes[name] = _box(ax, x, 0, f"{label}\n{_shape(parts[name])}", "#e3f1dc", 1.6 + 0.6 * (name == "logits"))
        _arrow(ax, (x - 1.2 - 0.3 * (name == "logits"), 0), (x - 0.8 - 0.3 * (name == "logits"), 0))
    bottom = -1.5 * (len(pyramid) + 1) / 2 - 0.5
    if "aux head" in parts:
        conv4 = boxes.get("conv4")
        start = conv4.get_x() + conv4.get_width() / 2 if conv4 is not None else last
        boxes["aux head"] = _box(ax, start + 2.0, bottom, f"aux 3x3 conv head\n{_shape(parts['aux head'])}", "#eeeeee", 2.0)
        boxes["aux logits"] = _box(ax, start + 4.4, bottom, f"aux logits\n{_shape(parts['aux logits'])}", "#eeeeee", 2.0)
        _arrow(ax, (start, -0.45), (start + 1.0, bottom + 0.45))
        _arrow(ax, (start + 3.0, bottom), (start + 3.4, bottom))
    ax.set_xlim(-1, x + 1.3)
    ax.set_ylim(bottom - 0.8, -bottom + 0.3)
    ax.set_axis_off()
    return boxes
