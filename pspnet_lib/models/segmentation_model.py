"""What a built model records: `SegmentationModel` keeps its `NetworkSpec` and the image size it is meant for, and
saves both in .keras files; `network_spec`, `image_size_of` and `is_color_model` read them back."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from pspnet_lib.models.spec import MIN_INPUT_SIZE, NetworkSpec


@keras.saving.register_keras_serializable(package="pspnet_lib")
class SegmentationModel(keras.Model):
    """A functional model that records the `NetworkSpec` it was built from and the image size it is meant for.

    `image_size`: the side, or (height, width), scenes are resized to before they reach the model (training
    records its own `image_size`; a fixed-size network's `spec.input_size` by default). Both are saved in .keras
    files and read back on load, so scoring a saved model needs no guess. A file saved before the size was
    recorded loads with `image_size` None.
    """

    def __init__(
        self, *args, spec: NetworkSpec | dict | None = None, image_size: int | Sequence[int] | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.spec = NetworkSpec.from_dict(spec) if isinstance(spec, dict) else spec
        if image_size is None and self.spec is not None:
            image_size = self.spec.input_size
        self.recorded_image_size = _check_image_size(image_size)

    def get_config(self) -> dict:
        """The functional config plus the spec and the image size."""
        size = self.recorded_image_size
        return {
            **super().get_config(),
            "spec": None if self.spec is None else self.spec.as_dict(),
            "image_size": list(size) if isinstance(size, tuple) else size,
        }


def network_spec(model: keras.Model) -> NetworkSpec | None:
    """The spec `model` was built from, or None for a model not built by `build`."""
    spec = getattr(model, "spec", None)
    return spec if isinstance(spec, NetworkSpec) else None


def image_size_of(model: keras.Model) -> int | tuple[int, int] | None:
    """The image size `model` records (see `SegmentationModel`), else its fixed input size, else None."""
    recorded = getattr(model, "recorded_image_size", None)
    if recorded is not None:
        return recorded
    height, width = model.inputs[0].shape[1:3] if model.inputs else (None, None)
    if not (height and width):
        return None
    return height if height == width else (height, width)


def _check_image_size(size: int | Sequence[int] | None) -> int | tuple[int, int] | None:
    """`size` as None, a side or (height, width), each at least MIN_INPUT_SIZE pixels; ValueError otherwise."""
    if size is None:
        return None
    sides = tuple(size) if isinstance(size, list | tuple) else (size,)
    if len(sides) not in (1, 2) or any(
        isinstance(side, bool) or not isinstance(side, int | np.integer) or side < MIN_INPUT_SIZE for side in sides
    ):
        raise ValueError(f"image_size must be a side or (height, width) of at least {MIN_INPUT_SIZE} pixels, got {size!r}")
    sides = tuple(int(side) for side in sides)
    return sides[0] if len(sides) == 1 or sides[0] == sides[1] else sides


def is_color_model(model: keras.Model) -> bool:
    """True for a model that paints RGB instead of predicting class logits: the article model, or output="color"."""
    spec = network_spec(model)
    return spec is not None and (spec.network == "article" or spec.output == "color")
