"""`check_dataset` and the `python -m pspnet_lib data ...` commands: reports, exit codes, one-line errors."""

from __future__ import annotations

import shutil

import kagglehub
import numpy as np
import requests

from pspnet_lib.cli import main
from pspnet_lib.data import check_dataset, list_pairs, locate, synthetic_label_ids
from pspnet_lib.data.synthetic import read_marker


def test_check_reports_a_healthy_dataset(synthetic_pairs) -> None:
    report = check_dataset(synthetic_pairs)
    assert report.ok
    train, val = report.splits
    assert (train.count, val.count) == (8, 4)
    assert dict(train.sizes) == {(512, 256): 8}
    labelled = [(synthetic_label_ids(synthetic_pairs, "val", i) != 255).mean() for i in range(1, 5)]
    assert abs(val.labelled_share - sum(labelled) / 4) < 0.03
    assert "OK" in str(report)


def test_check_names_every_bad_file_and_is_not_ok(synthetic_pairs, tmp_path) -> None:
    root = shutil.copytree(synthetic_pairs, tmp_path / "copy")
    (root / "val" / "2.jpg").write_text("oops")
    (root / "train" / "5.jpg").write_bytes((root / "train" / "5.jpg").read_bytes()[:4000])
    report = check_dataset(root)
    assert not report.ok
    text = str(report)
    assert str(root / "val" / "2.jpg") in text and str(root / "train" / "5.jpg") in text
    assert "NOT USABLE" in text


def test_check_of_a_missing_folder_is_not_ok(tmp_path) -> None:
    report = check_dataset(tmp_path / "missing")
    assert not report.ok and "does not exist" in str(report)


def test_check_flags_labels_that_are_not_cityscapes_colours(synthetic_pairs, tmp_path) -> None:
    from PIL import Image

    root = shutil.copytree(synthetic_pairs, tmp_path / "copy")
    for path in list_pairs(root / "val"):
        Image.new("RGB", (512, 256), (255, 255, 255)).save(path, format="JPEG")
    report = check_dataset(root)
    assert not report.ok and "colour label maps" in str(report)


def test_cli_toy_then_check(tmp_path, capsys) -> None:
    out = tmp_path / "toy"
    assert main(["data", "toy", "--out", str(out), "--train", "2", "--val", "1", "--seed", "4"]) == 0
    assert [p.name for p in list_pairs(out / "train")] == ["1.jpg", "2.jpg"]
    assert "Wrote 2 train + 1 val" in capsys.readouterr().out
    assert main(["data", "check", str(out)]) == 0
    assert "OK: usable." in capsys.readouterr().out


def test_cli_check_fails_on_a_bad_dataset(synthetic_pairs, tmp_path, capsys) -> None:
    root = shutil.copytree(synthetic_pairs, tmp_path / "copy")
    (root / "train" / "1.jpg").write_text("oops")
    assert main(["data", "check", str(root)]) == 1
    assert str(root / "train" / "1.jpg") in capsys.readouterr().out


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys) -> None:
    assert main(["data", "toy", "--out", str(tmp_path), "--train", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert main(["data", "toy", "--out", str(tmp_path), "--pedestrian-share", "1.5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pedestrian_share" in err and err.count("\n") == 1


def test_cli_toy_writes_the_old_town_variant(tmp_path, capsys) -> None:
    out = tmp_path / "old"
    assert main(["data", "toy", "--out", str(out), "--train", "1", "--val", "2", "--pedestrian-share", "1"]) == 0
    assert read_marker(out)["pedestrian_share"] == 1.0
    assert not any((synthetic_label_ids(out, "val", index) == 0).any() for index in (1, 2))  # no road at all


def test_cli_kaggle_offline_exits_non_zero_with_a_clear_message(monkeypatch, capsys) -> None:
    def offline(handle, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'api.kaggle.com'")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    assert main(["data", "kaggle", "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download") and err.count("\n") == 1


def test_cli_find(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("PSPNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(locate.KAGGLEHUB_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(locate, "KAGGLE_INPUT_DIR", tmp_path / "input")
    monkeypatch.delenv(locate.PAIRS_DIR_ENV, raising=False)
    assert main(["data", "find"]) == 1
    assert "not found" in capsys.readouterr().out
    for split in ("train", "val"):
        (tmp_path / "data" / "cityscapes_data" / split).mkdir(parents=True)
    assert main(["data", "find"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "data" / "cityscapes_data")


def test_check_names_the_one_file_whose_labels_match_no_palette_colour(synthetic_pairs, tmp_path) -> None:
    from PIL import Image

    root = shutil.copytree(synthetic_pairs, tmp_path / "copy")
    target = root / "train" / "2.jpg"
    with Image.open(target) as pair:
        pixels = np.asarray(pair.convert("RGB")).copy()
    pixels[:, 256:] = (255, 255, 255)  # white: no Cityscapes colour
    Image.fromarray(pixels).save(target, quality=95)
    report = check_dataset(root)
    assert not report.ok
    train = report.splits[0]
    assert list(train.bad_files) == [target] and "no Cityscapes palette colour" in train.bad_files[target]
    assert "2.jpg" in str(report)


def test_check_reports_png_pairs_it_does_not_read(synthetic_pairs, tmp_path) -> None:
    from PIL import Image

    root = shutil.copytree(synthetic_pairs, tmp_path / "copy")
    with Image.open(root / "val" / "1.jpg") as pair:
        pair.save(root / "val" / "5.png")
    report = check_dataset(root)
    assert not report.ok and "5.png" in str(report) and "must be .jpg" in str(report)
