"""The course site (`make site`): built once from the committed notebooks, then read file by file and in Chromium.

The build must be clean (Sphinx treats warnings as errors; nothing else is printed as a warning), every page
the issue asks for must be there with working links and images, the pages must load nothing from another host,
search, math and the two explorers must work in the browser with no kernel, and no image may come from the real
Cityscapes pairs.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.util
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from figure_pixels import changed_fraction, png_to_rgb
from playwright.sync_api import Browser, Page

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT))

from tools import course_url, site  # noqa: E402

pytestmark = pytest.mark.browser

NOTEBOOKS = course_url.notebook_paths(PROJECT)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".ico"}
# What default_dataset() prints when it picks the real pairs: no stored output may say it (the notebooks'
# rule: `make notebooks` stores outputs of the synthetic city, PSPNET_DATASET=synthetic).
REAL_PAIRS_ANNOUNCEMENT = "Using the real Cityscapes pairs"
SYNTHETIC_ANNOUNCEMENT = "using the synthetic city"
VIEWPORT = {"width": 1400, "height": 1000}


class _Links(HTMLParser):
    """Every href/src of a page and every id it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value is not None:
                self.targets.append((tag, value))


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text())
    return parser


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`tools/site.py OUT` once (what `make site` runs): the site's folder and everything the build printed."""
    out = tmp_path_factory.mktemp("site") / "site"
    result = subprocess.run(
        [sys.executable, str(PROJECT / "tools" / "site.py"), str(out)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    return out, log


@pytest.fixture(scope="module")
def site_url(built_site: tuple[Path, str]) -> Iterator[str]:
    """The built site served over HTTP on a free local port, as GitHub Pages would serve it."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(built_site[0]))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def offline_page(browser: Browser, site_url: str) -> Iterator[tuple[Page, list[str]]]:
    """A Chromium page that may load only from the local site; requests elsewhere are refused and listed."""
    context = browser.new_context(viewport=VIEWPORT)
    refused: list[str] = []

    def only_local(route) -> None:
        if route.request.url.startswith(site_url) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    yield page, refused
    context.close()


# --- the build ---------------------------------------------------------------------------------------------


def test_the_build_is_clean(built_site) -> None:
    out, log = built_site
    assert not re.search(r"WARNING|ERROR|Traceback", log), log[-5000:]
    assert f"({len(site.site_pages(out))} pages)" in log


def test_the_pages(built_site) -> None:
    """Landing page, the ten notebooks in order with previous/next, assignments, instructors, API reference."""
    out, _ = built_site
    index = (out / "index.html").read_text()
    for text in ("CPU time", "Running on a GPU", "08_ablation_pyramid_pooling"):
        assert text in index, text
    pages = [out / "notebooks" / f"{path.stem}.html" for path in NOTEBOOKS]
    assert len(pages) == 10 and all(page.is_file() for page in pages)
    for before, page, after in zip([out / "index.html", *pages[:-1]], pages, [*pages[1:], None], strict=True):
        text = page.read_text()
        previous = re.search(r'class="left-prev"\s+href="([^"]+)"', text)
        following = re.search(r'class="right-next"\s+href="([^"]+)"', text)
        assert previous and (page.parent / previous.group(1)).resolve() == before.resolve(), page.name
        if after:
            assert following and following.group(1) == after.name, page.name
    assert "How it is graded" in (out / "assignments.html").read_text()
    assert "nbgrader" in (out / "instructors.html").read_text()
    api = (out / "api.html").read_text()
    assert (
        'id="pspnet_lib.layers.PyramidPoolingModule"' in api
        and 'id="pspnet_lib.widgets.DilationExplorer"' in api
    )


def test_nothing_of_the_assignment_sources(built_site) -> None:
    """Solutions and hidden tests stay private: no page carries nbgrader's solution or hidden-test markers."""
    out, _ = built_site
    for page in out.rglob("*"):
        if page.is_file() and page.suffix in {".html", ".txt", ".ipynb", ".js"}:
            text = page.read_text(errors="replace")
            assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, page
    assert (
        not list(out.rglob("*source*/a1_*"))
        and "assignments/source" not in (out / "assignments.html").read_text()
    )


def test_every_internal_link_and_image_resolves(built_site) -> None:
    out, _ = built_site
    pages = site.site_pages(out)
    ids = {page: _parse(page).ids for page in pages}
    checked = 0
    for page in pages:
        for tag, target in _parse(page).targets:
            parts = urlsplit(target)
            if parts.scheme or target.startswith(("//", "mailto:")) or not (parts.path or parts.fragment):
                continue
            resolved = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if resolved.is_dir():
                resolved = resolved / "index.html"
            assert resolved.is_file(), f"{page.relative_to(out)}: <{tag}> {target} -> missing {resolved}"
            if parts.fragment and resolved.suffix == ".html" and tag == "a":
                assert parts.fragment in ids[resolved], f"{page.relative_to(out)}: {target}: no such anchor"
            checked += 1
    assert checked > 500


def test_every_notebook_page_links_colab_kaggle_and_the_download(built_site) -> None:
    out, _ = built_site
    url = course_url.course_url(PROJECT)
    for path in NOTEBOOKS:
        page = (out / "notebooks" / f"{path.stem}.html").read_text()
        colab, kaggle = course_url.open_in_links(url, path.name)
        assert f'href="{colab}"' in page and f'href="{kaggle.replace("&", "&amp;")}"' in page, path.name
        download = out / "_static" / "notebooks" / path.name
        assert f'href="../_static/notebooks/{path.name}"' in page
        assert download.read_bytes() == path.read_bytes()  # the notebook as committed
    page = (out / "notebooks" / "03_pyramid_pooling_module.html").read_text()
    expected = f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/main/notebooks/03_pyramid_pooling_module.ipynb"
    assert f'href="{expected}"' in page


def test_the_links_follow_the_course_address(tmp_path) -> None:
    """The address is read from pyproject.toml at build time: another address gives other links."""
    fork = "https://github.com/some-school/pspnet-fork"
    path = PROJECT / "notebooks" / "00_start_here.ipynb"
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_static" / "notebooks").mkdir(parents=True)
    site.stage_notebook(path, tmp_path, fork)
    staged = nbformat.read(tmp_path / "notebooks" / path.name, as_version=4)
    links = next(cell.source for cell in staged.cells if "pspnet-links" in cell.source)
    assert course_url.open_in_links(fork, path.name)[0] in links
    assert "github/pspnet-course/" not in links


# --- no real pairs -----------------------------------------------------------------------------------------


def _stored_images(path: Path) -> set[str]:
    """sha256 of every image a notebook stores in its outputs."""
    found = set()
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            for mime, data in output.get("data", {}).items():
                if mime.startswith("image/"):
                    raw = data.encode() if mime == "image/svg+xml" else base64.b64decode(data)
                    found.add(hashlib.sha256(raw).hexdigest())
    return found


def _stored_text(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    chunks = [
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    ]
    return "\n".join(chunks)


def _package_images() -> set[str]:
    """sha256 of the images the documentation packages ship (theme icons, Sphinx's own)."""
    found = set()
    for name in ("sphinx", "sphinx_book_theme", "pydata_sphinx_theme", "myst_nb"):
        folder = Path(importlib.util.find_spec(name).origin).parent
        for path in folder.rglob("*"):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                found.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def test_no_image_comes_from_the_real_pairs(built_site) -> None:
    """Every image of the site is (a) an output stored in a notebook that never used the real pairs, (b) an
    explorer frame, drawn by the build on the synthetic city (its frame for the saved control values is
    byte-identical to the notebook's stored snapshot), or (c) an icon shipped by Sphinx or the theme."""
    out, _ = built_site
    stored = set()
    for path in NOTEBOOKS:
        assert REAL_PAIRS_ANNOUNCEMENT not in _stored_text(path), path.name
        stored |= _stored_images(path)
    shipped = _package_images()
    frames_dir = out / site.FRAMES_DIR
    images = [p for p in out.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    frames = [p for p in images if frames_dir in p.parents]
    assert len(frames) == 8 * 4 + 2**6  # 01: dilation 1-8 x layers 1-4; 03: every subset of six bin counts
    for image in images:
        if image in frames:
            continue
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        assert digest in stored or digest in shipped, (
            f"{image.relative_to(out)}: not a stored output or a theme icon"
        )
    for path in (PROJECT / "notebooks" / name for name in site.EXPLORER_SCENES):
        assert SYNTHETIC_ANNOUNCEMENT in _stored_text(path)
        page = (out / "notebooks" / f"{path.stem}.html").read_text()
        shown = re.search(r'<img class="pspnet-figure" src="\.\./([^"]+)"', page).group(1)
        snapshot = next(
            o.data["image/png"]
            for o in site._widget_cell(nbformat.read(path, as_version=4)).outputs
            if "image/png" in o.get("data", {})
        )
        assert (out / shown).read_bytes() == base64.b64decode(snapshot), path.name


# --- in Chromium -------------------------------------------------------------------------------------------


def test_search_finds_dilation_in_notebook_01(offline_page, site_url) -> None:
    page, refused = offline_page
    page.goto(f"{site_url}/search.html?q=dilation")
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=30_000)
    hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    assert any("notebooks/01_dilated_convolutions.html" in href for href in hrefs), hrefs
    assert not refused, refused


def test_an_equation_is_typeset_offline(offline_page, site_url) -> None:
    page, refused = offline_page
    page.goto(f"{site_url}/notebooks/01_dilated_convolutions.html")
    page.locator("mjx-container").first.wait_for(timeout=30_000)
    assert page.locator("mjx-container svg, mjx-container mjx-math").count() > 0
    assert not refused, refused


def _figure(page: Page, explorer) -> bytes:
    figure = explorer.locator("img.pspnet-figure")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
    return figure.screenshot()


def test_moving_the_dilation_slider_changes_the_figure(offline_page, site_url, artifacts_dir) -> None:
    page, refused = offline_page
    page.goto(f"{site_url}/notebooks/01_dilated_convolutions.html")
    explorer = page.locator(".pspnet-static-explorer")
    slider = explorer.locator("input.pspnet-dilation-slider")
    assert slider.input_value() == "2"  # the saved widget state
    before, readout = _figure(page, explorer), explorer.locator(".pspnet-readout").inner_text()
    slider.fill("5")
    page.wait_for_function("() => document.querySelector('img.pspnet-figure').dataset.frame === '5_2'")
    after = _figure(page, explorer)
    assert "dilation 5" in explorer.locator(".pspnet-readout").inner_text() != readout
    assert changed_fraction(png_to_rgb(before), png_to_rgb(after)) > 0.01
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts_dir / "site_01_slider_moved.png"))
    assert not refused, refused


def test_choosing_other_bins_changes_the_figure(offline_page, site_url) -> None:
    page, refused = offline_page
    page.goto(f"{site_url}/notebooks/03_pyramid_pooling_module.html")
    explorer = page.locator(".pspnet-static-explorer")
    control = explorer.locator("select.pspnet-bins-control")
    assert control.evaluate("s => Array.from(s.selectedOptions).map(o => o.value)") == ["1", "2", "3", "6"]
    before = _figure(page, explorer)
    control.select_option(["2", "8"])
    page.wait_for_function("() => document.querySelector('img.pspnet-figure').dataset.frame === '2-8'")
    after = _figure(page, explorer)
    assert "2 level(s)" in explorer.locator(".pspnet-readout").inner_text()
    assert changed_fraction(png_to_rgb(before), png_to_rgb(after)) > 0.01
    assert not refused, refused


def test_the_pages_workflow_publishes_what_make_site_builds() -> None:
    import yaml

    workflow = yaml.safe_load((PROJECT / ".github" / "workflows" / "pages.yml").read_text())
    assert workflow[True]["push"]["branches"] == ["main"]  # YAML reads the key `on` as True
    steps = workflow["jobs"]["build"]["steps"]
    assert any(step.get("run", "").startswith("make site") for step in steps)
    upload = next(step for step in steps if "upload-pages-artifact" in step.get("uses", ""))
    assert upload["with"]["path"] == "build/site"
    assert "site: setup\n\t$(BIN)/python tools/site.py build/site" in (PROJECT / "Makefile").read_text()
