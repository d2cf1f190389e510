"""Measured figures in the notebooks' prose agree with what the notebook printed, by construction.

A figure that comes from running code (a time, a score, a ratio, a count) is never typed into markdown
on trust. Either a code cell prints it in a sentence (an f-string), or the markdown carries it with a
**printed-figure mark**, an HTML comment right after the number, invisible when the notebook is rendered:

    the flip adds +0.2<!-- printed: flip only -->  mIoU points
    and trains in 381<!-- printed: article model (RGB + MSE) #4 --> s

It says: "this number is the `#N`-th number (default the first) that follows the text `KEY` on the first
line of the stored outputs that contains `KEY` followed by at least N numbers" (so a table row is found
even when an earlier cell printed the same label without figures). The number must be written exactly as printed (same
digits, same rounding; thousands commas and a leading `+` are part of the spelling). This test reads the
committed .ipynb files, so after `make notebooks` re-executes them, any figure whose printed value
changed makes `make test` fail, naming the notebook, the key, the figure and the line now printed.
A unit written with the mark must be the one printed after the number. Durations (which always depend on the
machine) may not appear in prose without a mark at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools.printed_figures import NUMBER, Mark, marks, stale_figures, update_figures

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def _notebook(markdown: str, printed: str) -> nbformat.NotebookNode:
    """A two-cell notebook: one code cell that printed `printed`, one markdown cell."""
    code = nbformat.v4.new_code_cell("print(...)", execution_count=1)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    return nbformat.v4.new_notebook(cells=[code, nbformat.v4.new_markdown_cell(markdown)])


def test_a_mark_matching_the_output_passes() -> None:
    notebook = _notebook(
        "Flip adds +0.2<!-- printed: flip --> points; the article trained in 381<!-- printed: article #4 --> s.",
        "flip:  +0.2 mIoU points\narticle   11.0   46.9   383,267   381 s\n",
    )
    assert stale_figures(notebook) == []
    assert marks(notebook.cells[1].source) == [Mark("+0.2", "flip", 1), Mark("381", "article", 4)]


def test_a_stale_figure_fails_naming_the_new_output() -> None:
    notebook = _notebook("Here 54.0<!-- printed: mean of scenes --> %.", "mean of scenes: 53.9 %\n")
    (problem,) = stale_figures(notebook)
    assert "'54.0'" in problem and "'53.9'" in problem and "mean of scenes" in problem


def test_update_rewrites_a_stale_figure_and_reports_it() -> None:
    notebook = _notebook("Here 54.0<!-- printed: mean of scenes --> % and 7<!-- printed: steps -->.", "mean of scenes: 53.9 %\nsteps 7\n")
    (change,) = update_figures(notebook)
    assert change.startswith("54.0 -> 53.9 [mean of scenes #1]")
    assert notebook.cells[1].source.startswith("Here 53.9<!-- printed: mean of scenes --> %")
    assert stale_figures(notebook) == []


def test_a_key_no_output_prints_fails() -> None:
    notebook = _notebook("Here 54.0<!-- printed: a label that was renamed --> %.", "mean of scenes: 54.0 %\n")
    (problem,) = stale_figures(notebook)
    assert "no stored output line contains 'a label that was renamed'" in problem


def test_rounding_and_thousands_are_part_of_the_figure() -> None:
    assert stale_figures(_notebook("about 54<!-- printed: score -->", "score: 54.0\n")) != []
    assert stale_figures(_notebook("705922<!-- printed: pixels -->", "pixels: 705,922\n")) != []
    assert stale_figures(_notebook("705,922<!-- printed: pixels -->", "pixels: 705,922\n")) == []


def test_a_table_row_is_found_after_a_list_that_names_it_without_figures() -> None:
    printed = "PPM max, bins 1      max (1,), aux\nPPM max, bins 1      max (1,), aux   33.5   270,130   135 s\n"
    assert stale_figures(_notebook("trained in 135<!-- printed: PPM max, bins 1 #4 --> s", printed)) == []
    (problem,) = stale_figures(_notebook("trained in 135<!-- printed: PPM max, bins 1 #5 --> s", printed))
    assert "None" in problem


def test_a_key_is_not_the_start_of_a_longer_label() -> None:
    printed = "PPM max, bins 1-2-3-6   35.8\nPPM max, bins 1   33.5\n"
    assert stale_figures(_notebook("33.5<!-- printed: PPM max, bins 1 -->", printed)) == []


def test_a_number_glued_to_the_key_counts_only_after_it() -> None:
    notebook = _notebook("took 2.22<!-- printed: (a) steps -->x", "pipeline (a) steps alone x 2.22, other 1.37\n")
    assert stale_figures(notebook) == []


def test_a_figure_in_the_wrong_unit_fails_whichever_side_of_the_mark_the_unit_is_on() -> None:
    printed = "T4   38 s   69 s   64.1 min\nthis CPU   92.6 min   93.8 min   6.4 days\nscore 40.8%\n"
    for prose in ("69<!-- printed: T4 #2 --> min", "93.8<!-- printed: this CPU #2 --> hours", "40.8 s<!-- printed: score -->"):
        (problem,) = stale_figures(_notebook(prose, printed))
        assert "the output prints it in" in problem
    for prose in ("69<!-- printed: T4 #2 --> s to decode", "93.8<!-- printed: this CPU #2 --> minutes",
                  "6.4<!-- printed: this CPU #3 --> days", "40.8 %<!-- printed: score -->", "64.1<!-- printed: T4 #3 --> for all"):
        assert stale_figures(_notebook(prose, printed)) == [], prose


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_marked_figure_matches_the_stored_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    problems = stale_figures(notebook)
    assert problems == [], (
        f"{path.name}: prose disagrees with the stored outputs (re-executed? then update the prose):\n  "
        + "\n  ".join(problems)
    )


def test_the_measured_notebooks_use_the_mark() -> None:
    """The notebooks that report measurements in prose do so through marks (a check that the mark is in use)."""
    counts = {
        path.name[:2]: sum(len(marks(c.source)) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        for path in NOTEBOOKS
    }
    for number in ("07", "08", "09"):
        assert counts.get(number, 0) >= 2, f"notebook {number} states no marked figure: {counts}"


# A duration in prose is always a measurement (it depends on the machine), so it must be marked.
DURATION = re.compile(r"(?<![\w.\-])\d+(?:\.\d+)?\s*(?:ms|s|sec|seconds?|min|minutes?|h|hours?|days?)\b")
MARKED_FIGURE = re.compile(rf"(?<![\w.]){NUMBER}<!--.*?-->")


def unmarked_durations(markdown: str) -> list[str]:
    """Durations ("381 s", "2.4 hours") written in `markdown` without a printed-figure mark."""
    return DURATION.findall(MARKED_FIGURE.sub("MARKED", markdown))


def test_an_unmarked_duration_is_found() -> None:
    assert unmarked_durations("trains in 381 s, or 2.4 hours; 10-minute runs") == ["381 s", "2.4 hours"]
    assert unmarked_durations("trains in 381<!-- printed: article #4 --> s") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_no_duration_is_typed_by_hand(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    typed = [found for cell in notebook.cells if cell.cell_type == "markdown" for found in unmarked_durations(cell.source)]
    assert typed == [], f"{path.name}: durations typed by hand (print them, or mark them): {typed}"
