"""The library's layers stay in order, and the server-side modules import without Jupyter or a display."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pspnet_lib"

# Rank of each module: a module may import only modules of lower or equal rank.
RANKS = {
    "config": 0,
    "data": 1,
    "layers": 1,
    "models": 2,
    "runtime": 2,
    "metrics": 3,
    "training": 3,
    "inference": 3,
    "experiments": 3,
    "cli": 4,
    "viz": 5,
    "live_view": 5,
    "diagrams": 5,
    "widgets": 6,
}
SERVER_MODULES = ["pspnet_lib.data", "pspnet_lib.models", "pspnet_lib.training", "pspnet_lib.cli", "pspnet_lib.inference"]
DISPLAY_PACKAGES = ["ipywidgets", "IPython", "matplotlib", "jupyter_client", "ipykernel"]


def _top_module(path: Path) -> str:
    """`pspnet_lib/data/pipeline.py` -> `data`; `pspnet_lib/models.py` -> `models`."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _module_level_imports(path: Path) -> set[str]:
    """Top pspnet_lib modules that `path` imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in tree.body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "pspnet_lib" and len(parts) > 1 and parts[1] in RANKS:
                found.add(parts[1])
    return found


def _library_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if _top_module(p) in RANKS]


@pytest.mark.parametrize("path", _library_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(path: Path) -> None:
    own = _top_module(path)
    higher = {name for name in _module_level_imports(path) if RANKS[name] > RANKS[own]}
    assert not higher, f"{path.relative_to(PACKAGE)} (layer {own}) imports higher layers {sorted(higher)}"


def test_every_library_module_has_a_layer() -> None:
    unknown = {_top_module(p) for p in PACKAGE.rglob("*.py")} - set(RANKS) - {"__init__", "__main__"}
    assert not unknown, f"add {sorted(unknown)} to RANKS in tests/test_layering.py"


BLOCKER = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Absent())
"""


def test_server_modules_import_on_a_machine_without_jupyter_or_display() -> None:
    """As on a GPU server: the display packages cannot be imported at all, and there is no DISPLAY."""
    code = (
        f"BLOCKED = {DISPLAY_PACKAGES!r}\n"
        + BLOCKER
        + "".join(f"import {name}\n" for name in SERVER_MODULES)
        + "import pspnet_lib.cli.train, pspnet_lib.cli.data\n"
        + "print('imported')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "imported"


def test_the_blocker_really_blocks() -> None:
    """The test above would pass vacuously if blocking did nothing: importing a blocked package must fail."""
    code = "BLOCKED = ['ipywidgets']\n" + BLOCKER + "import ipywidgets\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "blocked by the test" in result.stderr


def test_the_widgets_module_does_need_ipywidgets() -> None:
    """And the notebook-side module is really on the other side of the line."""
    code = "BLOCKED = ['ipywidgets']\n" + BLOCKER + "import pspnet_lib.widgets\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "ipywidgets" in result.stderr
