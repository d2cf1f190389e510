"""The course's requirements against Colab's published runtime (requirements/colab-*.txt), on every test run.

Raising a lower bound above what Colab has (or adding a dependency Colab lacks) fails here at once, naming the
package, long before the slow Colab-like check (tests/test_colab_like.py) would install anything.
"""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement

from tools import colab_runtime


def test_colab_pins_name_their_source_and_date() -> None:
    header = colab_runtime.COLAB_PINS.read_text().split("\n\n")[0]
    assert "googlecolab/backend-info" in header and "2026-08-19" in colab_runtime.COLAB_PINS.name
    assert "2026-08-19" in header


def test_colab_pins_hold_the_runtime_the_issue_names() -> None:
    pins = colab_runtime.read_pins()
    assert {name: pins[name] for name in ("tensorflow-cpu", "keras", "ipywidgets", "numpy", "ipykernel")} == {
        "tensorflow-cpu": "2.20.0",
        "keras": "3.13.2",
        "ipywidgets": "7.7.1",
        "numpy": "2.1.3",
        "ipykernel": "6.17.1",
    }
    assert "tensorflow" not in pins, "one TensorFlow build only (tensorflow-cpu at Colab's release)"


def test_every_course_requirement_is_satisfied_by_colabs_runtime() -> None:
    problems = colab_runtime.requirement_conflicts(colab_runtime.course_requirements(), colab_runtime.read_pins())
    assert problems == [], "\n".join(problems)


def test_a_lower_bound_above_colab_fails_naming_the_package() -> None:
    pins = {"keras": "3.13.2", "ipywidgets": "7.7.1", "numpy": "2.1.3"}
    raised = [Requirement("keras>=3.15,<4"), Requirement("ipywidgets>=7.7,<9"), Requirement("numpy>=1.26")]
    (problem,) = colab_runtime.requirement_conflicts(raised, pins)
    assert problem.startswith("keras: the course asks for <4,>=3.15 but Colab has 3.13.2")
    (missing,) = colab_runtime.requirement_conflicts([Requirement("Scikit_Image>=0.20")], pins)
    assert missing.startswith("Scikit_Image: not in Colab's runtime")


def test_a_malformed_pin_is_named_with_its_line(tmp_path) -> None:
    pins = tmp_path / "colab.txt"
    pins.write_text("# header\nkeras==3.13.2\nipywidgets>=7\n")
    with pytest.raises(ValueError, match=r"colab.txt:3: expected `name==version`, got 'ipywidgets>=7'"):
        colab_runtime.read_pins(pins)
    pins.write_text("Jupyterlab_Widgets==3.0.16  # a comment\n")
    assert colab_runtime.read_pins(pins) == {"jupyterlab-widgets": "3.0.16"}


def test_the_readme_names_the_runtime_the_course_is_tested_against() -> None:
    readme = (colab_runtime.ROOT / "README.md").read_text()
    section = readme.split("- **Google Colab / Kaggle**", 1)[1].split("<!-- course-links: begin", 1)[0]
    section = " ".join(section.split())
    pins = colab_runtime.read_pins()
    assert f"Colab's runtime of {colab_runtime.COLAB_PINS.stem.removeprefix('colab-')}" in section
    assert f"`requirements/{colab_runtime.COLAB_PINS.name}`" in section
    shown = {"TensorFlow": "tensorflow-cpu", "Keras": "keras", "ipywidgets": "ipywidgets", "NumPy": "numpy",
             "matplotlib": "matplotlib", "Pillow": "pillow", "kagglehub": "kagglehub", "TensorBoard": "tensorboard",
             "ipykernel": "ipykernel"}
    missing = [f"{label} {pins[name]}" for label, name in shown.items() if f"{label} {pins[name]}" not in section]
    assert missing == [], f"README's Colab section does not give Colab's pinned versions: {missing}"
