"""`python -m pspnet_lib train / evaluate / predict` on the tiny synthetic set with the small model at 64 px."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pspnet_lib.cli import main
from pspnet_lib.data import CLASS_NAMES
from pspnet_lib.training import TrainConfig
from pspnet_lib.training.recipes import RECIPES

PROJECT = Path(__file__).resolve().parent.parent
TINY = ["--backbone", "small", "--image-size", "64", "--batch-size", "4", "--quiet", "--no-tensorboard"]


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    """A `train` command line for a tiny run."""
    return ["train", "--data", str(data), "--out", str(out), *TINY, *extra]


def history_rows(run_dir: Path) -> list[dict[str, str]]:
    """history.csv rows as dicts of strings (empty when missing)."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    header, *rows = path.read_text().splitlines()
    return [dict(zip(header.split(","), row.split(","), strict=True)) for row in rows]


def assert_one_error_line(stderr: str, *fragments: str) -> None:
    """stderr holds one `error:` line mentioning every fragment, and no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.fixture(scope="module")
def trained_run(synthetic_pairs, tmp_path_factory):
    """One finished 1-epoch run, trained with GPU options asked for on this CPU; (run_dir, stderr)."""
    run_dir = tmp_path_factory.mktemp("runs") / "small"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = main(train_args(synthetic_pairs, run_dir, "--epochs", "1", "--mixed-precision", "--xla", "--distribute"))
    assert status == 0, stderr.getvalue()
    return run_dir, stderr.getvalue()


@pytest.mark.slow
def test_train_writes_model_history_and_config(trained_run):
    run_dir, _ = trained_run
    assert (run_dir / "model.keras").is_file() and (run_dir / "best.keras").is_file()
    assert [row["epoch"] for row in history_rows(run_dir)] == ["1"]
    saved = json.loads((run_dir / "config.json").read_text())
    recipe = saved["recipe"]
    assert (recipe["spec"]["network"], recipe["spec"]["backbone"], recipe["image_size"]) == ("pspnet", "small", 64)
    # Settings the command line left out come from the CPU recipe on this GPU-less machine.
    cpu = RECIPES["cpu"]
    assert (recipe["name"], recipe["optimizer"], recipe["scale_range"]) == ("cpu", cpu.optimizer, list(cpu.scale_range))
    assert recipe["crop_size"] == round(cpu.crop_size / cpu.image_size * 64)
    # config.json alone repeats the run: it holds the whole resolved value, the validation count decided.
    config = TrainConfig.load(run_dir)
    assert config.as_dict() == saved and config.recipe.val_limit == cpu.validation_limit(4, at_least=4)
    assert not (run_dir / "backup").exists()  # a finished run leaves no backup behind


@pytest.mark.slow
def test_gpu_options_on_a_cpu_give_one_notice_line_and_a_cpu_run(trained_run):
    run_dir, stderr = trained_run
    notices = [line for line in stderr.splitlines() if "No GPU visible" in line]
    assert len(notices) == 1 and "mixed precision" in notices[0] and "XLA" in notices[0]
    assert (run_dir / "model.keras").is_file()


@pytest.mark.slow
def test_evaluate_json_is_one_line_with_scores_by_class_name(trained_run, synthetic_pairs, capsys):
    run_dir, _ = trained_run
    assert main(["evaluate", "--run", str(run_dir), "--data", str(synthetic_pairs), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(summary) == {"miou", "pixel_accuracy", "per_class_iou", "labels"}
    assert summary["labels"] == "standard"  # Cityscapes' own decoding unless --labels says otherwise
    assert list(summary["per_class_iou"]) == list(CLASS_NAMES)
    present = [iou for iou in summary["per_class_iou"].values() if iou is not None]
    assert summary["miou"] == pytest.approx(sum(present) / len(present))
    assert 0.0 <= summary["pixel_accuracy"] <= 1.0


@pytest.mark.slow
def test_evaluate_table_lists_every_class(trained_run, synthetic_pairs, capsys):
    run_dir, _ = trained_run
    assert main(["evaluate", "--model", str(run_dir / "model.keras"), "--data", str(synthetic_pairs), "--limit", "2"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in CLASS_NAMES) and "mIoU" in table


@pytest.mark.slow
def test_evaluate_model_scores_at_the_image_size_the_model_records(trained_run, synthetic_pairs, tmp_path, capsys):
    import keras

    from pspnet_lib import models

    run_dir, _ = trained_run
    model = keras.saving.load_model(run_dir / "model.keras")
    assert models.image_size_of(model) == 64  # training recorded its --image-size in the file
    # A copy away from its run folder: the file alone says the size, no run config, no guess.
    alone = tmp_path / "alone.keras"
    model.save(alone)
    scores = {}
    for size in (None, "64"):
        flags = ["--image-size", size] if size else []
        assert main(["evaluate", "--model", str(alone), "--data", str(synthetic_pairs), "--limit", "4", "--json", *flags]) == 0
        scores[size] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores[None] == scores["64"]
    # A file saved before models recorded their size: a one-line request for --image-size, never a guess.
    model.recorded_image_size = None
    old = tmp_path / "old.keras"
    model.save(old)
    assert main(["evaluate", "--model", str(old), "--data", str(synthetic_pairs), "--limit", "4"]) == 1
    assert_one_error_line(capsys.readouterr().err, str(old), "does not record the image size", "--image-size")


@pytest.mark.slow
def test_predict_writes_overlays_for_a_pair_and_a_plain_photo(trained_run, synthetic_pairs, tmp_path, capsys):
    run_dir, _ = trained_run
    pair = sorted((synthetic_pairs / "val").glob("*.jpg"))[0]
    photo = tmp_path / "street.png"
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(photo)
    out = tmp_path / "overlays"
    assert main(["predict", "--model", str(run_dir / "model.keras"), str(pair), str(photo), "--out", str(out)]) == 0
    pair_height = Image.open(pair).height
    assert Image.open(out / f"{pair.stem}_overlay.png").size == (pair_height, pair_height)  # left half only
    assert Image.open(out / "street_overlay.png").size == (50, 40)



def test_predict_cuts_a_pair_but_not_a_two_to_one_photo(tiny_model_file, tmp_path, capsys):
    from pspnet_lib.data import synthetic_pair

    pair = synthetic_pair(0, "val", 1)
    Image.fromarray(pair.side_by_side()).save(tmp_path / "pair.png")
    Image.fromarray(pair.image).resize((512, 256)).save(tmp_path / "wide_photo.png")
    out = tmp_path / "auto"
    assert main(["predict", "--model", str(tiny_model_file), str(tmp_path / "pair.png"),
                 str(tmp_path / "wide_photo.png"), "--out", str(out)]) == 0
    assert Image.open(out / "pair_overlay.png").size == (256, 256)
    assert Image.open(out / "wide_photo_overlay.png").size == (512, 256)
    notes = capsys.readouterr().err
    assert "pair.png" in notes and "wide_photo.png" not in notes and "--photos" in notes


def test_predict_pairs_and_photos_flags_force_the_layout(tiny_model_file, tmp_path, capsys):
    from pspnet_lib.data import synthetic_pair

    pair = synthetic_pair(0, "val", 1)
    Image.fromarray(pair.side_by_side()).save(tmp_path / "pair.png")
    Image.fromarray(pair.image).resize((512, 256)).save(tmp_path / "wide_photo.png")
    model = ["--model", str(tiny_model_file)]
    assert main(["predict", *model, str(tmp_path / "pair.png"), "--out", str(tmp_path / "photos"), "--photos"]) == 0
    assert Image.open(tmp_path / "photos" / "pair_overlay.png").size == (512, 256)
    assert main(["predict", *model, str(tmp_path / "wide_photo.png"), "--out", str(tmp_path / "pairs"), "--pairs"]) == 0
    assert Image.open(tmp_path / "pairs" / "wide_photo_overlay.png").size == (256, 256)
    capsys.readouterr()
    Image.fromarray(pair.image).save(tmp_path / "square.png")
    assert main(["predict", *model, str(tmp_path / "square.png"), "--out", str(tmp_path / "x"), "--pairs"]) == 1
    assert_one_error_line(capsys.readouterr().err, "square.png", "twice as wide")
    with pytest.raises(SystemExit):
        main(["predict", *model, str(tmp_path / "pair.png"), "--out", str(tmp_path / "x"), "--pairs", "--photos"])
    assert "not allowed with" in capsys.readouterr().err


def test_wrong_data_folder_is_one_clear_line(tmp_path, capsys):
    assert main(train_args(tmp_path / "nowhere", tmp_path / "run")) == 1
    assert_one_error_line(capsys.readouterr().err, "nowhere", "does not exist")


def test_missing_run_and_bad_image_are_one_clear_line(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path / "no-run"), "--data", str(tmp_path)]) == 1
    assert_one_error_line(capsys.readouterr().err, "no-run")
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    assert main(["predict", "--model", str(tmp_path / "m.keras"), str(bad), "--out", str(tmp_path)]) == 1
    assert_one_error_line(capsys.readouterr().err, "bad.jpg")


@pytest.mark.slow
def test_nan_loss_stops_training_with_a_clear_message(synthetic_pairs, tmp_path, capsys):
    args = train_args(synthetic_pairs, tmp_path / "run", "--epochs", "2", "--limit", "4", "--batch-size", "2")
    assert main([*args, "--lr", "1e30"]) == 1
    assert_one_error_line(capsys.readouterr().err, "NaN", "--lr")
    assert not (tmp_path / "run" / "model.keras").exists()


@pytest.mark.slow
def test_same_seed_gives_the_same_first_epoch_loss(synthetic_pairs, tmp_path):
    losses = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        args = train_args(synthetic_pairs, tmp_path / name, "--epochs", "1", "--limit", "2", "--seed", seed)
        assert main(args) == 0
        losses[name] = float(history_rows(tmp_path / name)[0]["loss"])
    assert losses["a"] == losses["b"]
    assert losses["a"] != losses["c"]  # the seed does matter, so the equality above means something


def run_cli(args: list[str]) -> subprocess.Popen:
    """Start `python -m pspnet_lib ARGS` in a subprocess, its output piped."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "pspnet_lib", *args], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def backed_up_epochs(run_dir: Path) -> int:
    """Epochs recorded in the BackupAndRestore metadata (0 while there is none or it is being written)."""
    try:
        return json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_run_killed_during_epoch_two_resumes_to_three_clean_epochs(synthetic_pairs, tmp_path):
    run_dir = tmp_path / "run"
    args = train_args(synthetic_pairs, run_dir, "--epochs", "3", "--batch-size", "2", "--limit", "4")
    process = run_cli(args)
    deadline = time.monotonic() + 180
    while backed_up_epochs(run_dir) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"training ended before it could be killed: {process.communicate()[1]}"
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert len(history_rows(run_dir)) == 1 and not (run_dir / "model.keras").exists()

    resumed = run_cli(args)
    stdout, stderr = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, stderr
    assert "Epoch 2/3" in stdout and "Epoch 1/3" not in stdout  # resumed, not restarted
    assert [row["epoch"] for row in history_rows(run_dir)] == ["1", "2", "3"]
    assert [path.name for path in run_dir.iterdir() if path.name.startswith(".")] == []  # no temp files left
    json.loads((run_dir / "config.json").read_text())
    from pspnet_lib.inference import load_model

    assert load_model(run_dir / "model.keras").outputs[0].shape[-1] == len(CLASS_NAMES)


