"""Notebook suite wall time: each notebook executed as a copy in a temporary folder, in fast and default mode."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.results import Row
from bench.targets import describe_limit, notebook_limit_seconds, within_limit

KERNEL_NAME = "pspnet-course"  # installed into the venv by `make setup`
FAST_ENV = "PSPNET_FAST"
MODES = ("fast", "default")
# A cell may run this many times the notebook's limit before execution is abandoned (a run-away is still timed).
CELL_TIMEOUT_FACTOR = 2


def notebook_paths(folder: Path) -> list[Path]:
    """The course notebooks of `folder` (names starting with a digit), in order."""
    return sorted(path for path in folder.glob("[0-9]*.ipynb") if path.is_file())


def kernel_environment(mode: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: `base` (default os.environ), quiet TensorFlow, PSPNET_FAST=1 only in fast mode."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    env = dict(os.environ if base is None else base)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop(FAST_ENV, None)
    if mode == "fast":
        env[FAST_ENV] = "1"
    return env


def execute_copy(notebook: Path, mode: str, timeout: float) -> tuple[float, str | None]:
    """Execute a copy of `notebook` in a temporary folder with the venv's kernel: (seconds, error or None)."""
    import nbformat
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="bench-notebook-") as folder:
        copy = Path(shutil.copy(notebook, folder))
        book = nbformat.read(copy, as_version=4)
        client = NotebookClient(
            book, timeout=int(timeout), kernel_name=KERNEL_NAME, resources={"metadata": {"path": folder}}
        )
        start = time.perf_counter()
        try:
            client.execute(env=kernel_environment(mode))
            error = None
        except Exception as failure:  # noqa: BLE001 - a failing notebook is a result to report
            error = f"{type(failure).__name__}: {(str(failure).strip().splitlines() or [''])[-1][:160]}"
        return time.perf_counter() - start, error


def notebook_row(notebook: Path, mode: str) -> Row:
    """The wall time of one notebook in one mode, against its limit."""
    limit = notebook_limit_seconds(notebook, mode)
    seconds, error = execute_copy(notebook, mode, CELL_TIMEOUT_FACTOR * limit)
    detail = f"failed: {error}" if error else ""
    return Row(
        "notebooks",
        f"{notebook.name} ({mode} mode)",
        seconds,
        "s",
        detail,
        describe_limit(limit),
        within_limit(seconds, limit, succeeded=error is None),
    )


def notebook_rows(folder: Path, modes: tuple[str, ...] = MODES) -> Iterator[Row]:
    """Rows for every notebook of `folder`, all of them in fast mode first, then in default mode, one at a time."""
    paths = notebook_paths(folder)
    for mode in modes:
        for path in paths:
            yield notebook_row(path, mode)
