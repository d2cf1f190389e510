"""The library's layers stay in order, and the server-side modules import without Jupyter or a display."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pspnet_lib"
BENCH = ROOT / "bench"

# The explicit order of the library. A module may import (at module level or inside a function) only its own
# package's modules and modules of a strictly LOWER rank: two modules of one rank never import each other.
RANKS = {
    "config": 0,
    "keras_registry": 0,  # standard library only: makes saved models loadable, lazily
    "run_files": 0,  # run-folder files: standard library only
    "reference": 0,  # results measured on the real pairs, shipped as JSON: standard library only
    "__init__": 1,
    "data": 1,
    "layers": 1,
    "models": 2,
    "metrics": 2,
    "runtime": 2,
    "inference": 3,
    "training": 3,
    "cli": 4,
    "experiments": 4,
    "viz": 4,
    "diagrams": 4,
    "live_view": 5,
    "widgets": 5,
    "__main__": 6,
}
# bench/ stands on the whole library (which never imports it); its own modules have an order too.
BENCH_RANKS = {
    "__init__": 0,
    "results": 0,
    "targets": 0,
    "timing": 0,
    "machine": 0,
    "nearest_colour": 0,
    "baseline": 0,
    "notebooks": 1,
    "pipeline": 1,
    "throughput": 1,
    "learning": 1,
    "recipe": 1,
    "cli": 2,
    "recipe_summary": 2,
    "__main__": 3,
}
# Modules that must not load TensorFlow (plotting a history, the teaching diagrams, the run-folder files).
TENSORFLOW_FREE_MODULES = ["pspnet_lib", "pspnet_lib.config", "pspnet_lib.run_files", "pspnet_lib.reference", "pspnet_lib.viz", "pspnet_lib.diagrams"]
SERVER_MODULES = ["pspnet_lib.data", "pspnet_lib.models", "pspnet_lib.training", "pspnet_lib.cli", "pspnet_lib.inference"]
DISPLAY_PACKAGES = ["ipywidgets", "IPython", "matplotlib", "jupyter_client", "ipykernel"]


def _top_module(path: Path, root: Path) -> str:
    """`pspnet_lib/data/pipeline.py` -> `data`; `pspnet_lib/models.py` -> `models`."""
    return path.relative_to(root).parts[0].removesuffix(".py")


def imported_modules(path: Path, root: Path = ROOT) -> set[tuple[str, str]]:
    """(package, top module) of every pspnet_lib or bench import in `path`, module level or not, relative too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(root).parts[0]
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                parents = path.relative_to(root).parent.parts
                base = ".".join(parents[: len(parents) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            parts = module.split(".")
            names = [f"{module}.{alias.name}" for alias in node.names] if len(parts) == 1 else [module]
        for name in names:
            parts = name.split(".")
            if parts[0] in ("pspnet_lib", "bench") and len(parts) > 1:
                found.add((parts[0], parts[1]))
            elif parts[0] == package and len(parts) == 1:
                found.add((package, "__init__"))
    return found


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


@pytest.mark.parametrize("path", _files(PACKAGE), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_module_imports_only_lower_ranks(path: Path) -> None:
    own = _top_module(path, PACKAGE)
    wrong = sorted(
        f"{package}.{module}"
        for package, module in imported_modules(path)
        if package == "bench" or (module != own and RANKS[module] >= RANKS[own])
    )
    assert not wrong, f"{path.relative_to(ROOT)} (rank {RANKS[own]}) imports {wrong}: not lower in RANKS"


@pytest.mark.parametrize("path", _files(BENCH), ids=lambda p: str(p.relative_to(ROOT)))
def test_bench_module_imports_only_the_library_and_lower_bench_ranks(path: Path) -> None:
    own = _top_module(path, BENCH)
    wrong = sorted(
        f"bench.{module}"
        for package, module in imported_modules(path)
        if package == "bench" and module != own and BENCH_RANKS[module] >= BENCH_RANKS[own]
    )
    assert not wrong, f"{path.relative_to(ROOT)} (rank {BENCH_RANKS[own]}) imports {wrong}: not lower in BENCH_RANKS"


def test_every_module_has_a_rank() -> None:
    unknown = {_top_module(p, PACKAGE) for p in _files(PACKAGE)} - set(RANKS)
    unknown |= {f"bench.{_top_module(p, BENCH)}" for p in _files(BENCH)} - {f"bench.{name}" for name in BENCH_RANKS}
    assert not unknown, f"add {sorted(unknown)} to RANKS / BENCH_RANKS in tests/test_layering.py"


def test_the_import_reader_sees_imports_inside_functions_and_relative_ones(tmp_path) -> None:
    """The check above would pass vacuously if the reader missed imports: it must see the hidden kinds."""
    module = tmp_path / "pspnet_lib" / "training" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text("def late():\n    from pspnet_lib import inference\n    from ..viz import plot_per_class_iou\n")
    assert imported_modules(module, tmp_path) == {("pspnet_lib", "inference"), ("pspnet_lib", "viz")}


def test_plotting_and_run_files_do_not_load_tensorflow() -> None:
    code = "import sys\n" + "".join(f"import {name}\n" for name in TENSORFLOW_FREE_MODULES)
    code += "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", "TensorFlow was loaded by " + ", ".join(TENSORFLOW_FREE_MODULES)


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
