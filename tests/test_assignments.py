"""Classroom assignments: the released versions hide solutions and hidden tests, and `course.py grade` gives each
submission exactly the marks it earned, stopping a runaway submission without stopping the others."""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "assignments"
GRADING_TIMEOUT = 90  # seconds per cell: above the slowest fast-mode cell (A3's training), and what a loop costs
SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN_REGION = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
MARKER_LINE = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$\n?", re.M)

# Which test cells of A1 check which of its solution cells (the tests of one part use only that part).
A1 = "a1_dilated_convolutions"
A1_PARTS = {
    "effective_kernel_size": ["test_effective_kernel_size"],
    "dilated_conv2d": ["test_dilated_conv2d_shape", "test_dilated_conv2d_values"],
    "receptive_field": ["test_receptive_field"],
    "influence_mask": ["test_influence_mask"],
}
BROKEN_A1 = {
    "dilated_conv2d": "def dilated_conv2d(image, kernel, dilation):\n    raise ValueError('a student bug')",
    "influence_mask": "def influence_mask(dilations, kernel_size=3):\n    while True:\n        pass",
}


def _load_course_module():
    """assignments/course.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("assignments_course", COURSE / "course.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


course = _load_course_module()


def _notebook_path(course_dir: Path, folder: str, name: str) -> Path:
    """The notebook of assignment `name` in `folder` (source or release)."""
    return course_dir / folder / name / f"{name}.ipynb"


def _graded_cells(notebook) -> dict[str, nbformat.NotebookNode]:
    """Cells carrying nbgrader metadata, by grade_id."""
    return {cell.metadata.nbgrader["grade_id"]: cell for cell in notebook.cells if "nbgrader" in cell.metadata}


def _points(name: str) -> dict[str, float]:
    """Points of each graded cell of assignment `name`, read from its source notebook."""
    cells = _graded_cells(nbformat.read(_notebook_path(COURSE, "source", name), as_version=4))
    return {grade_id: cell.metadata.nbgrader["points"] for grade_id, cell in cells.items() if cell.metadata.nbgrader["grade"]}


def _region_lines(name: str, region: re.Pattern) -> set[str]:
    """Non-trivial lines found only inside `region` blocks of the source notebook of `name` (nowhere else in it)."""
    text = _code_text(_notebook_path(COURSE, "source", name))
    inside = {line.strip() for block in region.findall(text) for line in block.splitlines()}
    outside = {line.strip() for line in region.sub("", text).splitlines()}
    return {line for line in inside - outside if len(line) > 12 and not line.startswith("#")}


def _code_text(path: Path) -> str:
    """All code cells of the notebook at `path`, joined."""
    return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")


def _release_text(name: str) -> str:
    """All code of the committed student version of `name`."""
    return _code_text(_notebook_path(COURSE, "release", name))


NAMES = course.assignment_names(COURSE)


def test_the_four_assignments_are_authored_and_released() -> None:
    assert [name[:2] for name in NAMES] == ["a1", "a2", "a3", "a4"]
    for name in NAMES:
        assert _notebook_path(COURSE, "release", name).is_file(), f"{name} has no student version: run make assignments"


@pytest.mark.parametrize("name", NAMES)
def test_released_version_holds_no_solution_code(name: str) -> None:
    released = _release_text(name)
    solution_lines = _region_lines(name, SOLUTION_REGION)
    assert solution_lines, f"{name} has no solution region"
    assert "BEGIN SOLUTION" not in released
    assert not [line for line in solution_lines if line in released]


@pytest.mark.parametrize("name", NAMES)
def test_released_version_holds_no_hidden_tests(name: str) -> None:
    released = _release_text(name)
    assert "HIDDEN TESTS" not in released
    assert not [line for line in _region_lines(name, HIDDEN_REGION) if line in released]


@pytest.mark.parametrize("name", NAMES)
def test_every_solution_cell_becomes_a_stub_and_every_test_cell_is_locked(name: str) -> None:
    cells = _graded_cells(nbformat.read(_notebook_path(COURSE, "release", name), as_version=4))
    for grade_id, cell in cells.items():
        meta = cell.metadata.nbgrader
        if meta["solution"]:
            if cell.cell_type == "code":
                assert "raise NotImplementedError()" in cell.source, f"{name}/{grade_id} is not a stub"
            else:
                assert cell.source == "YOUR ANSWER HERE", f"{name}/{grade_id}: the sample answer leaked"
        if meta["grade"] and not meta["solution"]:
            assert meta["locked"] and meta["points"] > 0, f"{name}/{grade_id} must be locked and worth points"


def test_release_rejects_an_unknown_assignment_by_name() -> None:
    with pytest.raises(ValueError, match="a9_missing"):
        course.release(COURSE, ["a9_missing"])


def test_a_course_without_source_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        course.assignment_names(tmp_path)


def test_a1_parts_map_covers_every_test_cell() -> None:
    assert sorted(t for tests in A1_PARTS.values() for t in tests) == sorted(_points(A1))


# ---------------------------------------------------------------------------------------------------------------
# One grading run, shared: an instructor solution and an untouched copy of every assignment, plus a partly
# correct and a broken (raising, looping) submission of A1, graded in a temporary copy of the course directory.


def _submission(name: str, solved: set[str] | None, replacements: dict[str, str] | None = None):
    """The student version of `name` with the source's solutions for `solved` cells (None: all) and `replacements`."""
    solutions = _graded_cells(nbformat.read(_notebook_path(COURSE, "source", name), as_version=4))
    notebook = nbformat.read(_notebook_path(COURSE, "release", name), as_version=4)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if grade_id in (replacements or {}):
            cell.source = replacements[grade_id]
        elif meta.get("solution") and (solved is None or grade_id in solved):
            cell.source = MARKER_LINE.sub("", solutions[grade_id].source)
    return notebook


