"""What the course measured on the real Cityscapes pairs, shipped as small JSON files beside this module.

Numbers only, never images: the dataset's terms let results measured on it be shared, not its pictures. The
notebooks and the README quote these files where a student has no real pairs ("the same code on the real pairs
gave ..."). Each file records the command that re-creates it (`command`) and the machine it ran on. Trained models
ship here too (`models.json` lists them with their SHA-256, checked on every load: `resolve_model`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
MODELS = "models.json"  # in FOLDER: the shipped models, name -> {"file": ..., "sha256": ..., "image_size": ..., ...}


def names() -> list[str]:
    """The reference results shipped with the library."""
    return sorted(path.stem for path in FOLDER.glob("*.json") if path.name != MODELS)


def load(name: str) -> dict:
    """The reference results called `name` (e.g. "cpu_recipe"); ValueError naming the ones there are."""
    path = FOLDER / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"no reference results called {name!r}; the library ships {', '.join(names()) or 'none'}")
    return json.loads(path.read_text())


# --- trained models shipped with the library -----------------------------------------------------------------


def shipped_models() -> dict[str, dict]:
    """The trained models the library ships, by name (empty when it ships none)."""
    path = FOLDER / MODELS
    return json.loads(path.read_text()) if path.is_file() else {}


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(model: str | Path) -> Path:
    """The file `model` names: a shipped model's name gives its file once its SHA-256 checks out (ValueError saying
    what is wrong otherwise); anything else is taken as a path."""
    models = shipped_models()
    if str(model) not in models:
        return Path(model)
    entry = models[str(model)]
    path = FOLDER / entry["file"]
    if not path.is_file():
        raise ValueError(f"shipped model {model!r}: {path} is missing: reinstall pspnet-course")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise ValueError(
            f"shipped model {model!r}: {path} has SHA-256 {digest[:16]}..., expected {entry['sha256'][:16]}...: the file "
            "is damaged or was changed; reinstall pspnet-course"
        )
    return path
