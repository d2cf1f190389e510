"""Each setting is spelled once: the settings types of the library share few field names (issue 37: 43 before)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "settings_overlap.py"
MAX_SHARED_NAMES = 8


def load_tool():
    spec = importlib.util.spec_from_file_location("settings_overlap", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_types_share_at_most_eight_field_names():
    tool = load_tool()
    types = tool.settings_types()
    pairs = tool.shared_names(types)
    assert "pspnet_lib.training.recipes.Recipe" in types and "pspnet_lib.training.config.TrainConfig" in types
    assert sum(map(len, pairs.values())) <= MAX_SHARED_NAMES, pairs
    # The run's settings live in the recipe only: the config around it repeats none of them.
    assert ("pspnet_lib.training.config.TrainConfig", "pspnet_lib.training.recipes.Recipe") not in pairs


def test_the_count_sees_a_shared_name():
    tool = load_tool()
    pairs = tool.shared_names({"A": ("lr", "seed", "x"), "B": ("lr", "seed"), "C": ("y",)})
    assert pairs == {("A", "B"): {"lr", "seed"}}
