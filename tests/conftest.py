"""Shared test setup: quiet TensorFlow, headless matplotlib, and a small synthetic dataset."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pspnet_lib.data.synthetic import write_synthetic_dataset  # noqa: E402


# `make test` runs these tests on two workers a file at a time (`--dist loadfile --no-loadscope-reorder`), so a
# file's module fixtures are built once. Files are handed out in collection order, and a worker takes the next file
# when it is done: the longest files go first so that the two workers finish together (a long file started last
# would run alone at the end). Measured CPU time per file: tests/README.md (the rest follow in their usual order).
LONGEST_FIRST = (
    "test_colab_like.py",
    "test_assignments.py",
    "test_grader_checks.py",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of LONGEST_FIRST first, in that order; each file's tests keep their order."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort


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
