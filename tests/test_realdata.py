"""Which dataset the course uses by default, and the real Cityscapes pairs when they are on this machine.

Tests marked `realdata` need the real pairs (found by `find_cityscapes_pairs()`, e.g. through
$CITYSCAPES_PAIRS_DIR) and are skipped with one reason otherwise. Each is bounded: samples of the splits,
a few batches, notebooks in fast mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pspnet_lib.data import (
    CLASS_NAMES,
    IGNORE_LABEL,
    NUM_CLASSES,
    DataError,
    default_dataset,
    list_pairs,
    locate,
    make_dataset,
    read_pair,
)

PROJECT = Path(__file__).resolve().parents[1]
NOTEBOOKS = PROJECT / "notebooks"

# Shares of the real pairs' label pixels, measured on every 10th train and every val file (2026-11-30,
# nearest-colour decoding, max distance 40): void 16.8% (train) / 18.4% (val) of all pixels, the field
# notes say 15-20%; of the labelled pixels road 38% / 40%, building 23% / 23%, vegetation 16% / 17%,
# car 6.6% / 5.7%, sky 3.9% / 3.1%. The ranges leave room for sampling (samples of 100-120 scenes) and
# for a decoding rule that moves blurred class-border pixels between a class and void.
VOID_SHARE_RANGE = (0.12, 0.25)
LABELLED_SHARE_RANGES = {
    "road": (0.33, 0.46),
    "building": (0.18, 0.28),
    "vegetation": (0.12, 0.21),
    "car": (0.04, 0.09),
    "sky": (0.02, 0.06),
}
MAX_VOID_SHARE_OF_ONE_SCENE = 0.6  # measured 95th percentile 0.28-0.30: the bonnet, sky borders, parking
SAMPLE_STEP = {"train": 25, "val": 5}  # 119 and 100 scenes


def make_split_folders(folder: Path) -> Path:
    """An (empty) dataset folder with train/ and val/."""
    for split in ("train", "val"):
        (folder / split).mkdir(parents=True, exist_ok=True)
    return folder


def test_default_dataset_honours_the_synthetic_switch(isolated_search, monkeypatch, capsys) -> None:
    real = make_split_folders(isolated_search / "real")
    monkeypatch.setenv(locate.PAIRS_DIR_ENV, str(real))
    assert default_dataset(isolated_search / "toy", num_train=2, num_val=1) == real
    monkeypatch.setenv(locate.DATASET_CHOICE_ENV, "synthetic")
    synthetic = default_dataset(isolated_search / "toy", num_train=2, num_val=1)
    assert synthetic == isolated_search / "toy" and len(list_pairs(synthetic / "train")) == 2
    out = capsys.readouterr().out.splitlines()
    assert "real Cityscapes pairs" in out[0] and "PSPNET_DATASET=synthetic" in out[1]
    monkeypatch.setenv(locate.DATASET_CHOICE_ENV, "real")
    assert default_dataset(isolated_search / "toy") == real


def test_asking_for_the_real_pairs_when_missing_or_a_bad_choice_fails_in_one_line(
    isolated_search, monkeypatch
) -> None:
    monkeypatch.setenv(locate.DATASET_CHOICE_ENV, "real")
    with pytest.raises(DataError, match="PSPNET_DATASET=real but the real Cityscapes pairs were not found"):
        default_dataset(isolated_search / "toy")
    assert not (isolated_search / "toy").exists()
    monkeypatch.setenv(locate.DATASET_CHOICE_ENV, "cityscapes")
    with pytest.raises(DataError, match=r"PSPNET_DATASET must be one of auto, synthetic, real .*'cityscapes'"):
        default_dataset(isolated_search / "toy")


@pytest.mark.realdata
def test_data_check_passes_on_the_real_pairs(real_pairs) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pspnet_lib", "data", "check", str(real_pairs), "--sample", "16"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2975 files" in result.stdout and "500 files" in result.stdout and "OK: usable" in result.stdout


def label_counts(paths: list[Path]) -> tuple[np.ndarray, list[float], np.ndarray]:
    """Over `paths`: pixel count per label value (256), each scene's void share, scenes holding each class."""
    counts, scenes_with = np.zeros(256, np.int64), np.zeros(256, np.int64)
    void_shares = []
    for path in paths:
        scene_counts = np.bincount(read_pair(path)[1].ravel(), minlength=256)
        counts += scene_counts
        scenes_with += scene_counts > 0
        void_shares.append(scene_counts[IGNORE_LABEL] / scene_counts.sum())
    return counts, void_shares, scenes_with


