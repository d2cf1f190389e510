"""Shared test setup: quiet TensorFlow, headless matplotlib, and a small synthetic dataset."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pspnet_lib.data.synthetic import write_synthetic_dataset  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a synthetic dataset (8 train + 4 val pairs, seed 0) shared by the session; do not modify it."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("synthetic_pairs"), num_train=8, num_val=4, seed=0)
