"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 train the small model: identical weights and batch norm
statistics on both, and only the chief writes its run folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parent.parent
WORKERS = 2
RUN_FILES = {"config.json", "history.csv", "best.keras", "best.json", "model.keras"}

# Each worker trains through `training.train` and saves what it ended with (every weight of its model, in
# order, and the history `train` returned) outside its run folder, so the test can compare the workers.
DRIVER = """
import json, sys
import numpy as np
from pspnet_lib.config import import_tensorflow_quietly
import_tensorflow_quietly()
from pspnet_lib.training import configure, train
result = train(configure(**json.loads(sys.argv[1])), verbose=0)
np.savez(sys.argv[2], *[variable.numpy() for variable in result.model.weights])
with open(sys.argv[3], "w") as file:
    json.dump({"history": result.history, "paths": [variable.path for variable in result.model.weights],
               "chief": result.chief}, file)
"""


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


def start_worker(index: int, addresses: list[str], data: Path, out: Path, results: Path) -> subprocess.Popen:
    """One worker process training the small model with its TF_CONFIG; it saves its results under `results`."""
    tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
    config = dict(out=str(out), data=str(data), backbone="small", image_size=64, batch_size=4, epochs=1, limit=8,
                  tensorboard=False)
    command = [sys.executable, "-c", DRIVER, json.dumps(config), str(results / f"weights{index}.npz"),
               str(results / f"result{index}.json")]
    return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def two_worker_run(synthetic_pairs, tmp_path_factory):
    """Run two workers, each with its own --out folder (as on two machines); their folders and results."""
    tmp_path = tmp_path_factory.mktemp("multiworker")
    addresses = [f"127.0.0.1:{port}" for port in free_ports(WORKERS)]
    outs = [tmp_path / f"worker{index}" / "run" for index in range(WORKERS)]
    workers = [start_worker(index, addresses, synthetic_pairs, out, tmp_path) for index, out in enumerate(outs)]
    try:
        finished = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, (_, stderr) in zip(workers, finished, strict=True):
        assert worker.returncode == 0, stderr[-3000:]
    weights = [list(np.load(tmp_path / f"weights{index}.npz").values()) for index in range(WORKERS)]
    results = [json.loads((tmp_path / f"result{index}.json").read_text()) for index in range(WORKERS)]
    return SimpleNamespace(outs=outs, weights=weights, results=results)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_end_with_identical_weights(two_worker_run):
    # Gradients are all-reduced, so every trainable weight must match bit for bit; both workers trained on
    # the same global batches, so they report the same loss.
    first, second = two_worker_run.weights
    paths = two_worker_run.results[0]["paths"]
    assert len(first) == len(second) == len(paths)
    for path, a, b in zip(paths, first, second, strict=True):
        if "moving" not in path:
            np.testing.assert_array_equal(a, b, err_msg=path)
    losses = [result["history"][0]["loss"] for result in two_worker_run.results]
    assert np.isfinite(losses[0]) and losses[0] == losses[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_batch_norm_statistics_agree_across_workers(two_worker_run):
    # Synchronised batch norm computes each batch's mean and variance over both workers' halves, so the
    # moving statistics (not trained: updated from those batch statistics) match too, and they did move.
    first, second = two_worker_run.weights
    moving = [index for index, path in enumerate(two_worker_run.results[0]["paths"]) if "moving_mean" in path]
    assert moving
    for index in moving:
        np.testing.assert_array_equal(first[index], second[index], err_msg=two_worker_run.results[0]["paths"][index])
    assert any(np.abs(first[index]).max() > 0 for index in moving)  # moved away from their zero start


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_only_the_chief_writes_its_run_folder(two_worker_run):
    from pspnet_lib.inference import load_model
    from pspnet_lib.training import read_history

    chief, other = two_worker_run.outs
    assert RUN_FILES <= {path.name for path in chief.iterdir()}
    assert not any(path.name.startswith(("workertemp_", "backup", ".")) for path in chief.iterdir())
    # The other worker wrote the same files into its temporary folder and removed it at the end.
    left = sorted(path.relative_to(other) for path in other.rglob("*")) if other.exists() else []
    assert left == []
    # What the chief saved is what both workers ended with.
    saved = load_model(chief / "model.keras")
    for variable, a in zip(saved.weights, two_worker_run.weights[0], strict=True):
        np.testing.assert_array_equal(variable.numpy(), a, err_msg=variable.path)
    history = read_history(chief / "history.csv")
    assert [row["epoch"] for row in history] == [1]
    # Every value agrees but train_minutes: each worker keeps its own clock.
    def logged(rows):
        return [{key: value for key, value in row.items() if key != "train_minutes"} for row in rows]

    assert logged(two_worker_run.results[1]["history"]) == logged(two_worker_run.results[0]["history"]) == logged(history)
    assert all("train_minutes" in row for row in history)
    assert [result["chief"] for result in two_worker_run.results] == [True, False]


def test_worker_folders_follow_the_keras_multi_worker_pattern(tmp_path):
    from pspnet_lib.training import configure
    from pspnet_lib.training.run_folder import worker_dir

    def strategy(chief: bool, task_id: int):
        return SimpleNamespace(extended=SimpleNamespace(should_checkpoint=chief),
                               cluster_resolver=SimpleNamespace(task_id=task_id))

    config = configure(out=str(tmp_path / "run"))
    assert worker_dir(config, strategy(True, 0)) == tmp_path / "run"
    assert worker_dir(config, strategy(False, 1)) == tmp_path / "run" / "workertemp_1"


def test_several_replicas_build_synchronised_batch_norm(tmp_path):
    import keras

    from pspnet_lib.training import configure
    from pspnet_lib.training.model_setup import build_model

    config = configure(out=str(tmp_path), backbone="small")

    def batch_norms(model):
        return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
                if isinstance(layer, keras.layers.BatchNormalization)]

    for model_config in (config, configure(out=str(tmp_path), network="article", image_size=32)):
        single, several = build_model(model_config, replicas=1), build_model(model_config, replicas=2)
        assert batch_norms(single) and not any(layer.synchronized for layer in batch_norms(single))
        assert batch_norms(several) and all(layer.synchronized for layer in batch_norms(several))
