"""What the library ships from the real pairs: results files, and trained models whose SHA-256 is checked on load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pspnet_lib import inference, reference
from pspnet_lib.cli import main


def test_the_shipped_results_load_by_name_and_an_unknown_name_lists_them():
    assert "cpu_recipe" in reference.names()
    assert reference.load("cpu_recipe")["labels"] == "standard"
    with pytest.raises(ValueError, match=r"no reference results called 'cpu_recipes'; the library ships .*cpu_recipe"):
        reference.load("cpu_recipes")


@pytest.fixture
def shipped(tiny_model_file, tmp_path, monkeypatch) -> Path:
    """A reference folder shipping `tiny_model_file` as "tiny-city" (with its SHA-256); returns the shipped file."""
    folder = tmp_path / "reference"
    folder.mkdir()
    shipped_file = folder / "tiny-city.keras"
    shutil.copy(tiny_model_file, shipped_file)
    entry = {"file": shipped_file.name, "sha256": reference.sha256_of(shipped_file), "image_size": 64}
    (folder / "models.json").write_text(json.dumps({"tiny-city": entry}))
    monkeypatch.setattr(reference, "FOLDER", folder)
    return shipped_file


def test_a_shipped_model_loads_by_name_in_the_library_and_on_the_command_line(shipped, tmp_path, capsys):
    assert list(reference.shipped_models()) == ["tiny-city"]
    assert reference.resolve_model("tiny-city") == shipped
    assert reference.resolve_model(str(shipped)) == shipped  # a path stays a path
    model = inference.load_model("tiny-city")
    assert model.output_shape[-1] == 19
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photo)
    assert main(["predict", "--model", "tiny-city", str(photo), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "photo_overlay.png").is_file()


def test_a_damaged_shipped_model_is_one_clear_line_naming_its_hash(shipped, synthetic_pairs, tmp_path, capsys):
    content = bytearray(shipped.read_bytes())
    content[len(content) // 2] ^= 0xFF  # one flipped byte: still a zip's length, no longer the shipped file
    shipped.write_bytes(bytes(content))
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photo)
    with pytest.raises(ValueError, match=r"shipped model 'tiny-city': .* has SHA-256 .* expected .* reinstall pspnet-course"):
        inference.load_model("tiny-city")
    for command in (["evaluate", "--model", "tiny-city", "--data", str(synthetic_pairs)],
                    ["predict", "--model", "tiny-city", str(photo), "--out", str(tmp_path / "out")]):
        assert main(command) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "SHA-256" in errors[0] and "reinstall pspnet-course" in errors[0]
    assert not (tmp_path / "out").exists()
    shipped.unlink()
    with pytest.raises(ValueError, match="tiny-city.keras is missing: reinstall pspnet-course"):
        reference.resolve_model("tiny-city")


def test_without_a_shipped_model_the_library_ships_none_and_names_are_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(reference, "FOLDER", tmp_path)  # no models.json there
    assert reference.shipped_models() == {}
    assert reference.resolve_model("pspnet-small-cityscapes") == Path("pspnet-small-cityscapes")
