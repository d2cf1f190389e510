"""Bad input, as a careless student or a hurried instructor types it: one line naming the input, a non-zero exit
status, and not one user file changed. Every command that writes is tried on a folder holding a user's file and
on a parent of a checkout (issue 36). Commands run in-process (`main(argv)`) except `make`."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pspnet_lib.cli import main

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "assignments"
A1 = "a1_dilated_convolutions"
TINY = ["--backbone", "small", "--image-size", "64", "--batch-size", "4", "--quiet", "--no-tensorboard"]


def _load_course_module():
    """assignments/course.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("assignments_course", COURSE / "course.py")
    module = sys.modules.get(spec.name)  # the module test_assignments loaded, when it ran first
    if module is not None:
        return module
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


course = _load_course_module()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) and its bytes."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def one_line(stderr: str, *fragments: str) -> str:
    """The only line on stderr, which holds every fragment (and no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A folder of the user's: numbered pair JPEGs under the Kaggle names (train/1.jpg ...) and a notes file."""
    folder = tmp_path / "mine"
    for split in ("train", "val"):
        (folder / split).mkdir(parents=True)
        for index in range(1, 7):
            (folder / split / f"{index}.jpg").write_bytes(f"user pair {split} {index}".encode())
    (folder / "notes.txt").write_text("my notes")
    return folder


