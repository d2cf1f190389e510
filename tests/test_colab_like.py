"""The Colab-like check: the course installs beside a TensorFlow that is already there, and its notebooks run.

A fresh Python 3.13 virtual environment holds only `tensorflow-cpu` and Keras at the oldest releases the course
supports on Python 3.13 (as Colab holds its TensorFlow). The course is installed into it with the pip command
of the notebooks' first cell (tools/course_url.py's template) aimed at a copy of this clone instead of the
public address. Then no installed package may have changed version (no TensorFlow upgrade, no second build),
and notebooks 00-07 run through nbval in fast mode on that environment's own kernel.

The environment is cached in .venv/colab-py313/ and rebuilt when [project] in pyproject.toml, the constraints
or the runtime pins below change; the course itself is reinstalled on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

from tools import course_url

pytestmark = [pytest.mark.colab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "colab-py313"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
PYTHON_ENV = "PSPNET_PYTHON313"
# The runtime Colab would have, at the oldest releases we support there: tensorflow-cpu 2.20 is the first
# with Python 3.13 wheels (pyproject's cpu extra allows 2.16 on 3.11/3.12); Keras at pyproject's lower bound.
OLDEST_TENSORFLOW_ON_PY313 = "2.20.0"
# The test harness added after the course: Colab has pytest and ipykernel; nbval runs the notebooks.
HARNESS = ["pytest", "nbval", "ipykernel"]
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


def _keras_lower_bound() -> str:
    """The oldest Keras pyproject.toml allows (`keras>=X`)."""
    (requirement,) = [r for r in _project()["dependencies"] if r.startswith("keras")]
    return requirement.split(">=")[1].split(",")[0]


def _project() -> dict:
    """pyproject.toml's [project] table."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def runtime_requirements() -> list[str]:
    """What the fresh environment holds before the course: one TensorFlow build and its Keras."""
    return [f"tensorflow-cpu=={OLDEST_TENSORFLOW_ON_PY313}", f"keras=={_keras_lower_bound()}"]


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
    """Every distribution installed in `python`'s environment, name (normalised) -> version."""
    listing = _run([str(python), "-m", "pip", "list", "--format=json"], timeout_s=120).stdout
    return {item["name"].lower().replace("_", "-"): item["version"] for item in json.loads(listing)}


def tensorflow_builds(versions: dict[str, str]) -> dict[str, str]:
    """The TensorFlow distributions among `versions`."""
    return {name: version for name, version in versions.items() if name in TENSORFLOW_BUILDS}


def environment_stamp(python: Path) -> str:
    """A hash of what the cached environment was built from."""
    inputs = [
        json.dumps(_project(), sort_keys=True),
        CONSTRAINTS.read_text(),
        " ".join(runtime_requirements() + HARNESS),
        str(python.resolve()),
    ]
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
        _run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], timeout_s=600)
        _run([str(python), "-m", "pip", "install", "--quiet", *runtime_requirements()], timeout_s=1800)
        stamp.touch()
    else:
        _run([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", "pspnet-course"], timeout_s=300)
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
    first_cell_install = course_url.pip_install_arguments(
        str(clone)
    )  # the first cell's `%pip install` arguments
    _run([str(python), "-m", "pip", "install", *first_cell_install], timeout_s=1800)
    install_s = time.monotonic() - started
    after = installed_versions(python)
    _run([str(python), "-m", "pip", "install", "--quiet", "-c", str(CONSTRAINTS), *HARNESS], timeout_s=1800)
    return {
        "python": python,
        "clone": clone,
        "before": before,
        "after": after,
        "after_harness": installed_versions(python),
        "install_s": install_s,
    }


def test_the_runtime_holds_one_tensorflow_build_at_the_oldest_release(colab_like) -> None:
    assert tensorflow_builds(colab_like["before"]) == {"tensorflow-cpu": OLDEST_TENSORFLOW_ON_PY313}
    assert Version(colab_like["before"]["keras"]) == Version(_keras_lower_bound())


def test_installing_the_course_changes_no_installed_package(colab_like) -> None:
    before, after = colab_like["before"], colab_like["after"]
    changed = {
        name: (version, after.get(name)) for name, version in before.items() if after.get(name) != version
    }
    assert changed == {}, f"the course install upgraded or removed packages (before, after): {changed}"
    assert tensorflow_builds(after) == tensorflow_builds(before), "a second TensorFlow build was installed"
    assert "pspnet-course" in after and "pspnet-course" not in before
    assert tensorflow_builds(colab_like["after_harness"]) == tensorflow_builds(before)
    print(f"course install (the first cell's pip command) took {colab_like['install_s']:.0f} s")


def test_the_installed_library_is_the_one_the_kernel_imports(colab_like) -> None:
    probe = _run(
        [str(colab_like["python"]), "-c", "import pspnet_lib; print(pspnet_lib.__file__)"],
        timeout_s=120,
        cwd=colab_like["clone"] / "notebooks",
    )
    assert "site-packages" in probe.stdout, probe.stdout


def test_notebooks_00_to_07_run_there_in_fast_mode(colab_like) -> None:
    notebook_dir = colab_like["clone"] / "notebooks"
    notebooks = sorted(str(p) for p in notebook_dir.glob("*.ipynb") if p.name[:3] in COLAB_NOTEBOOKS)
    assert len(notebooks) == 8, notebooks
    env = {**os.environ, "PSPNET_FAST": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    # fmt: off
    _run(
        [str(colab_like["python"]), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "--nbval-sanitize-with", str(notebook_dir / "nbval_sanitize.cfg"), *notebooks],
        timeout_s=3600, cwd=colab_like["clone"], env=env,
    )
    # fmt: on
    print(f"nbval on notebooks 00-07 (fast mode, Python 3.13) took {time.monotonic() - started:.0f} s")


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
