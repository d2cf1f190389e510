"""The Colab-like check: the course installs into what a fresh Colab runtime holds, changes none of it, and runs.

A fresh Python 3.13 virtual environment is built from Colab's published pins (requirements/colab-2026-08-19.txt,
copied from googlecolab/backend-info: tensorflow-cpu at Colab's TensorFlow release, Keras 3.13.2, ipywidgets
7.7.1, ...). The course is installed into it by the notebooks' first cell itself (tools/course_url.py's template,
run in IPython after Colab's usual imports, its `%pip install` aimed at a copy of this clone instead of the public
address); it must not stop for a restart. Then no package that was there may have changed version (adding is fine); nbval, added afterwards under the same pins, runs
notebooks 00-07 in fast mode on that environment's own kernel, and both explorers are driven on Colab's
ipywidgets 7.

The environment is cached in .venv/colab-py313/ and rebuilt when the pins change; the course itself is
reinstalled on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import colab_runtime, course_url

pytestmark = [pytest.mark.colab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "colab-py313"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
PYTHON_ENV = "PSPNET_PYTHON313"
# The test harness, added after the course under Colab's pins (Colab has pytest; nbval is the one addition).
HARNESS = ["nbval", "coverage"]
COLAB_NOTEBOOKS = [f"{number:02d}_" for number in range(8)]
TENSORFLOW_BUILDS = {
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-gpu",
    "tensorflow-intel",
    "tensorflow-macos",
    "tensorflow-rocm",
    "intel-tensorflow",
    "tf-nightly",
    "tf-nightly-cpu",
}
# Modules a Colab kernel has loaded when a student runs the first cell (IPython, widgets, the scientific stack).
LOADED_ON_COLAB = [
    "IPython",
    "ipykernel",
    "ipywidgets",
    "traitlets",
    "numpy",
    "matplotlib.pyplot",
    "PIL.Image",
    "tensorflow",
    "keras",
    "kagglehub",
    "tensorboard",
    "google.protobuf",
    "requests",
    "packaging",
]


def colab_pins() -> dict[str, str]:
    """Colab's runtime as the project copied it: normalized name -> version."""
    return colab_runtime.read_pins()


def harness_requirements() -> list[str]:
    """The harness at the versions the project's own constraints pin."""
    constraints = colab_runtime.read_pins(CONSTRAINTS)
    return [f"{name}=={constraints[name]}" for name in HARNESS]


def find_python313() -> Path | None:
    """A working Python 3.13: $PSPNET_PYTHON313, python3.13 on PATH, or pyenv's 3.13.x."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [os.environ.get(PYTHON_ENV), shutil.which("python3.13")]
    candidates += [
        str(path) for path in sorted(pyenv_root.glob("versions/3.13*/bin/python3.13"), reverse=True)
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys, venv; print(sys.version_info[:2] == (3, 13))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return Path(candidate)
    return None


def _run(args: list[str], timeout_s: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure stop with its command line and the end of its output."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, **kwargs)
    if done.returncode != 0:
        output = "\n".join(
            line for line in (done.stdout + done.stderr).splitlines() if "is ignored" not in line
        )
        pytest.fail(f"`{' '.join(args)}` failed ({done.returncode}):\n{output[-4000:]}")
    return done


def installed_versions(python: Path) -> dict[str, str]:
    """Every distribution installed in `python`'s environment, normalized name -> version."""
    listing = _run([str(python), "-m", "pip", "list", "--format=json"], timeout_s=120).stdout
    return {colab_runtime.normalize(item["name"]): item["version"] for item in json.loads(listing)}


def tensorflow_builds(versions: dict[str, str]) -> dict[str, str]:
    """The TensorFlow distributions among `versions`."""
    return {name: version for name, version in versions.items() if name in TENSORFLOW_BUILDS}


def changed_versions(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """Packages of `before` whose version differs in `after` (None: removed); added packages do not count."""
    return {name: (version, after.get(name)) for name, version in before.items() if after.get(name) != version}


def environment_stamp(python: Path) -> str:
    """A hash of what the cached environment was built from."""
    inputs = [colab_runtime.COLAB_PINS.read_text(), str(python.resolve())]
    return hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:16]


