"""Benchmark results: one row per measurement, the Markdown table, and the JSON file with its schema check."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SECTIONS = ("pipeline", "training", "learning", "recipe", "notebooks")
TABLE_COLUMNS = ("section", "measurement", "value", "unit", "detail", "target", "met")
REPORT_KEYS = {
    "schema_version": int,
    "created": str,
    "command": str,
    "machine": dict,
    "options": dict,
    "notes": str,
    "rows": list,
    "unmeasured": list,
}
ROW_KEYS = {
    "section": str,
    "name": str,
    "value": (int, float, type(None)),
    "unit": str,
    "detail": str,
    "target": str,
    "met": (bool, type(None)),
    "extra": dict,
}


@dataclass(frozen=True)
class Row:
    """One measurement; `met` is None when the row has no target, `value` None when it could not be measured."""

    section: str
    name: str
    value: float | None
    unit: str
    detail: str = ""
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Reject an unknown section or a non-finite value, naming it."""
        if self.section not in SECTIONS:
            raise ValueError(f"row {self.name!r}: section must be one of {SECTIONS}, got {self.section!r}")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(f"row {self.name!r}: value must be finite or None, got {self.value!r}")


@dataclass
class Report:
    """A whole benchmark run: when, how it was started, on what machine, and its rows."""

    created: str
    command: str
    machine: dict[str, Any]
    options: dict[str, Any]
    notes: str
    rows: list[Row] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The JSON-ready dictionary written to bench/results/."""
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}


def format_value(value: float | None) -> str:
    """A value for the table: 3 significant digits (no exponent below a million), "-" when missing."""
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_met(met: bool | None) -> str:
    """The met column: yes, **no** (bold), or empty when the row has no target."""
    return "" if met is None else ("yes" if met else "**no**")


def markdown_cell(text: str) -> str:
    """`text` safe inside a Markdown table cell (pipes escaped, no line breaks)."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[Row]) -> str:
    """The rows as a GitHub-flavoured Markdown table, columns `TABLE_COLUMNS`."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"]
    for row in rows:
        cells = (
            row.section,
            row.name,
            format_value(row.value),
            row.unit,
            row.detail,
            row.target,
            format_met(row.met),
        )
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def check_keys(where: str, data: dict[str, Any], expected: dict[str, Any]) -> None:
    """ValueError naming `where` and the key when `data` lacks a key of `expected` or holds the wrong type."""
    for key, kind in expected.items():
        if key not in data:
            raise ValueError(f"{where}: missing key {key!r}")
        # bool is an int in Python: only accept it where bool is expected
        if not isinstance(data[key], kind) or (isinstance(data[key], bool) and bool not in _types(kind)):
            raise ValueError(f"{where}: {key!r} must be {_type_names(kind)}, got {data[key]!r}")


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    """`kind` as a tuple of types."""
    return kind if isinstance(kind, tuple) else (kind,)


def _type_names(kind: type | tuple[type, ...]) -> str:
    """The names of the types in `kind`, e.g. `int or float or NoneType`."""
    return " or ".join(t.__name__ for t in _types(kind))


def validate_report(data: dict[str, Any]) -> None:
    """Raise ValueError naming the first field of a results dictionary that does not follow the schema."""
    if not isinstance(data, dict):
        raise ValueError(f"results must be a JSON object, got {type(data).__name__}")
    check_keys("results", data, REPORT_KEYS)
    if data["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"results: schema_version {data['schema_version']} is not {SCHEMA_VERSION}")
    for index, row in enumerate(data["rows"]):
        if not isinstance(row, dict):
            raise ValueError(f"results rows[{index}] must be an object, got {row!r}")
        check_keys(f"results rows[{index}]", row, ROW_KEYS)
        Row(**row)  # section and finiteness checks


def load_report(path: str | Path) -> Report:
    """A results file read back, after its schema check (ValueError naming the file when it is wrong)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        validate_report(data)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a benchmark results file: {error}") from error
    fields = {key: value for key, value in data.items() if key not in ("schema_version", "rows")}
    return Report(**fields, rows=[Row(**row) for row in data["rows"]])


def write_report(report: Report, path: str | Path) -> Path:
    """Write the report as indented JSON via a temporary file and `os.replace` (a kill leaves no half file)."""
    path = Path(path)
    data = report.as_json()
    validate_report(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".json", dir=path.parent)
    with os.fdopen(handle, "w") as file:
        json.dump(data, file, indent=1)
        file.write("\n")
    os.chmod(temporary, default_file_mode())  # mkstemp creates 0600; results are meant to be read and shared
    os.replace(temporary, path)
    return path


def default_file_mode() -> int:
    """Permissions a new file gets under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
