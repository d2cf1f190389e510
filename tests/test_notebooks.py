"""The committed notebooks are fresh and follow the course template.

Fresh: executed top to bottom (in default mode, by `make notebooks`) with their outputs stored, so a
student who only reads them sees every figure and number. Template: a title, learning objectives, a
first cell that installs the library when missing, a papermill `parameters` cell that shrinks in fast
mode, widget cells whose output nbval ignores, and a check-your-understanding block with 2-4 folded
solutions. (Running them is nbval's job: `pytest --nbval-lax ... notebooks/`.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools import course_url

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = [
    "00_start_here.ipynb",
    "01_dilated_convolutions.ipynb",
    "02_dilated_residual_backbone.ipynb",
    "03_pyramid_pooling_module.ipynb",
    "04_assembling_pspnet.ipynb",
    "05_data_pipeline.ipynb",
    "06_training_on_gpu.ipynb",
    "07_evaluation_and_inference.ipynb",
    "08_ablation_pyramid_pooling.ipynb",
    "09_the_source_article_revisited.ipynb",
]
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def _load(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook file."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    return notebook


def _code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Code cells with any source."""
    return [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]


def _markdown(notebook: nbformat.NotebookNode) -> list[str]:
    """Sources of the markdown cells."""
    return [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]


def _headings(notebook: nbformat.NotebookNode) -> list[str]:
    """Every markdown heading's text, lower-cased."""
    return [m.lower() for text in _markdown(notebook) for m in re.findall(r"^#+\s+(.*)$", text, re.MULTILINE)]


def _section_cells(notebook: nbformat.NotebookNode, heading: str) -> list[nbformat.NotebookNode]:
    """Cells from the markdown cell containing `heading` to the end of the notebook."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and re.search(rf"^#+\s+{heading}", cell.source, re.I | re.M):
            return notebook.cells[index:]
    return []


def _is_solution(cell: nbformat.NotebookNode) -> bool:
    """A folded solution: a <details> markdown block or a code cell with its source hidden."""
    if cell.cell_type == "markdown":
        return "<details>" in cell.source and "<summary>Solution" in cell.source
    return bool(cell.metadata.get("jupyter", {}).get("source_hidden"))


def test_the_course_notebooks_exist() -> None:
    assert [path.name for path in NOTEBOOKS] == EXPECTED


@pytest.fixture(params=NOTEBOOKS, ids=lambda path: path.name)
def notebook(request) -> nbformat.NotebookNode:
    """Each numbered notebook, loaded."""
    return _load(request.param)


def test_every_code_cell_executed_in_order(notebook) -> None:
    counts = [cell.execution_count for cell in _code_cells(notebook)]
    assert None not in counts, "some code cells were never executed: run `make notebooks`"
    assert counts == list(range(1, len(counts) + 1)), f"not executed top to bottom in one run: {counts}"


def test_no_stored_errors_or_stderr(notebook) -> None:
    for cell in _code_cells(notebook):
        for output in cell.outputs:
            assert output.output_type != "error", f"stored error in cell:\n{cell.source}"
            assert output.get("name") != "stderr", (
                f"stray stderr {output.text[:200]!r} in cell:\n{cell.source}"
            )


def test_title_objectives_and_check_your_understanding(notebook) -> None:
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    assert any("learning objectives" in heading for heading in _headings(notebook))
    exercises = _section_cells(notebook, "check your understanding")
    assert exercises, "no 'Check your understanding' section"
    solutions = [cell for cell in exercises if _is_solution(cell)]
    assert 2 <= len(solutions) <= 4, f"expected 2-4 folded solutions, found {len(solutions)}"


def _first_code_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook's set-up cell: its first code cell."""
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def test_first_code_cell_is_the_template_right_below_the_title(notebook) -> None:
    title, setup = notebook.cells[0], notebook.cells[1]
    assert title.cell_type == "markdown" and title.source.startswith("# "), (
        "the notebook must open with its title"
    )
    assert setup is _first_code_cell(notebook), "the set-up cell must come right after the title"
    assert setup.source == course_url.public_setup_cell(), (
        "the set-up cell differs from tools/course_url.py's template: run `make course-url URL=...`"
    )
    assert setup.outputs == [], "the set-up cell shows no output"


def test_setup_template_installs_the_library_when_missing_from_the_course_url() -> None:
    source = course_url.public_setup_cell()
    assert "import pspnet_lib" in source and "except ImportError" in source
    assert course_url.pip_install_arguments(f"git+{course_url.course_url()}") == [
        "--quiet",
        f"git+{course_url.course_url()}",
    ]
    assert "<you>" not in source and "tensorflow" not in source.split("%pip", 1)[1].split("\n", 1)[0]


def test_setup_template_imports_tensorflow_quietly() -> None:
    source = course_url.public_setup_cell()
    assert "from pspnet_lib.config import import_tensorflow_quietly" in source
    assert "tf = import_tensorflow_quietly()" in source
    assert "dup2" not in source and "import tensorflow" not in source