# --- bad input: nothing accepted in silence --------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--image-size", "100000"], ["--image-size", "2048", "100000"]),
        (["--image-size", "7"], ["--image-size", "32", "7"]),
        (["--max-minutes", "0"], ["--max-minutes", "no limit"]),
        (["--max-minutes", "-1"], ["--max-minutes"]),
        (["--lr", "0"], ["--lr", "positive"]),
        (["--lr", "nan"], ["--lr", "positive"]),
        (["--optimizer", "adam", "--head-lr-multiplier", "10"], ["head_lr_multiplier", "'sgd' only"]),
        (["--scale-range", "2", "1"], ["scale_range", "0 < low <= high"]),
        (["--crop-size", "96"], ["--crop-size", "between 32 and image_size (64)", "96"]),
    ],
)
def test_impossible_train_settings_are_one_line_and_leave_no_run_folder(synthetic_pairs, tmp_path, capsys, extra, fragments):
    assert main(train_args(synthetic_pairs, tmp_path / "run", *extra)) == 1
    assert_one_error_line(capsys.readouterr().err, *fragments)
    assert not (tmp_path / "run").exists()


def test_a_run_stopped_before_its_first_epoch_does_not_block_a_new_size(synthetic_pairs, tmp_path):
    from pspnet_lib.training import configure, run_folder

    config = configure(tmp_path / "run", image_size=64)
    saved = config.as_dict()
    saved["recipe"]["image_size"] = 100000
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    run_folder.check_run_dir(config)  # no backup/: nothing to resume
    (tmp_path / "run" / "backup").mkdir()  # an interrupted run with another size is still refused
    with pytest.raises(ValueError, match="different image_size"):
        run_folder.check_run_dir(config)
    saved["recipe"].update(image_size=64, epochs=50, max_minutes=3.0)  # ... one with more epochs or time resumes
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    run_folder.check_run_dir(config)