@pytest.fixture
def home(tmp_path) -> Path:
    """A home folder holding a checkout (with .git) and a sibling file: the parent of a checkout."""
    home = tmp_path / "home"
    (home / "pspnet-course" / ".git").mkdir(parents=True)
    (home / "pspnet-course" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (home / "pspnet-course" / "README.md").write_text("# the checkout")
    (home / "thesis.tex").write_text("a sibling file")
    return home


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photos" / "street.png"
    path.parent.mkdir()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(path)
    return path



# --- every writing command: a folder of the user's, a parent of a checkout ----------------------------------


def test_toy_writer_refuses_a_folder_of_the_user_s_and_a_parent_of_a_checkout(user_folder, home, tmp_path, capsys):
    for folder in (user_folder, home):
        before = snapshot(folder)
        assert main(["data", "toy", "--out", str(folder), "--train", "2", "--val", "1"]) == 1
        one_line(capsys.readouterr().err, f"--out {folder} already holds files", "new or empty folder")
        assert snapshot(folder) == before
    notes = user_folder / "notes.txt"
    assert main(["data", "toy", "--out", str(notes)]) == 1  # was `[Errno 20] Not a directory`
    one_line(capsys.readouterr().err, f"--out {notes} is a file")
    assert notes.read_text() == "my notes"
    # A folder it wrote before it may write again: tests/test_data_synthetic.py (fewer pairs on a re-run).


def test_kaggle_download_refuses_a_folder_of_the_user_s(user_folder, home, capsys):
    for folder in (user_folder, home):
        before = snapshot(folder)
        assert main(["data", "kaggle", "--out", str(folder), "--timeout", "1"]) == 1
        one_line(capsys.readouterr().err, f"--out {folder} already holds files")
        assert snapshot(folder) == before


def test_train_refuses_a_folder_of_the_user_s_a_parent_of_a_checkout_and_an_empty_out(
    synthetic_pairs, user_folder, home, capsys
):
    for folder in (user_folder, home):
        before = snapshot(folder)
        assert main(["train", "--data", str(synthetic_pairs), "--out", str(folder), *TINY]) == 1
        one_line(capsys.readouterr().err, f"--out {folder} already holds files")
        assert snapshot(folder) == before
    assert main(["train", "--data", str(synthetic_pairs), "--out", "", *TINY]) == 1  # was: trained into ./
    one_line(capsys.readouterr().err, "--out is empty")


def test_predict_refuses_a_folder_of_the_user_s_and_a_parent_of_a_checkout(user_folder, home, photo, tmp_path, capsys):
    for folder in (user_folder, home):
        before = snapshot(folder)
        assert main(["predict", "--model", str(tmp_path / "m.keras"), str(photo), "--out", str(folder)]) == 1
        one_line(capsys.readouterr().err, f"--out {folder} already holds files")
        assert snapshot(folder) == before


def _fake_checkout(folder: Path) -> Path:
    """The files and folders `kit` copies, tiny, plus a .git and a user's file: a checkout to point --output at."""
    for name in course.KIT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    for name in course.KIT_FOLDERS:
        (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / "assignments" / "source" / A1).mkdir(parents=True)
    (folder / "assignments" / "source" / A1 / f"{A1}.ipynb").write_text("{}")
    (folder / "assignments" / "release" / A1).mkdir(parents=True)
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return folder


def test_kit_refuses_a_folder_of_the_user_s_the_checkout_s_parents_a_file_and_inside_the_project(
    user_folder, tmp_path, capsys
):
    home = tmp_path / "home"
    checkout = _fake_checkout(home / "course")
    (home / "thesis.tex").write_text("a sibling file")
    before = snapshot(home)
    for output in (home, tmp_path, checkout):  # was: rmtree of the whole checkout, .git included
        with pytest.raises(ValueError, match="holds the project itself"):
            course.student_kit(output, project_dir=checkout, names=[A1])
    assert snapshot(home) == before
    before = snapshot(user_folder)
    assert course.main(["kit", "--output", str(user_folder), A1]) == 1  # was: emptied it
    one_line(capsys.readouterr().err, f"--output {user_folder} already holds files", "new or empty folder")
    assert snapshot(user_folder) == before
    notes = user_folder / "notes.txt"
    assert course.main(["kit", "--output", str(notes), A1]) == 1
    one_line(capsys.readouterr().err, f"--output {notes} is a file")
    inside = ROOT / "notebooks" / "kit"
    assert course.main(["kit", "--output", str(inside), A1]) == 1
    one_line(capsys.readouterr().err, "inside the project but not under dist/")
    assert not inside.exists() and snapshot(user_folder) == before


def test_kit_replaces_its_own_folder_but_not_a_zip_of_the_user_s(tmp_path, capsys):
    checkout = _fake_checkout(tmp_path / "course")
    kit = course.student_kit(tmp_path / "kit", project_dir=checkout, names=[A1])
    (kit / "stale.txt").write_text("left by an older kit")
    assert course.student_kit(tmp_path / "kit", project_dir=checkout, names=[A1]) == kit  # its own: replaced
    assert not (kit / "stale.txt").exists() and (kit / "README.md").is_file()
    (tmp_path / "other.zip").write_bytes(b"the user's zip")
    with pytest.raises(ValueError, match=r"other\.zip already exists"):
        course.student_kit(tmp_path / "other", project_dir=checkout, names=[A1])
    assert (tmp_path / "other.zip").read_bytes() == b"the user's zip" and not (tmp_path / "other").exists()


# --- train: resuming and the run folder ------------------------------------------------------------------


def _interrupted_run(
    folder: Path, root: Path, saved: dict, weights: dict[str, bytes] | None = None, epochs: int = 1
) -> Path:
    """A run folder as a killed `train` leaves it: config.json (the TINY command's, but for the `saved` recipe
    settings) and backup/ with Keras' metadata and weights."""
    from pspnet_lib.training import configure
    from pspnet_lib.training.inputs import with_validation_count

    (folder / "backup").mkdir(parents=True)
    config = with_validation_count(configure(folder, root, "cpu", backbone="small", image_size=64, batch_size=4, epochs=2), root)
    config_json = config.as_dict()
    config_json["recipe"].update(saved)
    (folder / "config.json").write_text(json.dumps(config_json))
    (folder / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": epochs}))
    hdf5 = b"\x89HDF\r\n\x1a\n" + bytes(100)
    for name, content in (weights if weights is not None else {"latest.weights.h5": hdf5}).items():
        (folder / "backup" / name).write_bytes(content)
    return folder


@pytest.mark.parametrize(
    ("saved", "args", "fragment"),
    [({"batch_size": 8}, [], "different batch_size (batch_size=8)"), ({"lr": 0.5}, ["--lr", "0.01"], "different lr (lr=0.5)")],
)
def test_resuming_with_another_batch_size_or_learning_rate_is_refused(synthetic_pairs, tmp_path, capsys, saved, args, fragment):
    run = _interrupted_run(tmp_path / "run", synthetic_pairs, saved)
    before = snapshot(run)
    assert main(["train", "--data", str(synthetic_pairs), "--out", str(run), *TINY, *args]) == 1
    one_line(capsys.readouterr().err, str(run), fragment, "same settings")
    assert snapshot(run) == before  # config.json still describes the first epochs


@pytest.mark.parametrize(
    ("weights", "fragments"),
    [
        ({}, ["1 epoch(s) whose weights are gone", "latest.weights.h5 is missing", "untrained weights"]),
        ({"latest.weights.h5": b"garbage", "latest.weights.h5.bkp": b"more garbage"},
         ["damaged", "latest.weights.h5 and", "latest.weights.h5.bkp are not HDF5 files"]),
    ],
    ids=["weights-deleted", "both-copies-corrupt"],
)
def test_resuming_without_readable_backup_weights_says_so(synthetic_pairs, tmp_path, capsys, weights, fragments):
    run = _interrupted_run(tmp_path / "run", synthetic_pairs, {"batch_size": 4}, weights)
    before = snapshot(run)
    assert main(["train", "--data", str(synthetic_pairs), "--out", str(run), *TINY]) == 1
    one_line(capsys.readouterr().err, *fragments, "start over")
    assert snapshot(run) == before


def test_resuming_a_run_saved_by_an_older_version_is_refused_not_overwritten(synthetic_pairs, tmp_path, capsys):
    run = _interrupted_run(tmp_path / "run", synthetic_pairs, {})
    older = {"out": str(run), "data": str(synthetic_pairs), "recipe": "cpu", "model": "pspnet", "backbone": "small"}
    (run / "config.json").write_text(json.dumps(older))  # before recipes were saved whole
    before = snapshot(run)
    assert main(["train", "--data", str(synthetic_pairs), "--out", str(run), *TINY]) == 1
    one_line(capsys.readouterr().err, str(run), "older pspnet_lib", "'cpu'", "choose another --out")
    assert snapshot(run) == before


# --- evaluate and predict ------------------------------------------------------------------------------------


def test_evaluate_image_size_out_of_range_names_the_flag(synthetic_pairs, tmp_path, capsys):
    for size in ("0", "7", "100000"):  # 0 meant "the run's size"; 7 blamed the images
        assert main(["evaluate", "--model", str(tmp_path / "m.keras"), "--data", str(synthetic_pairs),
                     "--image-size", size]) == 1
        one_line(capsys.readouterr().err, "--image-size must be between 32 and 2048", f"got {size}")


def test_evaluate_on_labels_in_unknown_colours_is_refused(synthetic_pairs, tmp_path, capsys):
    root = shutil.copytree(synthetic_pairs, tmp_path / "unlabelled")
    for path in (root / "val").glob("*.jpg"):
        with Image.open(path) as pair:
            pixels = np.asarray(pair.convert("RGB")).copy()
        pixels[:, pixels.shape[0]:] = (200, 100, 250)  # a colour of no Cityscapes class
        Image.fromarray(pixels).save(path, quality=95)
    before = snapshot(root)
    assert main(["evaluate", "--model", str(tmp_path / "m.keras"), "--data", str(root)]) == 1  # was: exit 0, nulls
    one_line(capsys.readouterr().err, str(root / "val"), "decode to a class")
    assert snapshot(root) == before


def test_predict_refuses_two_images_that_would_share_one_overlay(tmp_path, capsys):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / split / "1.jpg")
    out = tmp_path / "out"
    first, second = str(tmp_path / "train" / "1.jpg"), str(tmp_path / "val" / "1.jpg")
    assert main(["predict", "--model", str(tmp_path / "m.keras"), first, second, "--out", str(out)]) == 1
    one_line(capsys.readouterr().err, first, second, "1_overlay.png", "separate --out folders")
    assert not out.exists()


def test_predict_takes_a_run_folder_and_shrinks_a_huge_photo(tiny_model_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_model_file, run / "model.keras")
    wide = tmp_path / "wide.png"
    Image.fromarray(np.full((64, 4096, 3), 90, np.uint8)).save(wide)  # stands for a 12000x9000 photo
    out = tmp_path / "out"
    assert main(["predict", "--model", str(run), str(wide), "--out", str(out)]) == 0
    one_line(capsys.readouterr().err, "wide.png: 4096x64 pixels is more than 2048 a side", "at 2048x32")
    assert Image.open(out / "wide_overlay.png").size == (2048, 32)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    assert main(["predict", "--model", str(unfinished), str(wide), "--out", str(out)]) == 1
    one_line(capsys.readouterr().err, f"--model {unfinished} is a folder without model.keras", "give a .keras file")


# --- the data tools and the environment -----------------------------------------------------------------------


def test_data_check_sample_below_one_and_an_unknown_fast_mode(synthetic_pairs, monkeypatch, capsys):
    assert main(["data", "check", str(synthetic_pairs), "--sample", "-1"]) == 1  # was NumPy's text
    one_line(capsys.readouterr().err, "--sample must be a number of files >= 1, got -1")
    monkeypatch.setenv("PSPNET_FAST", "maybe")  # was: quietly off
    assert main(["data", "check", str(synthetic_pairs)]) == 2
    one_line(capsys.readouterr().err, "PSPNET_FAST='maybe'", "expected one of 1, true, yes, on")


def test_paths_in_messages_are_printed_as_typed(user_folder, monkeypatch, capsys):
    monkeypatch.chdir(user_folder / "train")
    assert main(["data", "toy", "--out", "../../mine"]) == 1
    assert one_line(capsys.readouterr().err).startswith("error: --out ../../mine already holds files")
    assert course.main(["kit", "--output", "../../mine"]) == 1
    assert one_line(capsys.readouterr().err).startswith("error: --output ../../mine already holds files")


# --- make course-url and tools/course_url.py ------------------------------------------------------------------


def test_make_course_url_never_runs_the_url_and_checks_it_before_installing(tmp_path):
    from tools import course_url

    before = (ROOT / "pyproject.toml").read_bytes()
    evil = f'https://github.com/a/b"; touch {tmp_path}/X; echo "'
    done = subprocess.run(["make", "--no-print-directory", "course-url", f"URL={evil}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and not (tmp_path / "X").exists()
    assert "expected a GitHub repository address" in done.stderr and "pip" not in done.stdout + done.stderr
    done = subprocess.run(["make", "--no-print-directory", "course-url"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout.strip() == "usage: make course-url URL=https://github.com/ORG/REPO"
    assert (ROOT / "pyproject.toml").read_bytes() == before
    assert course_url.check_url("https://github.com/uni-lab/scene-parsing.git") == "https://github.com/uni-lab/scene-parsing"
    assert course_url.check_url("https://github.com/uni-lab/scene-parsing.git/") == "https://github.com/uni-lab/scene-parsing"


def test_course_url_help_is_help_not_a_url(capsys):
    from tools import course_url

    before = (ROOT / "pyproject.toml").read_bytes()
    assert course_url.main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: make course-url URL=")
    assert course_url.main(["--check", "--help"]) == 2  # what `make course-url URL=--help` runs first
    assert (ROOT / "pyproject.toml").read_bytes() == before


# --- course.py: assignments, downloads, grading arguments ------------------------------------------------------


@pytest.fixture
def course_dir(tmp_path) -> Path:
    """A course directory with A1's source, one submission (alice) and an old grades.csv."""
    folder = tmp_path / "course"
    shutil.copytree(COURSE / "source" / A1, folder / "source" / A1)
    (folder / "submitted" / "alice" / A1).mkdir(parents=True)
    shutil.copy(COURSE / "release" / A1 / f"{A1}.ipynb", folder / "submitted" / "alice" / A1 / f"{A1}.ipynb")
    (folder / "grades.csv").write_text("assignment,student,score\na1,alice,7\n")
    return folder


def test_unknown_assignment_is_one_line_for_every_command(course_dir, tmp_path, capsys):
    before = snapshot(course_dir)
    download = tmp_path / "download.zip"
    with zipfile.ZipFile(download, "w") as archive:
        archive.writestr("alice_a9.ipynb", b"{}")
    for argv in (["release", "a9"], ["grade", "a9"], ["collect", "a9", str(download)],
                 ["kit", "a9", "--output", str(tmp_path / "kit")]):
        assert course.main(["--course-dir", str(course_dir), *argv]) == 1, argv
        one_line(capsys.readouterr().err, "unknown assignment", "a9")
    assert snapshot(course_dir) == before and not (tmp_path / "kit").exists()


def test_grade_for_a_student_without_a_submission_and_a_due_date_in_words(course_dir, capsys):
    before = snapshot(course_dir)
    grade = ["--course-dir", str(course_dir), "grade", A1]
    assert course.main([*grade, "--student", "nobody"]) == 1  # was: exit 0 and grades.csv rewritten
    one_line(capsys.readouterr().err, "--student nobody: no submission of", "students who submitted: alice")
    assert course.main([*grade, "--due", "next friday"]) == 1
    one_line(capsys.readouterr().err, "--due 'next friday' is not a date", "YYYY-MM-DD HH:MM:SS UTC")
    assert course.main([*grade, "--workers", "0"]) == 1
    one_line(capsys.readouterr().err, "--workers must be a positive number")
    assert snapshot(course_dir) == before
    assert course.parse_due("2026-06-01 19:00:00+02:00") == "2026-06-01 17:00:00 UTC"
    assert course.parse_due("2026-06-01 17:00") == course.parse_due("2026-06-01 17:00:00 UTC") == "2026-06-01 17:00:00 UTC"


def test_downloads_that_are_not_a_zip_of_notebooks_are_one_line(course_dir, tmp_path, capsys):
    random_bytes = tmp_path / "random.zip"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(2000))
    text = tmp_path / "submissions.txt"
    text.write_text("alice_a1.ipynb")
    no_notebooks = tmp_path / "no-notebooks.zip"
    with zipfile.ZipFile(no_notebooks, "w") as archive:
        archive.writestr("alice_report.pdf", b"%PDF")
    before = snapshot(course_dir)
    for download, fragment in ((random_bytes, "is not a readable zip file"), (tmp_path / "missing.zip", "does not exist"),
                               (text, "is neither a folder nor a .zip"), (no_notebooks, "holds no .ipynb file")):
        assert course.main(["--course-dir", str(course_dir), "collect", A1, str(download)]) == 1
        one_line(capsys.readouterr().err, f"error: {download} ", fragment)
    assert snapshot(course_dir) == before


def test_collect_names_every_submission_that_cannot_be_graded_by_student_and_file(course_dir, tmp_path, capsys):
    good = (COURSE / "release" / A1 / f"{A1}.ipynb").read_bytes()
    other = (COURSE / "release" / "a2_pyramid_pooling" / "a2_pyramid_pooling.ipynb").read_bytes()
    download = tmp_path / "download.zip"
    files = {"bob_1_a1.ipynb": good, "carol_2_a1.ipynb": b"this is { not json", "dave_3_a1.ipynb": b"",
             "erin_4_a1.ipynb": json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
             "frank_5_a2.ipynb": other}
    with zipfile.ZipFile(download, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", stdout)
        patch.setattr(sys, "stderr", stderr)
        status = course.main(["--course-dir", str(course_dir), "collect", A1, str(download)])
    assert status == 1
    assert "collected 5 notebook(s)" in stdout.getvalue() and "4 cannot be graded" in stdout.getvalue()
    assert sorted(stderr.getvalue().splitlines()) == [
        "carol: carol_2_a1.ipynb: not a notebook (the file is not JSON): it scores 0 when graded",
        "dave: dave_3_a1.ipynb: the file is empty: it scores 0 when graded",
        "erin: erin_4_a1.ipynb: a notebook without cells: it scores 0 when graded",
        f"frank: frank_5_a2.ipynb: not a notebook of {A1} (none of its graded cells): it scores 0 when graded",
    ]
    assert (course_dir / "submitted" / "bob" / A1 / f"{A1}.ipynb").read_bytes() == good
    assert (course_dir / "submitted" / "alice" / A1 / f"{A1}.ipynb").read_bytes() == good  # untouched
    problems = course.unusable_submissions(course_dir, course.submissions(course_dir))  # what grading screens
    assert problems == {
        (A1, "carol"): f"{A1}.ipynb: not a notebook (the file is not JSON)",
        (A1, "dave"): f"{A1}.ipynb: the file is empty",
        (A1, "erin"): f"{A1}.ipynb: a notebook without cells",
        (A1, "frank"): f"{A1}.ipynb: not a notebook of {A1} (none of its graded cells)",
    }
