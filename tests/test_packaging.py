"""The install files agree with each other: environment.yml mirrors pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment_pip_requirements() -> list[str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [item["pip"] for item in environment["dependencies"] if isinstance(item, dict)]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    return pip_sections[0]


def test_environment_yml_pins_python_311_and_pip() -> None:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    plain = [item for item in environment["dependencies"] if isinstance(item, str)]
    assert "python=3.11" in plain and "pip" in plain


def test_environment_yml_lists_exactly_the_pyproject_requirements() -> None:
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    expected = set(project["dependencies"]) | set(extras["dev"]) | set(extras["macos"]) | {"--editable ."}
    assert set(_environment_pip_requirements()) == expected


def test_each_tensorflow_extra_names_one_build_of_the_same_release() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    builds = {name: extras[name] for name in ("cpu", "gpu", "macos")}
    assert builds == {
        "cpu": ["tensorflow-cpu>=2.21,<2.22"],
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
        "macos": ["tensorflow>=2.21,<2.22"],
    }
    assert not any(req.startswith("tensorflow") and "tensorboard" not in req for req in _pyproject()["project"]["dependencies"])


def _dry_run_setup(**variables: str) -> str:
    """What `make setup` would run with these make variables (nothing is executed)."""
    import subprocess

    args = ["make", "--dry-run", "--always-make", "setup", *(f"{k}={v}" for k, v in variables.items())]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_make_setup_installs_the_gpu_build_when_forced() -> None:
    assert '-e ".[gpu,dev]"' in _dry_run_setup(GPU="1")


def test_make_setup_installs_the_cpu_build_when_gpu_is_off() -> None:
    assert '-e ".[cpu,dev]"' in _dry_run_setup(GPU="0")


def test_make_setup_on_macos_installs_plain_tensorflow() -> None:
    assert '-e ".[macos,dev]"' in _dry_run_setup(UNAME_S="Darwin")