def test_parameters_cell_shrinks_in_fast_mode(notebook) -> None:
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged `parameters` (papermill)"
    assert tagged[0].cell_type == "code" and "fast_mode()" in tagged[0].source


def test_widget_cells_ignore_their_output(notebook) -> None:
    for cell in _code_cells(notebook):
        if "Explorer(" in cell.source:
            assert "nbval-ignore-output" in cell.metadata.get("tags", []), cell.source
            assert any(o.get("data", {}).get("image/png") for o in cell.outputs), "no static figure stored"


def test_cells_stay_short(notebook) -> None:
    lengths = [len(cell.source.splitlines()) for cell in _code_cells(notebook)]
    assert max(lengths) <= 20, f"a code cell has {max(lengths)} lines; split it"
    assert sum(length > 15 for length in lengths) <= 2


def test_each_code_cell_follows_a_markdown_explanation(notebook) -> None:
    for previous, cell in zip(notebook.cells[1:], notebook.cells[2:], strict=False):
        if cell.cell_type == "code" and not _is_solution(cell):
            assert previous.cell_type == "markdown", f"no markdown 'why' before:\n{cell.source}"


def _course_copy(tmp_path: Path) -> Path:
    """What `make course-url` touches, copied: pyproject.toml, README.md and the notebooks."""

    root = NOTEBOOK_DIR.parent
    shutil.copy(root / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(root / "README.md", tmp_path / "README.md")
    (tmp_path / "notebooks").mkdir()
    for path in NOTEBOOKS:
        shutil.copy(path, tmp_path / "notebooks" / path.name)
    return tmp_path


def _run_course_url(*args: str) -> subprocess.CompletedProcess:
    script = NOTEBOOK_DIR.parent / "tools" / "course_url.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)


def test_course_url_writes_the_address_into_every_first_cell_and_the_readme_links(tmp_path) -> None:
    copy = _course_copy(tmp_path)
    copied = {path.name: _load(path) for path in (copy / "notebooks").glob("*.ipynb")}
    done = _run_course_url("https://github.com/uni-lab/scene-parsing/", str(copy))
    assert done.returncode == 0, done.stderr
    assert course_url.course_url(copy) == "https://github.com/uni-lab/scene-parsing"
    for original in NOTEBOOKS:
        before, after = copied[original.name], _load(copy / "notebooks" / original.name)
        assert after.cells[1].source == course_url.setup_cell_source(
            "git+https://github.com/uni-lab/scene-parsing"
        )
        assert [c.source for c in after.cells[2:]] == [
            c.source for c in before.cells[2:]
        ]  # nothing else moved
        assert after.cells[0] == before.cells[0]
    readme = (copy / "README.md").read_text()
    for path in NOTEBOOKS:
        colab = (
            f"https://colab.research.google.com/github/uni-lab/scene-parsing/blob/main/notebooks/{path.name}"
        )
        kaggle = f"https://kaggle.com/kernels/welcome?src=https://github.com/uni-lab/scene-parsing/blob/main/notebooks/{path.name}"
        assert f"[Open in Colab]({colab})" in readme and f"[Open in Kaggle]({kaggle})" in readme
    links = readme.split(course_url.README_BEGIN)[1].split(course_url.README_END)[0]
    assert course_url.course_url() not in links
    assert readme.count(course_url.README_BEGIN) == 1
    assert _run_course_url("https://github.com/uni-lab/scene-parsing", str(copy)).returncode == 0
    assert (copy / "README.md").read_text() == readme, "running it twice changes nothing"


def test_course_url_refuses_an_address_that_is_not_a_github_repository(tmp_path) -> None:
    copy = _course_copy(tmp_path)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    done = _run_course_url("github.com/uni-lab", str(copy))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "URL: expected a GitHub repository address like https://github.com/ORG/REPO, got 'github.com/uni-lab'"
    )
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_the_readme_links_open_the_notebooks_of_the_course_url() -> None:
    readme = (NOTEBOOK_DIR.parent / "README.md").read_text()
    block = course_url.readme_links_block(course_url.course_url(), [path.name for path in NOTEBOOKS])
    assert block in readme, "README's Colab/Kaggle links are stale: run `make course-url URL=...`"


def test_no_placeholder_address_remains() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=NOTEBOOK_DIR.parent, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    offenders = [
        name
        for name in tracked
        if name.endswith((".md", ".ipynb", ".py", ".toml", ".yml", ".txt"))
        and name != "tests/test_notebooks.py"
        and (NOTEBOOK_DIR.parent / name).is_file()
        and "<you>" in (NOTEBOOK_DIR.parent / name).read_text(errors="replace")
    ]
    assert offenders == []


def test_make_course_url_runs_the_tool_with_the_url() -> None:
    dry = subprocess.run(
        ["make", "--dry-run", "course-url", "URL=https://github.com/uni-lab/scene-parsing"],
        cwd=NOTEBOOK_DIR.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "tools/course_url.py 'https://github.com/uni-lab/scene-parsing'" in dry  # single-quoted: see test_bad_input
