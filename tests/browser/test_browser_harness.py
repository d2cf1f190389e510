"""The browser harness itself, on a tiny generated notebook: a slider whose callback redraws a figure and a readout."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from chromium import missing_chromium_outcome
from figure_pixels import changed_fraction
from lab_notebook import LabNotebook, NotebookFailure
from lab_server import LabServer
from playwright.sync_api import Browser
from widget_explorer import ControlSpec, ExplorerView

PROBE_PATH = "browser_harness/square_probe.ipynb"
PROBE_SLIDER = ControlSpec(hook_class="probe-slider", widget_class="widget-slider")
PROBE_CELLS = [
    "import io\n\nimport ipywidgets\nfrom matplotlib.figure import Figure\nfrom matplotlib.patches import Rectangle",
    '''def square_png(side: int) -> bytes:
    """A black square of `side` units in the corner of a 20x10 white canvas, nothing else drawn."""
    figure = Figure(figsize=(4, 2))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set(xlim=(0, 20), ylim=(0, 10))
    ax.add_patch(Rectangle((0, 0), side, side, color="black"))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=60)
    return buffer.getvalue()''',
    """slider = ipywidgets.IntSlider(value=3, min=1, max=9, description="side").add_class("probe-slider")
readout = ipywidgets.HTML().add_class("pspnet-readout")
view = ipywidgets.Image(format="png").add_class("pspnet-figure")

def redraw(change=None):
    readout.value = f"Area: {slider.value ** 2} square units"
    view.value = square_png(slider.value)

slider.observe(redraw, names="value")
redraw()
ipywidgets.VBox([slider, readout, view])""",
]


FAILING_PATH = "browser_harness/failing.ipynb"
FAILING_CELLS = ["ratio = 1", "ratio = 1 / 0", "print('never reached')"]
IDLE_PATH = "browser_harness/idle.ipynb"


def write_notebook(root: Path, relative: str, cells: list[str]) -> None:
    """Write a notebook of code `cells` (kernel: this venv's python3) at `relative` under the server's root."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def probe(lab_server: LabServer, open_notebook, artifacts_dir: Path) -> ExplorerView:
    """The probe notebook run in JupyterLab, seen through its slider explorer."""
    write_notebook(lab_server.root_dir, PROBE_PATH, PROBE_CELLS)
    notebook: LabNotebook = open_notebook(PROBE_PATH)
    return ExplorerView(notebook.panel, PROBE_SLIDER, artifacts_dir, name="probe")


@pytest.mark.browser
@pytest.mark.slow
def test_probe_notebook_runs_every_cell(probe: ExplorerView, open_notebook) -> None:
    counts = [int(prompt.strip("[]:")) for prompt in open_notebook(PROBE_PATH).state()["prompts"]]
    assert len(counts) == len(PROBE_CELLS) and counts == sorted(set(counts))


@pytest.mark.browser
@pytest.mark.slow
def test_arrow_keys_move_the_slider_and_redraw_readout_and_figure(probe: ExplorerView) -> None:
    start = probe.slider_value()
    assert probe.readout_text() == f"Area: {start**2} square units"
    before = probe.figure_pixels("start")

    probe.step_slider("ArrowRight")
    assert (probe.slider_value(), probe.slider_readout()) == (start + 1, str(start + 1))
    assert probe.readout_text() == f"Area: {(start + 1) ** 2} square units"
    grown = probe.figure_pixels("after-right")
    assert changed_fraction(before, grown) > 0.01

    probe.step_slider("ArrowLeft")
    assert probe.readout_text() == f"Area: {start**2} square units"
    assert changed_fraction(before, probe.figure_pixels("back")) == 0.0


def dark_share(pixels) -> float:
    """Fraction of pixels darker than mid-grey."""
    return float((pixels.mean(axis=-1) < 128).mean())


@pytest.mark.browser
@pytest.mark.slow
def test_the_figure_shows_a_square_of_the_slider_side(probe: ExplorerView) -> None:
    start = probe.slider_value()
    assert dark_share(probe.figure_pixels("square-start")) == pytest.approx(start**2 / 200, abs=0.005)
    probe.step_slider("ArrowRight")
    assert dark_share(probe.figure_pixels("square-right")) == pytest.approx((start + 1) ** 2 / 200, abs=0.005)
    probe.step_slider("ArrowLeft")


@pytest.mark.browser
@pytest.mark.slow
def test_a_failing_cell_is_reported_with_its_traceback(lab_server: LabServer, open_notebook) -> None:
    write_notebook(lab_server.root_dir, FAILING_PATH, FAILING_CELLS)
    with pytest.raises(NotebookFailure, match=r"(?s)code cell 1 raised:.*ZeroDivisionError"):
        open_notebook(FAILING_PATH)


@pytest.mark.browser
@pytest.mark.slow
def test_an_unanswered_first_cell_is_seen_as_lost_then_rerun(
    lab_server: LabServer, browser: Browser, artifacts_dir: Path
) -> None:
    write_notebook(lab_server.root_dir, IDLE_PATH, ["answer = 42"])
    page = browser.new_context().new_page()
    try:
        notebook = LabNotebook.open(page, lab_server.notebook_url(IDLE_PATH, "idle"), "idle", artifacts_dir)
        # Nothing was sent: the kernel idles while cell 0 stays unnumbered, exactly what a lost request looks like.
        assert notebook.wait_for_first_prompt_number() is False
        notebook.run_first_cell_until_accepted()
        assert notebook.state()["prompts"] == ["[1]:"]
    finally:
        page.context.close()
        lab_server.shut_down_sessions(IDLE_PATH)


def test_missing_chromium_is_skipped_locally(tmp_path: Path) -> None:
    outcome = missing_chromium_outcome(tmp_path / "chromium", env={"CI": ""})
    assert outcome is not None and outcome[0] == "skip" and str(tmp_path / "chromium") in outcome[1]


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_missing_chromium_fails_in_ci(tmp_path: Path, ci: str) -> None:
    outcome = missing_chromium_outcome(tmp_path / "chromium", env={"CI": ci})
    assert outcome is not None and outcome[0] == "fail" and "CI" in outcome[1]


def test_present_chromium_needs_nothing(tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    assert missing_chromium_outcome(chromium, env={"CI": "true"}) is None
