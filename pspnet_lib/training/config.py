"""A training run's settings: where (run folder, data), how (a complete `Recipe`) and the device switches.

`configure(out, recipe="cpu", image_size=64, ...)` resolves a named recipe and its overrides once, into a frozen
`TrainConfig`; it never looks at the devices (`train` plans those from `config.devices`). `train` then fixes
the one setting that needs the dataset (how many val pairs each epoch scores) before it reads any data, and saves
the whole value as config.json: `TrainConfig.load(run_folder)` gives it back, and training it repeats the run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from pspnet_lib.training.devices import DeviceSwitches
from pspnet_lib.training.recipes import Recipe, default_recipe_name, get_recipe

CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved whole as config.json in the run folder."""

    out: str  # the run folder
    recipe: Recipe
    data: str | None = None  # dataset root in the Kaggle layout; None: data.default_dataset()
    devices: DeviceSwitches = field(default_factory=DeviceSwitches)  # None: automatic (on with a GPU)
    tensorboard: bool = True  # write TensorBoard logs
    skip_bad: bool = False  # leave unusable pair files out (with a warning) instead of refusing the dataset

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return Path(self.out)

    def as_dict(self) -> dict:
        """The config as JSON-friendly values (config.json)."""
        return {**dataclasses.asdict(self), "recipe": self.recipe.as_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The config `as_dict` wrote."""
        return cls(**{**values, "recipe": Recipe(**values["recipe"]), "devices": DeviceSwitches(**values["devices"])})

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainConfig:
        """The config.json of the run in `run_dir`."""
        return cls.from_dict(json.loads((Path(run_dir) / CONFIG_FILE).read_text()))


def configure(
    out: str | Path,
    data: str | Path | None = None,
    recipe: str | Recipe | None = None,
    *,
    mixed_precision: bool | None = None,
    xla: bool | None = None,
    distribute: bool | None = None,
    tensorboard: bool = True,
    skip_bad: bool = False,
    **changes,
) -> TrainConfig:
    """The run in folder `out`: `recipe` (a name, a Recipe, or None: 'paper' with ImageNet weights, else 'cpu';
    the command line picks 'paper' when it sees a GPU) with `changes` to any of its settings (`Recipe.override`).
    ValueError naming a setting that cannot work."""
    if not str(out).strip():
        raise ValueError("out is empty: expected a run folder (new or of an interrupted run)")
    if recipe is None:  # the devices are not looked at here: no GPU counts
        recipe = default_recipe_name(0, changes.get("weights"))
    base = get_recipe(recipe) if isinstance(recipe, str) else recipe
    for name, value in (("tensorboard", tensorboard), ("skip_bad", skip_bad)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    return TrainConfig(
        out=str(out), recipe=base.override(**changes), data=None if data is None else str(data),
        devices=DeviceSwitches(mixed_precision, xla, distribute), tensorboard=tensorboard, skip_bad=skip_bad,
    )
