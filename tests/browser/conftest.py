"""Fixtures of the browser tests: Chromium (or a skip/fail saying why not), one JupyterLab per session, notebook pages."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chromium import CHROMIUM_PATH, LAUNCH_ARGS, missing_chromium_outcome
from lab_notebook import LabNotebook
from lab_server import LabServer, start_lab_server
from playwright.sync_api import Browser

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
ARTIFACTS_DIR = PROJECT_ROOT / "tests" / "artifacts" / "browser"
SERVER_ENV = {"PSPNET_FAST": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    """Path of the Chromium to drive; skips the test without one, or fails it when CI is set."""
    outcome = missing_chromium_outcome()
    if outcome is None:
        return CHROMIUM_PATH
    action, reason = outcome
    if action == "fail":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, chromium_executable: Path) -> dict:
    """pytest-playwright's launch options, pointed at the system Chromium with flags that work as root."""
    headless = browser_type_launch_args.get("headless", True)
    args = (["--headless"] if headless else []) + LAUNCH_ARGS
    return {**browser_type_launch_args, "executable_path": str(chromium_executable), "args": args}


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """tests/artifacts/browser/, where screenshots are kept (git-ignored)."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="session")
def lab_server(chromium_executable: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab in fast mode serving a temporary copy of notebooks/ (the repository's files stay untouched)."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    shutil.copytree(NOTEBOOKS_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    state = base / "state"
    state.mkdir()
    server = start_lab_server(root, state, SERVER_ENV)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_notebook(
    browser: Browser, lab_server: LabServer, artifacts_dir: Path
) -> Iterator[Callable[[str], LabNotebook]]:
    """Factory: open a notebook (path relative to notebooks/) in its own page, run it all; one page per notebook."""
    opened: dict[str, LabNotebook] = {}

    def open_and_run(path: str) -> LabNotebook:
        if path not in opened:
            name = Path(path).stem
            page = browser.new_context(viewport=VIEWPORT).new_page()
            notebook = LabNotebook.open(
                page, lab_server.notebook_url(path, workspace=name), name, artifacts_dir
            )
            opened[path] = notebook
            notebook.run_all()
            notebook.screenshot("executed")
        return opened[path]

    yield open_and_run
    for path, notebook in opened.items():
        notebook.screenshot("final")
        notebook.page.context.close()
        lab_server.shut_down_sessions(path)
