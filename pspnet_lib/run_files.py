"""Files of a run folder, written so that a kill never leaves half of one: atomic writes and history.csv.

Everything a killed process could leave half-written goes to a temporary file in the same folder first and is
then moved over the old one with `os.replace`, which is atomic on POSIX and Windows. Standard library only, so
plotting a history (`viz`) does not load TensorFlow.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _default_file_mode() -> int:
    """Permissions a newly created file gets under the current umask (mkstemp itself uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """Call `write(temporary_path)` on a fresh file beside `path`, then move it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, _default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that a kill leaves either the old or the new file, never half of one."""
    atomic_write(path, lambda temporary: temporary.write_text(text))


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of a history CSV written by `training.CsvHistory`, `epoch` as an int (empty when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return [
            {key: int(float(value)) if key == "epoch" else float(value) for key, value in row.items()}
            for row in csv.DictReader(file)
        ]


def history_csv(rows: list[dict[str, float]]) -> str:
    """CSV text of history rows, `epoch` first, other columns sorted."""
    columns = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def check_writable_folder(folder: str | Path, option: str, markers: tuple[str, ...], what: str) -> Path:
    """`folder` when a command may write into it: new, empty, or holding one of `markers` (files that command wrote;
    none: only a new or empty folder).

    Anything else (a file, a folder holding the user's own files, a parent of the checkout) is refused with
    ValueError naming `option` and the folder as the user typed it: the command never overwrites or deletes what it
    did not create. `what` says what the folder is for, e.g. "the overlays". Nothing is created here.
    """
    shown = str(folder)
    if not shown.strip():
        raise ValueError(f"{option} is empty: expected a folder for {what}")
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {shown} is a file: expected a folder for {what}")
    if path.is_dir() and any(path.iterdir()) and not any((path / marker).exists() for marker in markers):
        raise ValueError(
            f"{option} {shown} already holds files this command did not write: choose a new or empty folder"
        )
    existing = next((parent for parent in (path, *path.absolute().parents) if parent.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ValueError(f"{option} {shown}: cannot create or write this folder ({existing} is not a writable folder)")
    return path


def claim_folder(folder: str | Path, option: str, markers: tuple[str, ...], what: str) -> Path:
    """Check `folder` as `check_writable_folder` does, create it and write its marker `markers[0]` (if missing)."""
    path = check_writable_folder(folder, option, markers, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{option} {folder}: cannot create this folder ({error.strerror or error})") from error
    marker = path / markers[0]
    if not marker.exists():
        marker.write_text(f"Written by pspnet-course: this folder holds {what}; the course may overwrite its files.\n")
    return path
