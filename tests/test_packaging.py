"""The install files agree with each other, and the package holds the library alone.

pyproject.toml gives ranges (the library's requirements, one TensorFlow build per extra, and the `lab` and
`dev` extras); requirements/constraints.txt pins exact versions inside those ranges for `make setup`;
environment.yml (the conda alternative) pins the same versions. `make dist` builds a wheel and an sdist.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
TENSORFLOW_EXTRAS = ("cpu", "gpu", "macos")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements(*extras: str) -> list[Requirement]:
    """The library's requirements plus those of `extras`."""
    project = _project()
    lines = project["dependencies"] + [
        line for extra in extras for line in project["optional-dependencies"][extra]
    ]
    return [Requirement(line) for line in lines]


def _pins() -> dict[str, str]:
    """requirements/constraints.txt as canonical name -> exact version."""
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _environment_pip_lines() -> list[str]:
    pip_sections = [item["pip"] for item in _environment()["dependencies"] if isinstance(item, dict)]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    return pip_sections[0]


def test_python_311_to_313_are_supported() -> None:
    supported = SpecifierSet(_project()["requires-python"])
    assert [version in supported for version in ("3.10", "3.11.0", "3.12.1", "3.13.0", "3.14.0")] == [
        False,
        True,
        True,
        True,
        False,
    ]


def test_the_library_requires_no_tensorflow_jupyterlab_or_test_tool() -> None:
    names = {canonicalize_name(req.name) for req in _requirements()}
    forbidden = {
        "tensorflow",
        "tensorflow-cpu",
        "jupyterlab",
        "ipykernel",
        "nbval",
        "nbgrader",
        "pytest",
        "nbconvert",
    }
    assert names & forbidden == set()
    assert all(req.specifier for req in _requirements()), "every requirement is a range with a lower bound"


def test_each_tensorflow_extra_names_one_build_with_the_same_range() -> None:
    builds = {extra: _requirements(extra)[len(_requirements()) :] for extra in TENSORFLOW_EXTRAS}
    assert {extra: [(r.name, sorted(r.extras)) for r in reqs] for extra, reqs in builds.items()} == {
        "cpu": [("tensorflow-cpu", [])],
        "gpu": [("tensorflow", ["and-cuda"])],
        "macos": [("tensorflow", [])],
    }
    assert len({str(reqs[0].specifier) for reqs in builds.values()}) == 1


def test_constraints_pin_every_requirement_inside_its_range() -> None:
    pins = _pins()
    for requirement in _requirements("cpu", "macos", "lab", "dev"):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{CONSTRAINTS.name} has no pin for {name}: run `make constraints`"
        assert pins[name] in requirement.specifier, (
            f"{name}=={pins[name]} is outside pyproject's {requirement}"
        )
    assert pins["tensorflow"] == pins["tensorflow-cpu"], "the TensorFlow builds must be pinned to one release"


def test_environment_yml_pins_the_constraints_versions_of_the_pyproject_requirements() -> None:
    plain = [item for item in _environment()["dependencies"] if isinstance(item, str)]
    assert "python=3.11" in plain and "pip" in plain
    lines = _environment_pip_lines()
    assert "-c requirements/constraints.txt" in lines and "--editable ." in lines
    pins = _pins()
    expected = {
        f"{canonicalize_name(r.name)}=={pins[canonicalize_name(r.name)]}"
        for r in _requirements("macos", "lab", "dev")
    }
    assert {line for line in lines if "==" in line} == expected
    assert len(lines) == len(expected) + 2


def _dry_run_setup(**variables: str) -> str:
    """What `make setup` would run with these make variables (nothing is executed)."""
    args = ["make", "--dry-run", "--always-make", "setup", *(f"{k}={v}" for k, v in variables.items())]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(
    ("variables", "extras"),
    [({"GPU": "1"}, "gpu"), ({"GPU": "0"}, "cpu"), ({"UNAME_S": "Darwin"}, "macos")],
)
def test_make_setup_installs_one_tensorflow_build_with_the_exact_pins(variables, extras) -> None:
    assert f'-c requirements/constraints.txt -e ".[{extras},lab,dev]"' in _dry_run_setup(**variables)


def test_importing_the_library_without_tensorflow_says_how_to_get_one() -> None:
    hide_tensorflow = "import sys; sys.modules['tensorflow'] = None; import pspnet_lib"
    done = subprocess.run([sys.executable, "-c", hide_tensorflow], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert (
        last_line.startswith("ImportError: pspnet_lib needs TensorFlow")
        and "pip install tensorflow-cpu" in last_line
    )


@pytest.mark.slow
def test_make_dist_builds_a_wheel_and_an_sdist_of_the_library_alone(tmp_path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    (wheel,) = tmp_path.glob("pspnet_course-*.whl")
    (sdist,) = tmp_path.glob("pspnet_course-*.tar.gz")
    wheel_files = zipfile.ZipFile(wheel).namelist()
    sdist_files = [name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name]
    library = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pspnet_lib").rglob("*.py"))
    for listing in (wheel_files, sdist_files):
        assert set(library) <= set(listing), set(library) - set(listing)
        strays = [
            name
            for name in listing
            if name.split("/")[0] in {"tests", "data", "runs", "notebooks", "assignments", "bench", "tools"}
        ]
        assert strays == [], strays
    assert {name.split("/")[0] for name in wheel_files} == {
        "pspnet_lib",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    assert {"pyproject.toml", "README.md", "LICENSE"} <= set(sdist_files)
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/METADATA").decode()
    assert "Requires-Python: <3.14,>=3.11" in metadata or "Requires-Python: >=3.11,<3.14" in metadata
    assert (
        "Requires-Dist: keras" in metadata and "Requires-Dist: tensorflow-cpu" in metadata
    )  # the latter: extra
    assert not any(
        line.startswith("Requires-Dist: tensorflow") and "extra ==" not in line
        for line in metadata.splitlines()
    )