def _submit(course_dir: Path, student: str, name: str, notebook) -> None:
    """Place `notebook` where nbgrader collects it: submitted/<student>/<name>/<name>.ipynb."""
    folder = course_dir / "submitted" / student / name
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / f"{name}.ipynb")


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory) -> Path:
    """A copy of the course with four students' submissions, after `course.py grade` (exit status checked)."""
    course_dir = tmp_path_factory.mktemp("course") / "assignments"
    shutil.copytree(COURSE, course_dir, ignore=shutil.ignore_patterns(
        "gradebook.db", "submitted", "autograded", "feedback", "__pycache__", "*.npz"))
    for name in NAMES:
        _submit(course_dir, "instructor", name, _submission(name, solved=None))
        _submit(course_dir, "untouched", name, _submission(name, solved=set()))
    _submit(course_dir, "partial", A1, _submission(A1, solved={"dilated_conv2d"}))
    _submit(course_dir, "broken", A1, _submission(A1, solved={"effective_kernel_size", "receptive_field"},
                                                  replacements=BROKEN_A1))
    status = course.main(["--course-dir", str(course_dir), "grade", "--timeout", str(GRADING_TIMEOUT)])
    assert status == 0, "course.py grade reported a failure"
    return course_dir


def _scores(course_dir: Path, student: str, name: str) -> dict:
    """code score, its maximum, written maximum and whether manual grading is pending, from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(name, name, student)
        return {
            "code": notebook.code_score,
            "max_code": notebook.max_code_score,
            "max_written": notebook.max_written_score,
            "manual_pending": notebook.needs_manual_grade,
        }


def _a1_points(parts: set[str]) -> float:
    """Points A1's tests award when exactly `parts` are correct."""
    points = _points(A1)
    return sum(points[test] for part in parts for test in A1_PARTS[part])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_instructor_solution_gets_full_marks(graded_course: Path, name: str) -> None:
    scores = _scores(graded_course, "instructor", name)
    code_points = sum(p for grade_id, p in _points(name).items() if grade_id.startswith("test_"))
    assert scores["max_code"] == code_points > 0
    assert scores["code"] == scores["max_code"], f"{name}: {scores['code']} of {scores['max_code']}"
    assert scores["manual_pending"] == (scores["max_written"] > 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_untouched_student_version_gets_zero(graded_course: Path, name: str) -> None:
    assert _scores(graded_course, "untouched", name)["code"] == 0


@pytest.mark.slow
def test_partly_correct_submission_gets_exactly_its_parts(graded_course: Path) -> None:
    assert _scores(graded_course, "partial", A1)["code"] == _a1_points({"dilated_conv2d"})


@pytest.mark.slow
def test_raising_and_looping_submission_is_stopped_and_graded(graded_course: Path) -> None:
    assert _scores(graded_course, "broken", A1)["code"] == _a1_points({"effective_kernel_size", "receptive_field"})
    graded = nbformat.read(graded_course / "autograded" / "broken" / A1 / f"{A1}.ipynb", as_version=4)
    errors = {
        cell.metadata.nbgrader["grade_id"]: [out.ename for out in cell.outputs if out.output_type == "error"]
        for cell in graded.cells
        if cell.cell_type == "code" and "nbgrader" in cell.metadata
    }
    assert "ValueError" in errors["test_dilated_conv2d_values"]
    assert set(errors["test_influence_mask"]) & {"CellTimeoutError", "KeyboardInterrupt"}, errors["test_influence_mask"]


@pytest.mark.slow
def test_every_submission_gets_feedback_html_and_a_csv_row(graded_course: Path) -> None:
    submissions = sorted(
        (folder.parent.name, folder.name) for folder in (graded_course / "submitted").glob("*/*") if folder.is_dir()
    )
    for student, name in submissions:
        html = graded_course / "feedback" / student / name / f"{name}.html"
        assert html.is_file() and "<html" in html.read_text()[:2000].lower(), html
    with open(graded_course / course.GRADES_CSV, newline="") as handle:
        rows = {(row["student_id"], row["assignment"]): float(row["raw_score"]) for row in csv.DictReader(handle)}
    assert set(submissions) <= set(rows)
    assert rows[("partial", A1)] == _a1_points({"dilated_conv2d"})


@pytest.mark.slow
def test_committed_release_is_what_the_script_generates_from_source(graded_course: Path) -> None:
    for name in NAMES:
        regenerated = nbformat.read(_notebook_path(graded_course, "release", name), as_version=4)
        committed = nbformat.read(_notebook_path(COURSE, "release", name), as_version=4)
        assert regenerated == committed, f"{name}: release/ is stale, run make assignments"


# ---------------------------------------------------------------------------------------------------------------
# The student kit: what students receive holds no solution, hidden test, marking guide or grader file.


def _source_secrets(names: list[str]) -> set[str]:
    """Every solution line, hidden-test line and marking-guide line of the source notebooks of `names`."""
    secrets = set()
    for name in names:
        secrets |= _region_lines(name, SOLUTION_REGION) | _region_lines(name, HIDDEN_REGION)
        for cell in nbformat.read(_notebook_path(COURSE, "source", name), as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and cell.cell_type == "markdown":
                secrets |= {line.strip() for line in cell.source.splitlines() if len(line.strip()) > 12}
    return {line for line in secrets if not line.startswith(("import ", "from "))}


def _flatten(text: str) -> str:
    """`text` with each line stripped, empty lines and comments dropped, joined by newlines."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def _cell_text(content: bytes) -> str:
    """All cell sources of a notebook's bytes."""
    return "\n".join(cell.source for cell in nbformat.reads(content.decode(), as_version=4).cells)


def _source_blocks(names: list[str]) -> list[str]:
    """Every solution and hidden-test region of the source notebooks of `names`, flattened (three lines or more)."""
    blocks = [_flatten(block) for name in names for region in (SOLUTION_REGION, HIDDEN_REGION)
              for block in region.findall(_code_text(_notebook_path(COURSE, "source", name)))]
    return [block for block in blocks if block.count("\n") >= 2]


# A4's locked recipe cell trains like A3 Part 3's answer: A4 goes out after A3's deadline (assignments/README.md).
KIT_STAGES = [NAMES[:3], NAMES]


@pytest.mark.parametrize("released", KIT_STAGES, ids=["a1-a3", "a1-a4"])
def test_student_kit_holds_the_course_and_no_solution(tmp_path: Path, released: list[str]) -> None:
    kit = course.student_kit(tmp_path / "student-kit", names=released)
    files = {path.relative_to(kit).as_posix(): path for path in kit.rglob("*") if path.is_file()}
    assert {path.split("/")[2] for path in files if path.startswith("assignments/release/")} == set(released)
    for name in released:  # the released notebooks, byte for byte, and the course around them
        released = f"assignments/release/{name}/{name}.ipynb"
        assert files[released].read_bytes() == (COURSE / "release" / name / f"{name}.ipynb").read_bytes()
    assert {"README.md", "Makefile", "pyproject.toml", "pspnet_lib/layers.py", "assignments/README.md"} <= set(files)
    assert any(path.startswith("notebooks/0") for path in files)
    forbidden_paths = ("assignments/source", "gradebook", "feedback", "submitted", "autograded", "course.py",
                       "nbgrader_config.py", "grader", ".npz", "tests/")
    assert not [path for path in files if any(part in path for part in forbidden_paths)]
    source_files = {path.relative_to(COURSE / "source").as_posix() for path in (COURSE / "source").rglob("*")}
    assert not [path for path in files if path.removeprefix("assignments/source/") in source_files - {""}
                and not path.startswith("assignments/release/")]
    secrets = _source_secrets(NAMES if released == NAMES[:3] else NAMES[3:])
    markers = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "marking guide")
    with zipfile.ZipFile(f"{kit}.zip") as archive:
        zipped = {member: archive.read(member) for member in archive.namelist() if not member.endswith("/")}
    assert {member.split("/", 1)[1] for member in zipped} == set(files), "the zip holds what the folder holds"
    blocks = _source_blocks(NAMES if released == NAMES[:3] else NAMES[3:])
    for path, content in zipped.items():
        text = content.decode("utf-8", errors="ignore")
        assert not [marker for marker in markers if marker.lower() in text.lower()], f"{path} holds a marker"
        if "/assignments/" in path:  # the notebooks teach some of the same lines; whole answers must not appear
            assert not [line for line in secrets if line in text], f"{path} holds a solution or hidden-test line"
        if path.endswith((".ipynb", ".py", ".md")):
            flat = _flatten(_cell_text(content) if path.endswith(".ipynb") else text)
            assert not [block for block in blocks if block in flat], f"{path} holds a whole solution or hidden test"


def test_student_kit_refuses_to_write_into_the_project_outside_dist() -> None:
    with pytest.raises(ValueError, match="dist"):
        course.student_kit(ROOT / "notebooks" / "kit")
