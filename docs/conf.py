"""Sphinx configuration of the course site. `make site` stages the pages (tools/site.py) and builds them.

Everything a page needs comes with the build: MathJax from the sphinx-mathjax-offline wheel, the theme's
fonts and search index from sphinx-book-theme, the explorers' frames from tools/site.py. No page loads
anything from another host, and the notebooks are rendered from their stored outputs, never executed.
"""

import json
from pathlib import Path

from pspnet_lib.config import import_tensorflow_quietly

import_tensorflow_quietly()  # autodoc imports the library, which imports TensorFlow: no start-up notices

STAGE = Path(__file__).resolve().parent
SETTINGS = json.loads((STAGE / "site_settings.json").read_text())  # written by tools/site.py

project = "pspnet-course"
author = "the pspnet-course authors"
copyright = "the pspnet-course authors (MIT licence)"
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx-mathjax-offline",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "site_settings.json"]
root_doc = "index"

# Notebooks as committed: stored outputs only, no kernel.
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no require.js or widget manager from a CDN: the explorers are static (explorer.js)
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}

html_theme = "sphinx_book_theme"
html_title = "pspnet-course"
html_static_path = ["_static"]
html_css_files = ["explorer.css"]
html_js_files = ["explorer.js"]
html_theme_options = {
    "repository_url": SETTINGS["course_url"],
    "use_repository_button": True,
    "use_download_button": True,
    "show_prev_next": True,
    "navigation_with_keys": False,
}
html_copy_source = True
html_last_updated_fmt = None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def plain_docstring_to_rst(lines: list[str]) -> list[str]:
    """The library's docstrings are plain text: make their indented blocks literal blocks and give their
    lists the blank line reStructuredText wants before them (in place, as autodoc expects)."""
    result: list[str] = []
    block_indent = None  # indentation of the literal block being copied, if any
    for line in lines:
        previous = next((p for p in reversed(result) if p.strip()), "")
        is_item = line.lstrip().startswith("- ")
        if block_indent is not None:
            if not line.strip() or _indent(line) >= block_indent:
                result.append(line)
                continue
            block_indent = None
            if result and result[-1].strip():
                result.append("")
        in_list = previous.lstrip().startswith("- ") or (
            result and _indent(previous) > 0 and not result[-1] == ""
        )
        if line.strip() and previous and _indent(line) > _indent(previous) and not in_list:
            if result and result[-1].strip():
                result[-1] = result[-1] + ("::" if not result[-1].endswith("::") else "")
                result.append("")
            elif not previous.endswith("::"):
                index = max(i for i, p in enumerate(result) if p.strip())
                result[index] = result[index] + "::"
            block_indent = _indent(line)
        elif (
            is_item
            and result
            and result[-1].strip()
            and not previous.lstrip().startswith("- ")
            and _indent(line) <= _indent(previous)
        ):
            result.append("")
        result.append(line)
    lines[:] = result
    return lines


def setup(app):
    app.connect(
        "autodoc-process-docstring",
        lambda app, what, name, obj, options, lines: plain_docstring_to_rst(lines),
    )