def test_training_on_labels_that_decode_to_no_class_is_refused(synthetic_pairs, tmp_path, capsys):
    import shutil

    root = tmp_path / "unlabelled"
    shutil.copytree(synthetic_pairs, root)
    for path in (root / "train").glob("*.jpg"):
        with Image.open(path) as pair:
            pixels = np.asarray(pair.convert("RGB")).copy()
        pixels[:, pixels.shape[0]:] = (0, 0, 0)  # every label pixel the void colour 'unlabeled'
        Image.fromarray(pixels).save(path, quality=95)
    assert main(train_args(root, tmp_path / "run", "--epochs", "1")) == 1
    assert_one_error_line(capsys.readouterr().err, "0%", "decode to a class", "data check")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_run_whose_validation_diverges_fails_and_saves_no_model(synthetic_pairs, tmp_path, capsys, monkeypatch):
    from pspnet_lib.training import callbacks

    real_on_epoch_end = callbacks.NanGuard.on_epoch_end

    def nan_validation(self, epoch, logs=None):  # training stays finite, validation does not
        return real_on_epoch_end(self, epoch, {**(logs or {}), "val_loss": float("nan")})

    monkeypatch.setattr(callbacks.NanGuard, "on_epoch_end", nan_validation)
    args = train_args(synthetic_pairs, tmp_path / "run", "--epochs", "2", "--limit", "4", "--batch-size", "2")
    assert main(args) == 1
    assert_one_error_line(capsys.readouterr().err, "val_loss", "NaN or infinite", "epoch 1", "--lr")
    assert not (tmp_path / "run" / "model.keras").exists() and not (tmp_path / "run" / "best.keras").exists()


