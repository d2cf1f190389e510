"""What the course measured on the real Cityscapes pairs, shipped as small JSON files beside this module.

Numbers only, never images: the dataset's terms let results measured on it be shared, not its pictures. The
notebooks and the README quote these files where a student has no real pairs ("the same code on the real pairs
gave ..."). Each file records the command that re-creates it (`command`) and the machine it ran on.
"""

from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def names() -> list[str]:
    """The reference results shipped with the library."""
    return sorted(path.stem for path in FOLDER.glob("*.json"))


def load(name: str) -> dict:
    """The reference results called `name` (e.g. "cpu_recipe"); ValueError naming the ones there are."""
    path = FOLDER / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"no reference results called {name!r}; the library ships {', '.join(names()) or 'none'}")
    return json.loads(path.read_text())