@pytest.mark.realdata
@pytest.mark.parametrize("split", ["train", "val"])
def test_decoding_statistics_of_the_real_pairs_are_in_the_expected_ranges(real_pairs, split) -> None:
    paths = list_pairs(real_pairs / split)[:: SAMPLE_STEP[split]]
    counts, void_shares, scenes_with = label_counts(paths)
    void_share = counts[IGNORE_LABEL] / counts.sum()
    assert VOID_SHARE_RANGE[0] <= void_share <= VOID_SHARE_RANGE[1], f"void share {void_share:.3f}"
    assert max(void_shares) < MAX_VOID_SHARE_OF_ONE_SCENE
    labelled = counts[:NUM_CLASSES] / counts[:NUM_CLASSES].sum()
    for name, (low, high) in LABELLED_SHARE_RANGES.items():
        share = labelled[CLASS_NAMES.index(name)]
        assert low <= share <= high, f"{name} is {share:.3f} of labelled pixels in {split}"
    missing = [CLASS_NAMES[k] for k in range(NUM_CLASSES) if scenes_with[k] == 0]
    assert not missing, f"classes absent from {len(paths)} {split} scenes: {missing}"
    assert counts[NUM_CLASSES:IGNORE_LABEL].sum() == 0  # decoding yields train ids or void, nothing else


@pytest.mark.realdata
def test_the_pipeline_yields_decoded_batches_of_the_real_pairs(real_pairs) -> None:
    train = make_dataset(real_pairs, "train", image_size=128, batch_size=4, limit=8, seed=0)
    for image, label in train:
        assert image.dtype == np.float32 and tuple(image.shape) == (4, 128, 128, 3)
        assert label.dtype == np.int32 and tuple(label.shape) == (4, 128, 128)
        assert 0.0 <= float(np.min(image)) and float(np.max(image)) <= 1.0
        assert set(np.unique(label)) <= set(range(NUM_CLASSES)) | {IGNORE_LABEL}
    val = make_dataset(real_pairs, "val", image_size=256, batch_size=4, limit=4)
    images, labels = next(iter(val))
    for index, path in enumerate(list_pairs(real_pairs / "val")[:4]):
        # PIL and NumPy decode independently of the pipeline's TensorFlow. The two JPEG decoders differ on
        # these 4:2:0 files (measured: 1.0-1.5 grey levels on average, 0.6-0.8% of label pixels at borders).
        photo, ids = read_pair(path)
        assert np.abs(images[index].numpy() * 255 - photo).mean() < 3.0
        assert np.mean(labels[index].numpy() == ids) > 0.98


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize(
    "notebook", ["05_data_pipeline.ipynb", "06_training_on_gpu.ipynb", "07_evaluation_and_inference.ipynb"]
)
def test_notebooks_run_on_the_real_pairs_in_fast_mode(real_pairs, notebook, tmp_path) -> None:
    """nbval in a subprocess (stored outputs untouched); PSPNET_DATASET=real makes a fallback an error.

    The stored outputs come from the synthetic city, so no output is compared: a sanitizer that blanks
    every output leaves nbval checking only that every cell runs without an error.
    """
    blank_outputs = tmp_path / "blank_outputs.cfg"
    blank_outputs.write_text("[every_output]\nregex: (?s).+\nreplace: OUTPUT\n")
    environment = {
        **os.environ,
        "PSPNET_FAST": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        locate.PAIRS_DIR_ENV: str(real_pairs),
        locate.DATASET_CHOICE_ENV: "real",
    }
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
        "--nbval-sanitize-with", str(blank_outputs), str(NOTEBOOKS / notebook),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment, cwd=PROJECT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