def copy_of_clone(destination: Path) -> Path:
    """The clone's tracked and untracked-but-not-ignored files, copied (a build never writes into the clone)."""
    listing = _run(["git", "ls-files", "-co", "--exclude-standard", "-z"], timeout_s=60, cwd=ROOT).stdout
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def prepare_runtime(base_python: Path) -> Path:
    """The cached Colab-like environment (rebuilt when its stamp changed), without the course; its python."""
    python = VENV / "bin" / "python"
    stamp = VENV / f".stamp-{environment_stamp(base_python)}"
    if not stamp.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        _run([str(base_python), "-m", "venv", str(VENV)], timeout_s=300)
        _run([str(python), "-m", "pip", "install", "--quiet", f"pip=={colab_pins()['pip']}"], timeout_s=600)
        _run([str(python), "-m", "pip", "install", "--quiet", "-r", str(colab_runtime.COLAB_PINS)], timeout_s=1800)
        stamp.touch()
    else:
        for name in ("pspnet-course", *HARNESS):  # back to the runtime as built
            _run([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", name], timeout_s=300)
    return python


@pytest.fixture(scope="module")
def colab_like(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Build (or reuse) the environment, install the course as the first cell does, add the harness."""
    base_python = find_python313()
    if base_python is None:
        pytest.skip(
            f"no Python 3.13 found: `pyenv install 3.13` (or `uv python install 3.13`), or set {PYTHON_ENV}=/path/to/python3.13"
        )
    clone = copy_of_clone(tmp_path_factory.mktemp("clone"))
    python = prepare_runtime(base_python)
    before = installed_versions(python)
    started = time.monotonic()
    first_cell = run_first_cell(python, clone, tmp_path_factory.mktemp("kernel"))
    install_s = time.monotonic() - started
    after = installed_versions(python)
    pins = str(colab_runtime.COLAB_PINS)
    _run([str(python), "-m", "pip", "install", "--quiet", "-c", pins, *harness_requirements()], timeout_s=1800)
    return {
        "python": python,
        "clone": clone,
        "first_cell": first_cell,
        "before": before,
        "after": after,
        "after_harness": installed_versions(python),
        "install_s": install_s,
    }


def run_first_cell(python: Path, clone: Path, cwd: Path) -> str:
    """Run the notebooks' first cell, aimed at `clone`, in IPython as a Colab kernel would: after importing
    Colab's usual modules, with `%pip` installing into that Python. Returns what it printed."""
    cell = course_url.setup_cell_source(str(clone))
    script = (
        f"import importlib\nfor name in {LOADED_ON_COLAB!r}:\n    importlib.import_module(name)\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        f"InteractiveShell.instance().run_cell({cell!r}).raise_error()\n"
        "import pspnet_lib\nprint('pspnet_lib from', pspnet_lib.__file__)\n"
    )
    return _run([str(python), "-c", script], timeout_s=1800, cwd=cwd, env=kernel_env()).stdout


def kernel_env() -> dict[str, str]:
    """The environment for the Colab-like Python: fast mode, quiet TensorFlow, nothing from this venv's path."""
    env = {**os.environ, "PSPNET_FAST": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)
    return env


def test_the_runtime_holds_colabs_versions(colab_like) -> None:
    pins, before = colab_pins(), colab_like["before"]
    differing = {name: (version, before.get(name)) for name, version in pins.items() if before.get(name) != version}
    assert differing == {}, f"the Colab-like environment differs from Colab's pins (pinned, built): {differing}"
    assert tensorflow_builds(before) == {"tensorflow-cpu": pins["tensorflow-cpu"]}


def test_installing_the_course_changes_no_installed_package(colab_like) -> None:
    before, after = colab_like["before"], colab_like["after"]
    changed = changed_versions(before, after)
    assert changed == {}, f"the course install upgraded or removed packages (before, after): {changed}"
    assert tensorflow_builds(after) == tensorflow_builds(before), "a second TensorFlow build was installed"
    assert "pspnet-course" in after and "pspnet-course" not in before
    assert changed_versions(before, colab_like["after_harness"]) == {}, "the test harness changed Colab's packages"
    watched = ["tensorflow-cpu", "keras", "ipywidgets", "numpy", "matplotlib", "pillow", "kagglehub", "tensorboard"]
    print("before -> after the course install:", ", ".join(f"{n} {before[n]} -> {after[n]}" for n in watched))
    print(f"added: {sorted(set(after) - set(before))}; the first cell's pip took {colab_like['install_s']:.0f} s")


def test_the_first_cell_installs_the_library_and_asks_for_no_restart(colab_like) -> None:
    """The cell ran in IPython after Colab's usual imports: it installed the library and did not stop."""
    printed = colab_like["first_cell"]
    assert "Stopped:" not in printed and "The course's install changed" not in printed, printed
    assert "site-packages/pspnet_lib/__init__.py" in printed.strip().splitlines()[-1], printed


def test_both_explorers_run_on_colabs_ipywidgets_7(colab_like) -> None:
    python, clone = str(colab_like["python"]), colab_like["clone"]
    version = _run([python, "-c", "import ipywidgets; print(ipywidgets.__version__)"], timeout_s=120, env=kernel_env())
    assert version.stdout.strip() == colab_pins()["ipywidgets"] == "7.7.1"
    # fmt: off
    done = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_widgets.py"],
                timeout_s=900, cwd=clone, env=kernel_env())
    # fmt: on
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, done.stdout
    print(f"tests/test_widgets.py on ipywidgets {version.stdout.strip()}: {summary}")


def test_notebooks_00_to_07_run_there_in_fast_mode(colab_like) -> None:
    notebook_dir = colab_like["clone"] / "notebooks"
    notebooks = sorted(str(p) for p in notebook_dir.glob("*.ipynb") if p.name[:3] in COLAB_NOTEBOOKS)
    assert len(notebooks) == 8, notebooks
    started = time.monotonic()
    # fmt: off
    done = _run(
        [str(colab_like["python"]), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "--nbval-sanitize-with", str(notebook_dir / "nbval_sanitize.cfg"), *notebooks],
        timeout_s=3600, cwd=colab_like["clone"], env=kernel_env(),
    )
    # fmt: on
    print(done.stdout.strip().splitlines()[-1])
    print(f"nbval on notebooks 00-07 (fast mode, Python 3.13, Colab's pins) took {time.monotonic() - started:.0f} s")


def test_without_python_313_the_check_says_how_to_get_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.delenv(PYTHON_ENV, raising=False)
    assert find_python313() is None
    fake = tmp_path / "python3.13"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # a Python 3.11 under a 3.13 name
    fake.chmod(0o755)
    monkeypatch.setenv(PYTHON_ENV, str(fake))
    assert find_python313() is None
