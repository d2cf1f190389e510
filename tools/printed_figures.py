"""Printed-figure marks: measured figures in the notebooks' prose, checked against (or updated from) the outputs.

A figure in markdown written as `16.6<!-- printed: article model (RGB + MSE) -->` is the first number after
that text in the notebook's stored outputs (`#N` after the key picks the N-th). tests/test_printed_figures.py
fails on any mark whose figure differs from the outputs. After `make notebooks`, run

    python -m tools.printed_figures --update notebooks/*.ipynb

to rewrite every stale figure from the outputs. A unit written with a mark (before its comment or right after
it: `69<!-- printed: T4 #3 --> s`) must be the unit printed after the number ("hours" and "h" are one unit);
a changed unit is reported, not rewritten. It prints each change with its sentence: reread each one,
since a sentence around a changed number may no longer be true ("higher", "twice", ...).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

# A number as prose and outputs spell it: optional sign, digits with thousands commas, optional decimals.
NUMBER = r"[+\-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
MARK = re.compile(rf"({NUMBER})(\s*(?:%|x|s|ms)?)?<!--\s*printed:\s*(.+?)(?:\s+#(\d+))?\s*-->")
PRINTED_NUMBER = re.compile(r"(?<![\w.])" + NUMBER + r"(?![\d,]\d)")
# A unit right after a number, in outputs and in prose (where it may follow the mark's comment): a figure in the
# right digits but the wrong unit ("69 min" for a printed "69 s") is as wrong as a stale one.
UNITS = {
    "ms": "ms", "s": "s", "second": "s", "seconds": "s", "min": "min", "minute": "min", "minutes": "min",
    "h": "h", "hour": "h", "hours": "h", "day": "days", "days": "days", "%": "%", "x": "x",
}
UNIT = re.compile(r"\s*(" + "|".join(sorted(map(re.escape, UNITS), key=len, reverse=True)) + r")(?![\w])")


@dataclass(frozen=True)
class Mark:
    """One printed-figure mark: the figure as written in prose, the output text it follows, which number."""

    figure: str
    key: str
    index: int


def marks(markdown: str) -> list[Mark]:
    """Every printed-figure mark in a markdown text."""
    return [mark_of(m) for m in MARK.finditer(markdown)]


def mark_of(match: re.Match) -> Mark:
    """The mark a `MARK` match spells."""
    return Mark(match.group(1), match.group(3).strip(), int(match.group(4) or 1))


def output_lines(notebook: nbformat.NotebookNode) -> list[str]:
    """Every line of text the code cells printed or displayed (stdout and text/plain), in cell order."""
    lines: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                lines.extend(output.get("text", "").splitlines())
            elif "data" in output and "text/plain" in output["data"] and "image/png" not in output["data"]:
                lines.extend(output["data"]["text/plain"].splitlines())
    return lines


def printed_value(lines: list[str], key: str, index: int) -> tuple[str | None, str | None]:
    """(the `index`-th number after `key` on the first line with that many, that line).

    (None, the first line containing `key`) when no line has that many numbers after it; (None, None) when
    no line contains `key` at all.
    """
    number, _, line = printed_figure(lines, key, index)
    return number, line


def printed_figure(lines: list[str], key: str, index: int) -> tuple[str | None, str | None, str | None]:
    """`printed_value` with the unit printed right after the number (`UNITS`' spelling, None if none)."""
    # A key ending in a letter or digit must end there: "bins 1" is not found in "bins 1-2-3-6".
    pattern = re.compile(re.escape(key) + (r"(?![\w-])" if key[-1].isalnum() else ""))
    first = None
    for line in lines:
        found = pattern.search(line)
        if found:
            first = first or line
            numbers = list(PRINTED_NUMBER.finditer(line, found.end()))
            if len(numbers) >= index:
                number = numbers[index - 1]
                unit = UNIT.match(line, number.end())
                return number.group(0), UNITS[unit.group(1)] if unit else None, line
    return None, None, first


def prose_unit(source: str, mark: re.Match) -> re.Match | None:
    """The unit written with a mark: before its comment ("40.8 %<!-- ... -->") or right after it."""
    return UNIT.fullmatch(mark.group(2)) if mark.group(2) and mark.group(2).strip() else UNIT.match(source, mark.end())


def stale_figures(notebook: nbformat.NotebookNode) -> list[str]:
    """A sentence for every mark whose figure differs from (or is missing in) the stored outputs."""
    lines = output_lines(notebook)
    problems = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for found in MARK.finditer(cell.source):
            mark = mark_of(found)
            value, unit, line = printed_figure(lines, mark.key, mark.index)
            written = prose_unit(cell.source, found)
            if line is None:
                problems.append(f"{mark.figure!r}: no stored output line contains {mark.key!r}")
            elif value != mark.figure:
                problems.append(
                    f"{mark.figure!r} marked as number #{mark.index} after {mark.key!r}, but the output now "
                    f"says {value!r}: {line.strip()!r}"
                )
            elif written and unit and UNITS[written.group(1)] != unit:
                problems.append(
                    f"{mark.figure} {written.group(1)!r} marked after {mark.key!r}, but the output prints it in "
                    f"{unit!r}: {line.strip()!r}"
                )
    return problems


def update_figures(notebook: nbformat.NotebookNode) -> list[str]:
    """Rewrite every stale marked figure in `notebook`'s markdown to the printed value; one line per change."""
    lines = output_lines(notebook)
    changes: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue

        def current(match: re.Match, source: str = cell.source) -> str:
            mark = mark_of(match)
            key, index = mark.key, mark.index
            value, _ = printed_value(lines, key, index)
            if value is None or value == match.group(1):
                return match.group(0)
            start = max(0, match.start() - 60)
            changes.append(f"{match.group(1)} -> {value} [{key} #{index}]: ...{source[start:match.start()]!s}")
            return value + match.group(0)[len(match.group(1)):]

        cell.source = MARK.sub(current, cell.source)
    return changes


def main(argv: list[str] | None = None) -> int:
    """Check (default) or `--update` the printed-figure marks of the notebooks given."""
    parser = argparse.ArgumentParser(prog="python -m tools.printed_figures", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebook files (.ipynb)")
    parser.add_argument("--update", action="store_true", help="rewrite stale figures from the stored outputs")
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        if not path.is_file():
            print(f"error: {path} is not a file (expected a notebook .ipynb)", file=sys.stderr)
            return 2
        notebook = nbformat.read(path, as_version=4)
        if args.update:
            for change in update_figures(notebook):
                print(f"{path.name}: {change}")
            nbformat.write(notebook, path)
        problems = stale_figures(notebook)
        for problem in problems:
            print(f"{path.name}: {problem}")
        status = status or int(bool(problems))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