def test_evaluate_on_a_corrupt_model_file_says_so(synthetic_pairs, tmp_path, capsys):
    broken = tmp_path / "model.keras"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["evaluate", "--model", str(broken), "--data", str(synthetic_pairs)]) == 1
    assert_one_error_line(capsys.readouterr().err, str(broken), "not a readable .keras model")


def test_predict_out_that_is_a_file_or_cannot_be_created_is_one_clear_line(tiny_model_file, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(photo)
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert main(["predict", "--model", str(tiny_model_file), str(photo), "--out", str(taken)]) == 1
    assert_one_error_line(capsys.readouterr().err, str(taken), "is a file")
    impossible = taken / "inside"  # a folder cannot be created inside a file
    assert main(["predict", "--model", str(tiny_model_file), str(photo), "--out", str(impossible)]) == 1
    assert_one_error_line(capsys.readouterr().err, str(impossible), "cannot create")


def test_train_out_that_is_a_file_is_one_clear_line(synthetic_pairs, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert main(train_args(synthetic_pairs, taken)) == 1
    assert_one_error_line(capsys.readouterr().err, str(taken), "is a file")


def test_unusable_files_error_names_the_command_line_flag(synthetic_pairs, tmp_path, capsys):
    import shutil

    root = tmp_path / "with_bad"
    shutil.copytree(synthetic_pairs, root)
    (root / "train" / "3.jpg").write_bytes(b"not a jpeg")
    assert main(train_args(root, tmp_path / "run", "--epochs", "1")) == 1
    err = capsys.readouterr().err
    assert "3.jpg" in err and "--skip-bad" in err and "skip_bad=True" not in err


def test_every_recipe_setting_is_a_train_flag_offering_the_library_s_choices(capsys):
    """The flags come from the recipe's fields: each one is there, with the library's own lists of choices."""
    import dataclasses

    from pspnet_lib import models
    from pspnet_lib.cli.train import NOT_FLAGS
    from pspnet_lib.training.optimizers import OPTIMIZERS
    from pspnet_lib.training.recipes import RECIPE_NAMES, Recipe

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    flags = [f"--{item.name.replace('_', '-')}" for item in dataclasses.fields(Recipe) if item.name not in NOT_FLAGS]
    assert [flag for flag in [*flags, "--network", "--backbone"] if flag not in shown] == []
    for choices in (models.NETWORKS, tuple(models.BACKBONES), OPTIMIZERS, RECIPE_NAMES):
        assert "{" + ",".join(choices) + "}" in shown
    with pytest.raises(SystemExit):  # a value outside the choices is refused by the parser itself
        main(["train", "--out", "x", "--optimizer", "rmsprop"])
    assert "invalid choice: 'rmsprop'" in capsys.readouterr().err
