"""Shared test setup: quiet TensorFlow, headless matplotlib, and a small synthetic dataset."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pspnet_lib.data.synthetic import write_synthetic_dataset  # noqa: E402

# `make test` runs these tests a file per worker (`--dist loadfile --no-loadscope-reorder`), so a file's module
# fixtures (the graded course, the trained models) are built once. Workers take the files in collection order, each
# the next one when done: the longest go first, so that no long file starts last and runs alone at the end (the
# Colab-like check first: most of its time is pip downloading its environment). Order measured on 2026-12-07 from
# `--durations` of a whole run; other files keep their usual order.
LONGEST_FIRST = (
    "test_colab_like.py",
    "test_assignments.py",
    "test_cli_train.py",
    "test_grader_saved_runs.py",
    "test_bench.py",
    "test_grader_checks.py",
    "test_training.py",
    "test_config.py",
    "test_multiworker.py",
    "test_models.py",
    "test_experiments.py",
    "test_recipes.py",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of LONGEST_FIRST first, in that order; each file's tests keep their order."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort


@pytest.fixture(scope="session")
def graded_city(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The synthetic city A3 and A4 are graded on (assignments/grading.py's), written by one test worker while the
    others wait: workers and kernels that found it missing would otherwise write the same files at once."""
    import fcntl
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "assignments"))
    import grading

    with (tmp_path_factory.getbasetemp().parent / "graded_city.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        grading.scored_split(*grading.graded_sizes())


@pytest.fixture(scope="session")
def synthetic_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a synthetic dataset (8 train + 4 val pairs, seed 0) shared by the session; do not modify it."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic_pairs"), num_train=8, num_val=4, seed=0)


@pytest.fixture(scope="session")
def fine_detail_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two train pairs whose 64x64 photo is 1-pixel black and white columns (all road): detail that shrinking
    the scene to 32 px averages away. Lossless PNG content under the .jpg names."""
    import numpy as np
    from PIL import Image

    from pspnet_lib.data import ids_to_colors

    root = tmp_path_factory.mktemp("fine_detail_pairs")
    photo = np.repeat((np.arange(64) % 2 * 255).astype(np.uint8)[None, :, None], 64, axis=0).repeat(3, axis=2)
    labels = ids_to_colors(np.zeros((64, 64), np.uint8))
    for split in ("train", "val"):
        (root / split).mkdir()
        for index in (1, 2):
            Image.fromarray(np.concatenate([photo, labels], axis=1)).save(root / split / f"{index}.jpg", format="PNG")
    return root


REAL_PAIRS_MISSING = (
    "real Cityscapes pairs not found: set CITYSCAPES_PAIRS_DIR or see README 'Getting the real set'"
)


@pytest.fixture(scope="session")
def real_pairs() -> Path:
    """Root of the real Cityscapes pairs (train/ and val/) when found; every `realdata` test skips otherwise."""
    from pspnet_lib.data import find_cityscapes_pairs

    root = find_cityscapes_pairs()
    if root is None:
        pytest.skip(REAL_PAIRS_MISSING)
    return root


@pytest.fixture
def isolated_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real dataset anywhere: data dir, kagglehub cache and /kaggle/input all point into an empty tmp folder."""
    from pspnet_lib.data import locate

    monkeypatch.delenv(locate.PAIRS_DIR_ENV, raising=False)
    monkeypatch.delenv(locate.DATASET_CHOICE_ENV, raising=False)
    monkeypatch.setenv("PSPNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(locate.KAGGLEHUB_CACHE_ENV, str(tmp_path / "kagglehub"))
    monkeypatch.setattr(locate, "KAGGLE_INPUT_DIR", tmp_path / "kaggle_input")
    return tmp_path


@pytest.fixture
def tiny_model_file(tmp_path) -> Path:
    """A saved 1x1-convolution segmentation model: enough to run `predict` or `evaluate` quickly."""
    import keras

    from pspnet_lib.data import CLASS_NAMES

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(len(CLASS_NAMES), 1, name="logits")(inputs))
    path = tmp_path / "tiny.keras"
    model.save(path)
    return path
