"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 train the small model and end with identical weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parent.parent
WORKERS = 2


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_worker(index: int, addresses: list[str], data: Path, out: Path) -> subprocess.Popen:
    """One worker process running the `train` command with its TF_CONFIG."""
    tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable, "-m", "pspnet_lib", "train", "--data", str(data), "--out", str(out),
        "--backbone", "small", "--image-size", "64", "--batch-size", "4", "--epochs", "1", "--limit", "8",
        "--quiet", "--no-tensorboard",
    ]
    return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_end_with_identical_weights(synthetic_pairs, tmp_path):
    from pspnet_lib.inference import load_model
    from pspnet_lib.training import read_history

    addresses = [f"127.0.0.1:{port}" for port in free_ports(WORKERS)]
    outs = [tmp_path / f"worker{index}" for index in range(WORKERS)]
    workers = [start_worker(index, addresses, synthetic_pairs, out) for index, out in enumerate(outs)]
    try:
        results = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, stderr) in zip(workers, results, strict=True):
        assert worker.returncode == 0, stderr[-3000:]

    # Gradients are all-reduced, so every trainable weight must match bit for bit. BatchNorm moving
    # statistics are not trained: each worker averages those of its own half of the batch.
    first, second = (load_model(out / "model.keras") for out in outs)
    for a, b in zip(first.trainable_weights, second.trainable_weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    losses = [read_history(out / "history.csv")[0]["loss"] for out in outs]
    assert np.isfinite(losses[0]) and losses[0] == losses[1]  # both trained on the same global batches
