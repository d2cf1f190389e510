"""What a fresh Colab runtime holds (requirements/colab-*.txt) and whether the course's requirements fit it.

The notebooks' first cell installs the course with pip into a runtime that already has TensorFlow, Keras,
ipywidgets and the rest: a requirement whose range excludes Colab's version would make pip upgrade (or
downgrade) a package under the running kernel. `requirement_conflicts` names every such requirement;
tests/test_colab_pins.py runs it on every test run and tests/test_colab_like.py installs the course there.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
COLAB_PINS = ROOT / "requirements" / "colab-2026-08-19.txt"
# Colab's runtime has the GPU-capable `tensorflow`; the Colab-like check installs the same release of this build.
TENSORFLOW_BUILD = "tensorflow-cpu"


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = COLAB_PINS) -> dict[str, str]:
    """`name==version` lines of a pins file, normalized name -> version; anything else is a ValueError."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        if not separator or not name.strip() or not version.strip():
            raise ValueError(f"{path}:{number}: expected `name==version`, got {line!r}")
        pins[normalize(name)] = version.strip()
    return pins


def course_requirements(root: Path = ROOT) -> list[Requirement]:
    """pyproject.toml's [project] dependencies: what the first cell's `pip install` asks for."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def requirement_conflicts(requirements: list[Requirement], pins: dict[str, str]) -> list[str]:
    """One line per requirement that Colab's runtime does not satisfy (so pip would change that package there)."""
    problems = []
    for requirement in requirements:
        name = normalize(requirement.name)
        if name not in pins:
            problems.append(
                f"{requirement.name}: not in Colab's runtime ({COLAB_PINS.name}); pip would add it, and "
                "its pin belongs in that file"
            )
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(
                f"{requirement.name}: the course asks for {requirement.specifier} but Colab has {pins[name]}; "
                f"the first cell would change it under a running kernel (keep the bound at or below {pins[name]})"
            )
    return problems
